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


def _written_by_apply(integration, doc, user, monkeypatch, *, copy: bool):
    """Apply `doc` (rolled back afterwards) by the COPY path or simple-history's ORM path;
    the history rows and audit events it wrote, by resource."""
    from django.db import transaction

    from audit import bulk
    from revisions import apply as apply_module

    if not copy:
        monkeypatch.setattr(bulk, "copies", lambda objs: False)
        monkeypatch.setattr(apply_module, "copies", lambda objs: False)
    models = (Connection, Flow, FlowStep)
    last_history = {
        m: m.history.order_by("-history_id").values_list("history_id").first() for m in models
    }
    last_event = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    with transaction.atomic():
        with acting(user, Source.ILM):
            apply_document(integration=integration, document=doc)
        rows = {}
        for m in models:
            history = m.history.model
            new = m.history.filter(history_id__gt=(last_history[m] or (0,))[0])
            for row in new.values():
                row.pop("history_id")
                lineage = str(row["lineage_id"])
                if row["history_type"] == "+":
                    row.pop("id")  # a new row's key differs between the two runs
                rows[(history.__name__, lineage)] = row
        events = {}
        for e in Event.objects.filter(id__gt=last_event).order_by("id"):
            name = e.resource_name
            events[(e.resource_type, e.action, name)] = {
                "changes": sorted(
                    (c["field"], orjson.dumps(c["old"]), orjson.dumps(c["new"])) for c in e.changes
                ),
                "who": (e.user_id, e.username, e.source, e.revision_id),
                "where": (e.integration_id, e.integration_name),
                "at": e.at,
            }
        assert verify() == (Event.objects.count(), None)
        transaction.set_rollback(True)
    monkeypatch.undo()
    return rows, events


def test_copy_path_writes_the_history_rows_and_events_simple_historys_path_writes(
    integration, stocked, developer, monkeypatch
):
    """The same change applied by both paths (PostgreSQL): history rows identical in every
    column (history date, user, type, change reason and every tracked field), and the same
    audit events (field-level old → new, names, who, when)."""
    from django.db import connection
    from django.utils import timezone

    if connection.vendor != "postgresql":
        pytest.skip("one path only on SQLite (simple-history's); set DATABASE_URL")
    at = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    monkeypatch.setattr(timezone, "now", lambda: at)
    doc = _edit(integration, stocked)
    orm_rows, orm_events = _written_by_apply(integration, doc, developer, monkeypatch, copy=False)
    monkeypatch.setattr(timezone, "now", lambda: at)
    copy_rows, copy_events = _written_by_apply(integration, doc, developer, monkeypatch, copy=True)

    assert copy_rows == orm_rows
    assert len(copy_rows) == 4  # the step, connection and flow updated; a step created
    step = copy_rows[("HistoricalFlowStep", str(stocked["step"].lineage_id))]
    assert step["history_date"] == at
    assert step["history_type"] == "~"
    assert step["history_user_id"] == developer.pk
    assert (
        step["history_change_reason"]
        == orm_rows[("HistoricalFlowStep", str(stocked["step"].lineage_id))][
            "history_change_reason"
        ]
    )
    assert step["name"] == "Map v2"
    assert copy_events == orm_events
    assert len(copy_events) == 4
