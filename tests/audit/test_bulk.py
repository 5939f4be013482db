"""The bulk path of the revision engine's apply: history rows and audit events as a save
would leave them (on PostgreSQL written with COPY by audit.bulk, elsewhere through
simple-history's bulk path), and a chain that still verifies.

Run on SQLite and on PostgreSQL (DATABASE_URL): the expectations are the same for both
paths, which is the point.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import orjson
import pytest

from audit.capture import MASK
from audit.chain import _stable, append, changes_bytes, content_of, verify
from audit.context import Source, acting
from audit.models import Event
from integrations.models import Connection, Flow, FlowStep
from revisions.apply import apply_document
from revisions.document import document_of
from tests.factories import ConnectionFactory, FlowFactory, StepFactory

pytestmark = pytest.mark.django_db

NEW_STEP = "44444444-4444-4444-8444-444444444444"


def changes_of(event: Event) -> dict:
    return {c["field"]: (c["old"], c["new"]) for c in event.changes}


@pytest.fixture
def stocked(integration):
    erp = ConnectionFactory(
        integration=integration, name="ERP", config={"base_url": "https://erp.example.com"}
    )
    crm = ConnectionFactory(integration=integration, name="CRM")
    flow = FlowFactory(integration=integration, name="Orders", schedule="")
    step = StepFactory(flow=flow, name="Map", connection=erp)
    integration.refresh_from_db()
    return {"erp": erp, "crm": crm, "flow": flow, "step": step}


def _edit(integration, stocked):
    doc = copy.deepcopy(document_of(integration))
    res = doc["resources"]
    step = res[str(stocked["step"].lineage_id)]
    step["name"] = "Map v2"
    step["connection"] = str(stocked["crm"].lineage_id)
    erp = res[str(stocked["erp"].lineage_id)]
    # A key named like a secret, deep in a configuration: masked in the audit.
    erp["config"] = {"base_url": "https://erp2.example.com", "auth": {"credentials": "pw"}}
    res[str(stocked["flow"].lineage_id)]["schedule"] = "*/5 * * * *"
    res[NEW_STEP] = {
        "type": "step",
        "name": "New",
        "flow": str(stocked["flow"].lineage_id),
        "position": 2,
        "kind": "import",
        "connection": None,
        "config": {},
    }
    return doc


def test_an_apply_records_one_event_per_changed_resource_with_old_and_new(
    integration, stocked, developer
):
    doc = _edit(integration, stocked)
    first_new = Event.objects.order_by("-id").values_list("id", flat=True).first()
    history_before = {m: m.history.count() for m in (Connection, Flow, FlowStep)}
    with acting(developer, Source.ILM):
        counts = apply_document(integration=integration, document=doc)
    assert counts == {"created": 1, "updated": 3, "deleted": 0}

    events = list(Event.objects.filter(id__gt=first_new).order_by("id"))
    by_resource = {(e.resource_type, e.resource_id): e for e in events}
    assert len(by_resource) == len(events) == 4  # one each; CRM did not change: none

    step = by_resource[("step", stocked["step"].pk)]
    assert step.action == "updated"
    crm, erp = stocked["crm"], stocked["erp"]
    assert changes_of(step) == {
        "name": ("Map", "Map v2"),
        "connection": (f"ERP (#{erp.pk})", f"CRM (#{crm.pk})"),
    }
    assert step.resource_name == "Map v2"
    assert step.integration_id == integration.pk
    assert step.integration_name == integration.name
    assert (step.user_id, step.username, step.source) == (developer.pk, "dev", "ilm")

    conn = by_resource[("connection", erp.pk)]
    assert changes_of(conn) == {
        "config": (
            {"base_url": "https://erp.example.com"},
            {"base_url": "https://erp2.example.com", "auth": {"credentials": MASK}},
        )
    }
    assert changes_of(by_resource[("flow", stocked["flow"].pk)]) == {
        "schedule": ("", "*/5 * * * *")
    }

    new = FlowStep.objects.get(integration=integration, lineage_id=NEW_STEP)
    created = by_resource[("step", new.pk)]
    assert created.action == "created"
    assert changes_of(created)["flow"] == (None, f"Orders (#{stocked['flow'].pk})")
    assert changes_of(created)["name"] == (None, "New")
    assert "connection" not in changes_of(created)  # empty on creation: not a change

    # One history row per written row, as a save leaves it.
    after = {m: m.history.count() for m in (Connection, Flow, FlowStep)}
    assert {m.__name__: after[m] - history_before[m] for m in after} == {
        "Connection": 1,
        "Flow": 1,
        "FlowStep": 2,
    }
    row = FlowStep.history.filter(id=stocked["step"].pk).order_by("-history_id").first()
    assert row.history_type == "~"
    assert (row.name, row.connection_id, row.history_user_id) == ("Map v2", crm.pk, developer.pk)
    assert row.history_change_reason
    assert FlowStep.history.get(id=new.pk).history_type == "+"

    assert verify() == (Event.objects.count(), None)


def test_an_apply_that_fails_half_way_leaves_no_history_and_no_event(
    integration, stocked, developer
):
    doc = _edit(integration, stocked)
    doc["resources"][NEW_STEP]["kind"] = "no such kind"  # checked after the updates before it
    events, history = Event.objects.count(), FlowStep.history.count()
    before = document_of(integration)
    with acting(developer, Source.ILM), pytest.raises(Exception, match="not valid"):
        apply_document(integration=integration, document=doc)
    assert (Event.objects.count(), FlowStep.history.count()) == (events, history)
    assert document_of(integration) == before


@pytest.mark.parametrize(
    "changes",
    [
        [{"field": "config", "old": {"a": 1, "b": [1, 2]}, "new": {"b": "x", "a": None}}],
        [{"field": "t", "old": 1.0, "new": 1e15}],
        [{"field": "t", "old": 0.5, "new": -2.5e-3}],
        [{"field": "url", "old": "v1.2", "new": "10e3"}],
        [{"field": "config", "old": [2.0, {"a": 100.0}], "new": {"x": "12:30.0", "y": 3}}],
        [{"field": "k", "old": {1: "a"}, "new": ({"z": 2.0},)}],
        [],
        None,
    ],
)
def test_changes_are_hashed_as_the_python_walk_hashes_them(changes):
    walked = orjson.dumps(_stable(changes or []), option=orjson.OPT_SORT_KEYS)
    assert changes_bytes(changes) == walked


def test_many_events_in_one_append_are_chained_in_id_order_and_verify(integration):
    at = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    events = [
        Event(
            at=at,
            integration_id=integration.pk,
            integration_name=integration.name,
            resource_type="step",
            resource_id=i,
            resource_name=f"Step {i}",
            action="updated",
            changes=[{"field": "config", "old": {"timeout": 1e15 + i}, "new": {"ratio": 0.5}}],
        )
        for i in range(250)
    ]
    append(events)
    assert all(e.pk for e in events)
    assert [e.pk for e in events] == sorted(e.pk for e in events)
    stored = list(Event.objects.filter(pk__in=[e.pk for e in events]).order_by("id"))
    assert [e.resource_id for e in stored] == list(range(250))
    assert stored[1].prev_hash == stored[0].hash
    assert content_of(stored[0].__dict__) == content_of(events[0].__dict__)
    assert verify() == (Event.objects.count(), None)
