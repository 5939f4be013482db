"""Every tracked model's create / update / delete makes the right events; bulk paths too."""

import uuid

import pytest
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from audit.capture import MASK, record_history_rows
from audit.context import Source, acting
from audit.models import Event
from integrations import services
from integrations.models import Connection, FlowStep, IntegrationAccess, LookupCacheEntry
from tests.factories import (
    ConnectionFactory,
    FlowFactory,
    LookupCacheFactory,
    ScriptFactory,
    StepFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def changes_of(event: Event) -> dict:
    return {c["field"]: (c["old"], c["new"]) for c in event.changes}


def last(**filters) -> Event:
    return Event.objects.filter(**filters).order_by("-id").first()


def test_integration_create_update_delete(developer):
    with acting(developer, Source.UI) as ctx:
        integration = services.integration_create(
            name="Orders", user=developer, description="first"
        )
        created = last(resource_type="integration", action="created")
        assert created.integration_id == integration.pk
        assert created.integration_name == "Orders"
        assert created.user_id == developer.pk and created.username == "dev"
        assert created.source == "ui"
        assert created.operation_id == ctx.operation_id
        assert changes_of(created)["name"] == (None, "Orders")
        assert changes_of(created)["description"] == (None, "first")
        assert "version" not in changes_of(created)

        services.integration_update(integration=integration, data={"description": "second"})
        updated = last(resource_type="integration", action="updated")
        assert changes_of(updated) == {"description": ("first", "second")}

        pk = integration.pk
        services.integration_delete(integration=integration)
    deleted = last(resource_type="integration", action="deleted")
    assert deleted.resource_id == pk and deleted.resource_name == "Orders"
    assert changes_of(deleted)["description"] == ("second", None)
    # The creator's grant went with it, and says so.
    assert Event.objects.filter(resource_type="access", action="deleted", integration_id=pk)


@pytest.mark.parametrize(
    ("factory", "type_key", "change"),
    [
        (ConnectionFactory, "connection", {"config": {"base_url": "https://new.example.com"}}),
        (FlowFactory, "flow", {"enabled": False}),
        (ScriptFactory, "script", {"code": "function x() {}\n"}),
        (LookupCacheFactory, "lookup_cache", {"key_path": "ean"}),
    ],
)
def test_each_resource_type_create_update_delete(integration, factory, type_key, change):
    obj = factory(integration=integration)
    created = last(resource_type=type_key, action="created")
    assert created.resource_id == obj.pk
    assert created.integration_id == integration.pk
    assert created.integration_name == integration.name
    assert changes_of(created)["name"] == (None, obj.name)

    field, value = next(iter(change.items()))
    old = getattr(obj, field)
    services.resource_update(instance=obj, data=change)
    updated = last(resource_type=type_key, action="updated")
    assert changes_of(updated) == {field: (old, value)}

    services.resource_delete(instance=obj)
    deleted = last(resource_type=type_key, action="deleted")
    assert deleted.resource_name == obj.name
    assert changes_of(deleted)[field] == (value, None)


def test_step_references_are_shown_by_name(integration):
    conn = ConnectionFactory(integration=integration, name="Shop API")
    step = StepFactory(flow=FlowFactory(integration=integration), name="Export orders")
    services.resource_update(instance=step, data={"connection": conn.pk, "position": 9})
    event = last(resource_type="step", action="updated")
    changes = changes_of(event)
    assert changes["connection"] == (None, f"Shop API (#{conn.pk})")
    assert changes["position"][1] == 9
    assert event.resource_name == "Export orders"


def test_save_that_changes_nothing_makes_no_event(integration):
    flow = FlowFactory(integration=integration)
    before = Event.objects.count()
    flow.save()  # simple-history writes a row anyway
    assert flow.history.count() == 2
    assert Event.objects.count() == before


def test_secrets_never_appear(integration):
    conn = ConnectionFactory(
        integration=integration,
        config={"base_url": "https://x", "credentials": {"password": "hunter2"}},
    )
    created = last(resource_type="connection", action="created")
    services.resource_update(instance=conn, data={"credentials": {"api_key": "rotated-key"}})
    rotated = last(resource_type="connection", action="updated")
    dumped = str(list(Event.objects.values_list("changes", flat=True)))
    assert "s3cr3t-key" not in dumped and "rotated-key" not in dumped and "hunter2" not in dumped
    assert changes_of(rotated) == {"credentials": (MASK, MASK)}
    assert changes_of(created)["credentials"] == (None, MASK)
    assert changes_of(created)["config"][1]["credentials"] == MASK


def test_grant_and_cache_entry_events(integration, developer):
    other = UserFactory(username="olga")
    services.access_set(
        integration=integration,
        grants=[{"user": "dev", "level": "manage"}, {"user": "olga", "level": "monitor"}],
    )
    grant = last(resource_type="access", action="created")
    assert grant.resource_name == "olga (monitor)"
    assert changes_of(grant) == {"user": (None, "olga"), "level": (None, "monitor")}
    assert IntegrationAccess.objects.filter(user=other).exists()

    cache = LookupCacheFactory(integration=integration)
    services.cache_entries_add(
        cache=cache, entries=[{"key": "A", "value": {"x": 1}}, {"key": "B", "value": {"x": 2}}]
    )
    entries = Event.objects.filter(resource_type="lookup_cache_entry", action="created")
    assert sorted(entries.values_list("resource_name", flat=True)) == ["A", "B"]
    assert {e.integration_id for e in entries} == {integration.pk}
    services.cache_entries_clear(cache=cache)
    assert Event.objects.filter(resource_type="lookup_cache_entry", action="deleted").count() == 2


def test_bulk_create_and_update_with_history_are_captured(integration, developer):
    flow = FlowFactory(integration=integration)
    with acting(developer, Source.ILM, revision_id=None) as ctx:
        steps = bulk_create_with_history(
            [
                FlowStep(integration=integration, flow=flow, name=f"S{i}", kind="export")
                for i in range(3)
            ],
            FlowStep,
        )
        created = Event.objects.filter(resource_type="step", action="created")
        assert created.count() == 3
        assert {e.operation_id for e in created} == {ctx.operation_id}
        assert {e.source for e in created} == {"ilm"}
        assert {e.username for e in created} == {"dev"}

        for step in steps:
            step.position = 40
        steps[0].name = "Renamed"
        bulk_update_with_history(steps, FlowStep, ["position", "name"])
    updated = Event.objects.filter(resource_type="step", action="updated").order_by("id")
    assert updated.count() == 3
    first = changes_of(updated[0])
    assert first["name"] == ("S0", "Renamed")
    assert first["position"] == (1, 40)
    assert "name" not in changes_of(updated[1])


def test_bulk_update_that_changes_nothing_makes_no_event(integration):
    flow = FlowFactory(integration=integration)
    before = Event.objects.count()
    bulk_update_with_history([flow], type(flow), ["name"])
    assert Event.objects.count() == before


def test_record_history_rows_does_not_record_twice(integration):
    assert record_history_rows([]) == []
    cache = LookupCacheFactory(integration=integration)
    entries = bulk_create_with_history(
        [LookupCacheEntry(cache=cache, key="K", value={"v": 1}, size=10)], LookupCacheEntry
    )
    assert Event.objects.filter(resource_type="lookup_cache_entry").count() == 1
    # The engine may pass the rows again, even read back from the database.
    history_rows = list(LookupCacheEntry.history.filter(id=entries[0].pk))
    assert record_history_rows(history_rows) == []
    assert Event.objects.filter(resource_type="lookup_cache_entry").count() == 1


def test_record_history_rows_records_rows_written_without_the_manager(integration, developer):
    flow = FlowFactory(integration=integration)
    history = type(flow).history.model
    # Rows written straight into the history table (as a raw bulk path would).
    rows = history.objects.bulk_create(
        [
            history(
                id=flow.pk,
                integration_id=integration.pk,
                lineage_id=flow.lineage_id,
                name="Renamed in bulk",
                description=flow.description,
                enabled=flow.enabled,
                schedule=flow.schedule,
                history_date=flow.history.first().history_date.replace(year=2030),
                history_type="~",
                history_user=developer,
            )
        ]
    )
    events = record_history_rows(rows)
    assert len(events) == 1
    assert changes_of(events[0]) == {"name": (flow.name, "Renamed in bulk")}
    assert events[0].username == "dev"


def test_operation_id_accepts_a_string_and_groups_events(integration, developer):
    op = uuid.uuid4()
    with acting(developer, Source.ILM, operation_id=str(op)):
        FlowFactory(integration=integration)
        ScriptFactory(integration=integration)
    assert Event.objects.filter(operation_id=op).count() == 2


def test_connection_delete_keeps_name_after_deletion(integration):
    conn = ConnectionFactory(integration=integration, name="Old FTP")
    pk = conn.pk
    conn.delete()
    assert not Connection.objects.filter(pk=pk).exists()
    assert last(resource_type="connection", action="deleted").resource_name == "Old FTP"


def test_revision_event_is_recorded_with_its_operation(integration, developer):
    from audit.signals import revision_event
    from revisions.models import Revision

    revision = Revision.objects.create(
        integration=integration, number=1, type="pull", status="failed", error="Boom"
    )
    op = uuid.uuid4()
    with acting(developer, Source.ILM, operation_id=op, revision_id=revision.pk):
        revision_event.send(
            sender=Revision, revision=revision, verb="merge", user=developer, detail={"changed": 37}
        )
        revision_event.send(sender=Revision, revision=revision, verb="fail", user=developer)
    merge, fail = Event.objects.filter(resource_type="revision").order_by("id")
    assert merge.action == "merge" and merge.revision_id == revision.pk
    assert merge.operation_id == op and merge.source == "ilm" and merge.username == "dev"
    assert merge.resource_name == "#1 Pull" and merge.integration_name == integration.name
    assert changes_of(merge) == {"changed": (None, 37)}
    assert changes_of(fail) == {"error": (None, "Boom")}


def test_sign_in_sign_out_and_failed_sign_in(client, developer):
    assert client.post("/login/", {"username": "dev", "password": "wrong"}).status_code == 200
    failed = last(action="sign_in_failed")
    assert failed.user_id is None and failed.resource_name == "dev"
    assert failed.source == "ui" and failed.remote_addr == "127.0.0.1"
    assert "wrong" not in str(failed.changes)

    client.post("/login/", {"username": "dev", "password": "pw"})
    signed_in = last(action="signed_in")
    assert signed_in.user_id == developer.pk and signed_in.username == "dev"
    client.post("/logout/")
    assert last(action="signed_out").username == "dev"


def test_large_bulk_writes_are_recorded_in_chunks(integration):
    cache = LookupCacheFactory(integration=integration)
    entries = bulk_create_with_history(
        [
            LookupCacheEntry(cache=cache, key=f"K{i:04d}", value={"i": i}, size=10)
            for i in range(1200)
        ],
        LookupCacheEntry,
        batch_size=500,
    )
    assert Event.objects.filter(resource_type="lookup_cache_entry").count() == 1200
    for entry in entries:
        entry.value = {"i": -1}
    bulk_update_with_history(entries, LookupCacheEntry, ["value"], batch_size=500)
    updated = Event.objects.filter(resource_type="lookup_cache_entry", action="updated")
    assert updated.count() == 1200
    assert changes_of(updated.order_by("id").first()) == {"value": ({"i": 0}, {"i": -1})}
    # Passing all rows again (read back from the database) records nothing twice.
    assert record_history_rows(list(LookupCacheEntry.history.all())) == []


def test_api_change_with_a_token_names_its_user_and_source_api(integration, developer):
    from django.test import Client

    _token, raw = services.api_token_create(user=developer, name="CI")
    client = Client(headers={"Authorization": f"Bearer {raw}"})
    response = client.post(
        f"/api/v1/integrations/{integration.pk}/flows",
        {"name": "From CI", "schedule": "0 * * * *"},
        content_type="application/json",
    )
    assert response.status_code == 201
    event = last(resource_type="flow", action="created")
    assert event.resource_name == "From CI"
    assert event.source == "api" and event.username == "dev"
    assert event.remote_addr == "127.0.0.1"


def test_step_and_grant_update_and_delete(integration, monitor):
    step = StepFactory(flow=FlowFactory(integration=integration), name="Import orders")
    services.resource_update(instance=step, data={"kind": "import"})
    assert changes_of(last(resource_type="step", action="updated")) == {
        "kind": ("export", "import")
    }
    services.resource_delete(instance=step)
    deleted = last(resource_type="step", action="deleted")
    assert deleted.resource_name == "Import orders" and changes_of(deleted)["kind"][0] == "import"

    services.access_set(
        integration=integration,
        grants=[{"user": "dev", "level": "manage"}, {"user": "mo", "level": "manage"}],
    )
    raised = last(resource_type="access", action="updated")
    assert changes_of(raised) == {"level": ("monitor", "manage")}
    services.access_set(integration=integration, grants=[{"user": "dev", "level": "manage"}])
    removed = last(resource_type="access", action="deleted")
    assert removed.resource_name == "mo (manage)"
