"""The log is append-only on PostgreSQL, hash-chained, verifiable and exportable."""

import json
import threading
import time

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from audit.chain import HASHED_FIELDS, hash_of, verify
from audit.models import Event
from tests.factories import FlowFactory, ScriptFactory

pytestmark = pytest.mark.django_db

on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the guard trigger exists on PostgreSQL only"
)


def _raw(sql: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _tamper(sql: str, params=()) -> None:
    """What a database owner could do: switch the guard off, change rows, switch it on."""
    table = Event._meta.db_table
    if connection.vendor == "postgresql":
        _raw(f"ALTER TABLE {table} DISABLE TRIGGER ALL")
    _raw(sql, params)
    if connection.vendor == "postgresql":
        _raw(f"ALTER TABLE {table} ENABLE TRIGGER ALL")


def test_chain_links_each_event_to_the_one_before(events):
    assert events[0].prev_hash == "" or Event.objects.filter(hash=events[0].prev_hash).exists()
    for before, after in zip(events, events[1:], strict=False):
        assert after.prev_hash == before.hash
    for event in events:
        assert event.hash == hash_of(event.prev_hash, {f: getattr(event, f) for f in HASHED_FIELDS})
    assert verify() == (len(events), None)


def test_audit_verify_passes_on_an_intact_log(events, capsys):
    call_command("audit_verify")
    assert f"{len(events)} event(s) checked" in capsys.readouterr().out


def test_changed_row_breaks_the_chain_at_that_event(events):
    victim = events[1]
    _tamper(
        f"UPDATE {Event._meta.db_table} SET resource_name = %s WHERE id = %s",
        ["innocent", victim.pk],
    )
    with pytest.raises(CommandError, match=f"event {victim.pk}: its content does not match"):
        call_command("audit_verify")


def test_removed_row_breaks_the_chain_at_the_next_event(events):
    _tamper(f"DELETE FROM {Event._meta.db_table} WHERE id = %s", [events[1].pk])
    checked, broken = verify()
    assert broken is not None and broken.event_id == events[2].pk
    assert "previous event" in broken.reason and checked == 1


def test_rehashed_row_still_breaks_the_link_after_it(events):
    # A tamperer who recomputes the changed row's hash must rewrite every later row too.
    victim = events[1]
    victim.resource_name = "innocent"
    values = {f: getattr(victim, f) for f in HASHED_FIELDS}
    new_hash = hash_of(victim.prev_hash, values)
    _tamper(
        f"UPDATE {Event._meta.db_table} SET resource_name = %s, hash = %s WHERE id = %s",
        ["innocent", new_hash, victim.pk],
    )
    _checked, broken = verify()
    assert broken is not None and broken.event_id == events[2].pk


@on_postgres
def test_database_refuses_update_and_delete(events):
    for sql in (
        f"UPDATE {Event._meta.db_table} SET action = 'created' WHERE id = %s",
        f"DELETE FROM {Event._meta.db_table} WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="Cannot update or delete"):  # noqa: SIM117
            with transaction.atomic():
                _raw(sql, [events[0].pk])
    with pytest.raises(DatabaseError), transaction.atomic():
        Event.objects.filter(pk=events[0].pk).update(resource_name="x")
    assert Event.objects.get(pk=events[0].pk).resource_name == events[0].resource_name


def test_deleting_an_integration_keeps_its_events(integration, events):
    from integrations import services

    pk = integration.pk
    services.integration_delete(integration=integration)
    assert Event.objects.filter(integration_id=pk).count() > len(events)
    assert verify()[1] is None


def test_export_writes_json_lines_up_to_the_date(events, tmp_path):
    target = tmp_path / "audit.jsonl"
    call_command("audit_export", "--until", "2999-12-31", "--output", str(target))
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [line["id"] for line in lines] == [e.pk for e in events]
    assert lines[1]["prev_hash"] == lines[0]["hash"]
    assert lines[0]["at"].endswith("Z")
    target2 = tmp_path / "none.jsonl"
    call_command("audit_export", "--until", "2000-01-01", "--output", str(target2))
    assert target2.read_text() == ""


def test_export_until_a_date_includes_that_whole_day(events, tmp_path):
    target = tmp_path / "today.jsonl"
    day = events[-1].at.date().isoformat()
    call_command("audit_export", "--until", day, "--output", str(target))
    assert len(target.read_text().splitlines()) == len(events)


def test_export_refuses_a_bad_date():
    with pytest.raises(CommandError, match="is not a date"):
        call_command("audit_export", "--until", "yesterday-ish")


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_keep_one_chain(integration):
    errors = []

    def work(n):
        try:
            for _ in range(5):
                with transaction.atomic():
                    FlowFactory(integration_id=integration.pk, name=f"T{n}")
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    checked, broken = verify()
    assert broken is None and checked >= 20


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_an_edit_during_a_merge_waits_instead_of_deadlocking(integration):
    """A merge locks the integration, then writes (and audits) its changes; an edit of the
    same integration audits its change, then bumps the integration's version. The chain's
    lock must not be taken in between, or each would wait for the other."""
    from integrations import services
    from integrations.models import Integration

    flow = FlowFactory(integration=integration)
    merge_locked = threading.Event()
    errors: list[Exception] = []

    def merge():
        try:
            with transaction.atomic():
                Integration.objects.select_for_update().get(pk=integration.pk)
                merge_locked.set()
                time.sleep(0.5)  # the edit starts meanwhile
                ScriptFactory(integration_id=integration.pk, name="Merged script")
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    def edit():
        try:
            merge_locked.wait(5)
            fresh = type(flow).objects.get(pk=flow.pk)
            services.resource_update(instance=fresh, data={"description": "Edited meanwhile"})
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=merge), threading.Thread(target=edit)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert Event.objects.filter(resource_name="Merged script").exists()
    assert Event.objects.filter(resource_id=flow.pk, action="updated").exists()
    assert verify()[1] is None
