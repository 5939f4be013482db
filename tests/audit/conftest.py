"""The engine's fixtures (a stocked integration, its sandbox clone, pulls) for the
audit of ILM operations; made through the engine's own services."""

import pytest

from audit.models import Event
from tests.factories import FlowFactory, ScriptFactory
from tests.revisions.conftest import (  # noqa: F401
    make_pull,
    run_on_commit,
    sandbox,
    sandbox_pull,
    stocked,
)


@pytest.fixture
def events(integration):
    """A few events of one integration, oldest first."""
    for _ in range(3):
        FlowFactory(integration=integration)
    ScriptFactory(integration=integration)
    return list(Event.objects.order_by("id"))
