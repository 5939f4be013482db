"""An exception at any write of an apply leaves the database exactly as it was."""

from __future__ import annotations

import copy

import pytest

from integrations.models import (
    Connection,
    Flow,
    FlowStep,
    Integration,
    LookupCache,
    LookupCacheEntry,
    Script,
)
from revisions import apply as apply_module
from revisions.apply import apply_document
from revisions.document import document_of
from tests.factories import (
    CacheEntryFactory,
    ConnectionFactory,
    FlowFactory,
    LookupCacheFactory,
    ScriptFactory,
    StepFactory,
)

pytestmark = pytest.mark.django_db

TRACKED = (Integration, Connection, Flow, FlowStep, Script, LookupCache, LookupCacheEntry)


class Boom(Exception):
    pass


def _history_counts() -> dict[str, int]:
    return {m.__name__: m.history.count() for m in TRACKED}


@pytest.fixture
def scenario(integration):
    conn = ConnectionFactory(integration=integration, name="Old API")
    cache = LookupCacheFactory(integration=integration, name="Old cache")
    CacheEntryFactory(cache=cache, key="k")
    flow = FlowFactory(integration=integration, name="Orders")
    StepFactory(flow=flow, name="Old step", connection=conn)
    ScriptFactory(integration=integration, name="Tax")
    integration.refresh_from_db()
    doc = copy.deepcopy(document_of(integration))
    # Target: integration text changed, a flow renamed, the connection, cache and step
    # replaced by new ones, a new script. Every kind of write happens.
    doc["integration"]["description"] = "Changed"
    for lid, body in list(doc["resources"].items()):
        if body["type"] in ("connection", "lookup_cache", "step"):
            del doc["resources"][lid]
        elif body["type"] == "flow":
            body["name"] = "Orders v2"
            flow_lid = lid
    doc["resources"]["aaaaaaaa-0000-4000-8000-000000000001"] = {
        "type": "connection",
        "name": "New API",
        "kind": "http",
        "config": {},
    }
    doc["resources"]["aaaaaaaa-0000-4000-8000-000000000002"] = {
        "type": "step",
        "name": "New step",
        "flow": flow_lid,
        "position": 1,
        "kind": "import",
        "connection": "aaaaaaaa-0000-4000-8000-000000000001",
        "config": {},
    }
    doc["resources"]["aaaaaaaa-0000-4000-8000-000000000003"] = {
        "type": "script",
        "name": "New script",
        "function": "f",
        "code": "",
    }
    return integration, doc


WRITERS = ("_create_many", "_update_many", "_delete")


def _patch_writers(monkeypatch, wrap) -> None:
    for name in WRITERS:
        monkeypatch.setattr(apply_module, name, wrap(getattr(apply_module, name)))


def _count_writes(monkeypatch, integration, doc) -> int:
    from django.db import transaction

    calls = {"n": 0}

    def counting(real):
        def write(*args, **kwargs):
            calls["n"] += 1
            return real(*args, **kwargs)

        return write

    _patch_writers(monkeypatch, counting)
    with transaction.atomic():
        apply_document(integration=integration, document=doc)
        transaction.set_rollback(True)
    monkeypatch.undo()
    return calls["n"]


def test_an_exception_at_every_write_of_apply_changes_nothing(monkeypatch, scenario):
    integration, doc = scenario
    writes = _count_writes(monkeypatch, integration, doc)
    # Bulk inserts of connections, steps and scripts, the flow update, three deletes.
    assert writes >= 7
    before_doc, before_history = document_of(integration), _history_counts()
    version = Integration.objects.get(pk=integration.pk).version
    for fail_at in range(1, writes + 1):
        calls = {"n": 0}

        def failing(real, calls=calls, fail_at=fail_at):
            def write(*args, **kwargs):
                calls["n"] += 1
                if calls["n"] == fail_at:
                    raise Boom(f"write {fail_at}")
                return real(*args, **kwargs)

            return write

        _patch_writers(monkeypatch, failing)
        with pytest.raises(Boom):
            apply_document(integration=integration, document=doc)
        monkeypatch.undo()
        assert document_of(integration) == before_doc, f"failed at write {fail_at}"
        assert _history_counts() == before_history, f"failed at write {fail_at}"
        assert Integration.objects.get(pk=integration.pk).version == version
    apply_document(integration=integration, document=doc)
    assert document_of(integration) == doc


# Two merges at once (PostgreSQL: each thread has its own connection) --------------------


def _at_once(calls):
    import threading

    from django.db import connection

    barrier = threading.Barrier(len(calls))
    outcomes = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait(timeout=30)
            outcomes[i] = ("ok", call())
        except Exception as exc:  # recorded and asserted on below
            outcomes[i] = ("error", exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return outcomes


@pytest.fixture
def ready_pull(developer):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (row locks); set DATABASE_URL")
    from integrations.models import Environment
    from integrations.services import resource_update
    from revisions import services, tasks
    from revisions.models import Revision
    from tests.factories import IntegrationFactory

    prod = IntegrationFactory(name="Prod", environment=Environment.SANDBOX)
    flow = FlowFactory(integration=prod, name="Orders")
    sandbox = services.integration_clone(
        source=prod, user=developer, name="Sandbox", environment=Environment.SANDBOX
    )
    tasks.clone_run(Revision.objects.get(integration=sandbox).pk)
    twin = Flow.objects.get(integration=sandbox, lineage_id=flow.lineage_id)
    resource_update(instance=twin, data={"schedule": "0 3 * * *"})
    revision = services.pull_create(target=prod, source=sandbox, user=developer)
    tasks.pull_compute(revision.pk)
    revision.refresh_from_db()
    return prod, revision


@pytest.mark.django_db(transaction=True)
def test_two_merges_started_at_once_exactly_one_proceeds(ready_pull, developer):
    from revisions import services
    from revisions.errors import InvalidState
    from revisions.models import Revision, RevisionStatus

    prod, revision = ready_pull
    version = Integration.objects.get(pk=prod.pk).version
    outcomes = _at_once(
        [
            lambda: services.merge_start(
                revision=Revision.objects.get(pk=revision.pk), user=developer
            ),
            lambda: services.merge_start(
                revision=Revision.objects.get(pk=revision.pk), user=developer
            ),
        ]
    )
    kinds = sorted(kind for kind, _ in outcomes)
    assert kinds == ["error", "ok"], outcomes
    error = next(value for kind, value in outcomes if kind == "error")
    assert isinstance(error, InvalidState)
    revision.refresh_from_db()
    assert revision.status == RevisionStatus.COMPLETED  # eager: merged on commit, once
    assert Integration.objects.get(pk=prod.pk).version == version + 1
    assert Revision.objects.filter(operation=revision).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_merge_task_delivered_twice_at_once_merges_once(ready_pull, developer, monkeypatch):
    from revisions import services, tasks
    from revisions.models import Revision, RevisionStatus

    prod, revision = ready_pull
    version = Integration.objects.get(pk=prod.pk).version
    monkeypatch.setattr(services, "_enqueue", lambda *args, **kwargs: None)
    services.merge_start(revision=revision, user=developer)
    outcomes = _at_once(
        [lambda: tasks.merge_run(revision.pk), lambda: tasks.merge_run(revision.pk)]
    )
    assert [value for _, value in outcomes] == [RevisionStatus.COMPLETED] * 2, outcomes
    revision.refresh_from_db()
    assert revision.status == RevisionStatus.COMPLETED
    assert Integration.objects.get(pk=prod.pk).version == version + 1
    assert Revision.objects.filter(operation=revision).count() == 2
