"""Pulls in every state the review pages show, made through the engine's services."""

import pytest

from integrations.models import AccessLevel, Environment
from integrations.services import resource_update
from revisions import services
from revisions.document import documents_of_trees
from tests.factories import (
    ConnectionFactory,
    FlowFactory,
    GrantFactory,
    ScriptFactory,
    StepFactory,
)


def document_of_tree(tree):
    """The document a tree stores (what the engine reads through documents_of_trees)."""
    return documents_of_trees(tree)[0]


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """Run what the engine enqueues on commit (Celery is eager in tests)."""

    def run(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return run


@pytest.fixture
def stocked(integration):
    """The production integration with one of each resource."""
    conn = ConnectionFactory(integration=integration, name="ERP API")
    flow = FlowFactory(integration=integration, name="Orders to ERP")
    step = StepFactory(
        flow=flow,
        name="Map order fields",
        connection=conn,
        config={"mappings": [{"source": "total", "target": "amount", "lookup_cache": None}]},
    )
    script = ScriptFactory(
        integration=integration,
        name="Tax rounding",
        code="function preSavePage(options) {\n  const rate = 0.2;\n  return options;\n}\n",
    )
    return {"connection": conn, "flow": flow, "step": step, "script": script}


def _twin(model, clone, original):
    return model.objects.get(integration=clone, lineage_id=original.lineage_id)


@pytest.fixture
def sandbox(stocked, integration, developer, run_on_commit):
    """A sandbox clone of the production integration, managed by the developer."""
    clone = run_on_commit(
        services.integration_clone,
        source=integration,
        user=developer,
        name="Orders sandbox",
        environment=Environment.SANDBOX,
    )
    if not clone.grants.filter(user=developer).exists():
        GrantFactory(integration=clone, user=developer, level=AccessLevel.MANAGE)
    clone.refresh_from_db()
    return clone


@pytest.fixture
def make_pull(developer, run_on_commit):
    def make(*, target, source, user=None, description="Bring in sandbox changes"):
        revision = run_on_commit(
            services.pull_create,
            target=target,
            source=source,
            user=user or developer,
            description=description,
        )
        revision.refresh_from_db()
        return revision

    return make


@pytest.fixture
def clean_pull(stocked, sandbox, integration, make_pull):
    """A pull into production of a sandbox change to a mapping and to a script."""
    step = _twin(type(stocked["step"]), sandbox, stocked["step"])
    resource_update(
        instance=step,
        data={
            "config": {
                "mappings": [{"source": "total_gross", "target": "amount", "lookup_cache": None}]
            }
        },
    )
    script = _twin(type(stocked["script"]), sandbox, stocked["script"])
    resource_update(
        instance=script,
        data={
            "code": "function preSavePage(options) {\n  const rate = 0.25;\n  return options;\n}\n"
        },
    )
    return make_pull(target=integration, source=sandbox)


@pytest.fixture
def conflict_pull(stocked, sandbox, integration, make_pull):
    """Both sides renamed the same flow differently; the sandbox also changed the script."""
    resource_update(instance=stocked["flow"], data={"schedule": "0 * * * *"})
    flow = _twin(type(stocked["flow"]), sandbox, stocked["flow"])
    resource_update(instance=flow, data={"schedule": "*/5 * * * *"})
    script = _twin(type(stocked["script"]), sandbox, stocked["script"])
    resource_update(instance=script, data={"function": "preMap"})
    return make_pull(target=integration, source=sandbox)


@pytest.fixture
def sandbox_pull(stocked, sandbox, integration, make_pull):
    """A pull into the sandbox of a production change (no approval needed to merge)."""
    resource_update(instance=stocked["flow"], data={"description": "Every paid order, hourly"})
    resource_update(instance=stocked["connection"], data={"config": {"base_url": "https://erp2"}})
    return make_pull(target=sandbox, source=integration)
