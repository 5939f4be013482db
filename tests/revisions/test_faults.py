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


def _count_writes(monkeypatch, integration, doc) -> int:
    calls = {"n": 0}
    real_save, real_delete = apply_module._save, apply_module._delete

    def save(instance, reason):
        calls["n"] += 1
        real_save(instance, reason)

    def delete(instance, reason):
        calls["n"] += 1
        real_delete(instance, reason)

    monkeypatch.setattr(apply_module, "_save", save)
    monkeypatch.setattr(apply_module, "_delete", delete)
    from django.db import transaction

    with transaction.atomic():
        apply_document(integration=integration, document=doc)
        transaction.set_rollback(True)
    monkeypatch.undo()
    return calls["n"]


def test_an_exception_at_every_write_of_apply_changes_nothing(monkeypatch, scenario):
    integration, doc = scenario
    writes = _count_writes(monkeypatch, integration, doc)
    assert writes >= 7  # 1 step + 1 script + 1 connection + 1 step + 3 deletes at least
    before_doc, before_history = document_of(integration), _history_counts()
    version = Integration.objects.get(pk=integration.pk).version
    for fail_at in range(1, writes + 1):
        calls = {"n": 0}
        real_save, real_delete = apply_module._save, apply_module._delete

        def failing(real, calls=calls, fail_at=fail_at):
            def write(instance, reason):
                calls["n"] += 1
                if calls["n"] == fail_at:
                    raise Boom(f"write {fail_at}")
                real(instance, reason)

            return write

        monkeypatch.setattr(apply_module, "_save", failing(real_save))
        monkeypatch.setattr(apply_module, "_delete", failing(real_delete))
        with pytest.raises(Boom):
            apply_document(integration=integration, document=doc)
        monkeypatch.undo()
        assert document_of(integration) == before_doc, f"failed at write {fail_at}"
        assert _history_counts() == before_history, f"failed at write {fail_at}"
        assert Integration.objects.get(pk=integration.pk).version == version
    apply_document(integration=integration, document=doc)
    assert document_of(integration) == doc
