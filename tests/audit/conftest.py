"""The engine's fixtures (a stocked integration, its sandbox clone, pulls) for the
audit of ILM operations; made through the engine's own services."""

from tests.revisions.conftest import (  # noqa: F401
    make_pull,
    run_on_commit,
    sandbox,
    sandbox_pull,
    stocked,
)
