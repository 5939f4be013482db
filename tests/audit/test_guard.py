"""The audit log holds against the site's own database role (PostgreSQL only).

Each test creates a role `ilm_runtime_<random>`, makes it the runtime role with the
operators' command (`audit_harden_role`, run as the owner), and `SET ROLE`s to it on the
test's connection: from then on every statement, the ORM's included, runs with that
role's rights and nothing more. All of it (role, grants, attacks) happens inside the
test's transaction and is rolled back.
"""

from __future__ import annotations

import importlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from audit.chain import signing_key, verify
from audit.models import Event
from integrations import services
from tests.audit.tamper import TABLE, as_owner, guessed_key, raw, rewrite_and_rechain, unkeyed
from tests.factories import FlowFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="roles and guard triggers are PostgreSQL's"
    ),
]

# The id pgtrigger gave the old guard: what `SET pgtrigger.ignore` would name to bypass it.
OLD_TRIGGER = "audit_event:pgtrigger_append_only_7d947"


@pytest.fixture
def truncate_guard() -> None:
    """The test database keeps the TRUNCATE guard off for its own clean-up
    (tests/conftest.py); these tests put it back on, inside their transaction."""
    raw(f"ALTER TABLE {TABLE} ENABLE TRIGGER audit_event_no_truncate")


@pytest.fixture
def runtime_role(events, truncate_guard) -> str:
    role = f"ilm_runtime_{secrets.token_hex(4)}"
    raw(f'CREATE ROLE "{role}" NOLOGIN')
    call_command("audit_harden_role", role)
    return role


@contextmanager
def as_role(role: str) -> Iterator[None]:
    raw(f'SET ROLE "{role}"')
    try:
        yield
    finally:
        raw("RESET ROLE")


def refused(sql: str, params=(), *, match: str) -> None:
    with pytest.raises(DatabaseError, match=match), transaction.atomic():
        raw(sql, params)


def test_runtime_role_cannot_update_or_delete_events_even_with_pgtrigger_ignore(
    runtime_role, events
):
    victim = events[1]
    with as_role(runtime_role):
        raw(f"SET pgtrigger.ignore = '{{{OLD_TRIGGER}}}'")
        refused(
            f"UPDATE {TABLE} SET resource_name = 'innocent' WHERE id = %s",
            [victim.pk],
            match="permission denied",
        )
        refused(f"DELETE FROM {TABLE} WHERE id = %s", [victim.pk], match="permission denied")
        with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
            Event.objects.filter(pk=victim.pk).update(resource_name="innocent")
    assert Event.objects.get(pk=victim.pk).resource_name == victim.resource_name
    assert verify() == (len(events), None)


def test_guard_trigger_ignores_pgtrigger_ignore_even_for_a_role_allowed_to_update(
    runtime_role, events
):
    # A sloppy grant gives the role UPDATE and DELETE back: the trigger still refuses.
    raw(f'GRANT UPDATE, DELETE ON {TABLE} TO "{runtime_role}"')
    with as_role(runtime_role):
        raw(f"SET pgtrigger.ignore = '{{{OLD_TRIGGER}}}'")
        refused(
            f"UPDATE {TABLE} SET resource_name = 'innocent' WHERE id = %s",
            [events[0].pk],
            match="Cannot update or delete rows from audit_event table",
        )
        refused(
            f"DELETE FROM {TABLE} WHERE id = %s",
            [events[0].pk],
            match="Cannot update or delete rows from audit_event table",
        )
    assert Event.objects.count() == len(events)


def test_truncate_is_refused_to_the_runtime_role_and_to_the_owner(runtime_role, events):
    with as_role(runtime_role):
        refused(f"TRUNCATE {TABLE}", match="permission denied")
    # The owner (this connection's own role) meets the statement-level trigger.
    refused(f"TRUNCATE {TABLE}", match="Cannot truncate audit_event table")
    assert Event.objects.count() == len(events)


def test_runtime_role_cannot_switch_the_guard_off(runtime_role, events):
    with as_role(runtime_role):
        refused(f"ALTER TABLE {TABLE} DISABLE TRIGGER ALL", match="must be owner")
        refused(f"DROP TRIGGER audit_event_no_rewrite ON {TABLE}", match="must be owner")
        refused("SET session_replication_role = replica", match="permission denied")
        refused(
            f"CREATE TRIGGER sneaky BEFORE UPDATE ON {TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()",
            match="permission denied",
        )


def test_runtime_role_still_runs_the_site_and_appends_events(runtime_role, integration, events):
    with as_role(runtime_role):
        flow = FlowFactory(integration=integration, name="Written by the runtime role")
        services.resource_update(instance=flow, data={"description": "and changed by it"})
        assert Event.objects.filter(resource_id=flow.pk, action="updated").exists()
        assert verify() == (len(events) + 2, None)


def test_audit_harden_role_refuses_roles_that_could_disable_the_guard(truncate_guard, events):
    with pytest.raises(CommandError, match="does not exist"):
        call_command("audit_harden_role", f"ilm_missing_{secrets.token_hex(4)}")
    with pytest.raises(CommandError, match="not a plain role name"):
        call_command("audit_harden_role", 'app"; DROP TABLE audit_event; --')
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        owner = cursor.fetchone()[0]
    with pytest.raises(CommandError, match="superuser"):
        call_command("audit_harden_role", owner)
    member = f"ilm_owner_friend_{secrets.token_hex(4)}"
    raw(f'CREATE ROLE "{member}" NOLOGIN')
    raw(f'GRANT "{owner}" TO "{member}"')
    with pytest.raises(CommandError, match="member of its owner"):
        call_command("audit_harden_role", member)
    assert Event.objects.count() == len(events)


def test_audit_harden_role_prints_its_sql_without_running_it(capsys, truncate_guard):
    role = f"ilm_runtime_{secrets.token_hex(4)}"
    raw(f'CREATE ROLE "{role}" NOLOGIN')
    call_command("audit_harden_role", role, "--sql")
    out = capsys.readouterr().out
    assert f'REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES ON "{TABLE}" FROM "{role}"' in out
    with connection.cursor() as cursor:
        cursor.execute("SELECT has_table_privilege(%s, %s, 'SELECT')", [role, TABLE])
        assert cursor.fetchone() == (False,)


def test_migration_revokes_rewrites_from_the_configured_runtime_role(settings, truncate_guard):
    role = f"ilm_runtime_{secrets.token_hex(4)}"
    raw(f'CREATE ROLE "{role}" NOLOGIN')
    raw(f'GRANT ALL ON {TABLE} TO "{role}"')
    settings.ILM_DB_RUNTIME_ROLE = role
    migration = importlib.import_module("audit.migrations.0003_keyed_chain_sql_guard")
    from django.apps import apps

    with connection.schema_editor() as editor:
        migration.revoke_from_runtime_role(apps, editor)
    with connection.cursor() as cursor:
        for privilege, held in [
            ("SELECT", True),
            ("INSERT", True),
            ("UPDATE", False),
            ("DELETE", False),
            ("TRUNCATE", False),
        ]:
            cursor.execute("SELECT has_table_privilege(%s, %s, %s)", [role, TABLE, privilege])
            assert cursor.fetchone() == (held,), privilege


@pytest.mark.parametrize("sign", ["unkeyed", "guessed key"])
def test_rewritten_and_rechained_events_are_refused_then_detected(runtime_role, events, sign):
    victim = events[1]
    with as_role(runtime_role):
        refused(
            f"UPDATE {TABLE} SET resource_name = 'innocent', hash = 'x' WHERE id = %s",
            [victim.pk],
            match="permission denied",
        )
    # Past the database (the owner's power), recomputing every later hash without the key
    # still leaves the rewritten event's hash wrong.
    signer = unkeyed if sign == "unkeyed" else guessed_key(signing_key().id)
    rewrite_and_rechain(victim.pk, "innocent", signer)
    assert Event.objects.get(pk=victim.pk).resource_name == "innocent"
    with pytest.raises(CommandError, match=f"Audit chain broken at event {victim.pk}: "):
        call_command("audit_verify")


def test_deleting_from_the_tail_is_refused_then_detected_by_checkpoint(
    runtime_role, events, tmp_path, settings
):
    sink = tmp_path / "checkpoints.jsonl"
    settings.ILM_AUDIT_CHECKPOINT_FILE = str(sink)
    call_command("audit_verify")  # writes the head down
    with as_role(runtime_role):
        refused(f"DELETE FROM {TABLE} WHERE id = %s", [events[-1].pk], match="permission denied")
    as_owner(f"DELETE FROM {TABLE} WHERE id >= %s", [events[-2].pk])
    call_command("audit_verify")  # the shorter chain is still a chain...
    with pytest.raises(CommandError, match=f"event {events[-1].pk}: the checkpoint of .* missing"):
        call_command("audit_verify", "--checkpoint", str(sink))  # ...but not the recorded one


def test_truncating_is_refused_then_detected_by_checkpoint(
    runtime_role, events, tmp_path, settings
):
    sink = tmp_path / "checkpoints.jsonl"
    settings.ILM_AUDIT_CHECKPOINT_FILE = str(sink)
    call_command("audit_verify")
    with as_role(runtime_role):
        refused(f"TRUNCATE {TABLE}", match="permission denied")
    as_owner(f"TRUNCATE {TABLE}")
    assert not Event.objects.exists()
    with pytest.raises(CommandError, match="the log is empty \\(it was truncated\\)"):
        call_command("audit_verify", "--checkpoint", str(sink))


@pytest.mark.django_db(transaction=True)
def test_a_separate_session_of_the_runtime_role_can_neither_rewrite_nor_empty_the_log(events):
    """The same attacks from another connection, on committed events, as an attacker
    holding the site's database credentials would make them."""
    import psycopg

    role = f"ilm_runtime_{secrets.token_hex(4)}"
    raw(f'CREATE ROLE "{role}" NOLOGIN')
    try:
        call_command("audit_harden_role", role)
        db = connection.settings_dict
        with psycopg.connect(
            host=db["HOST"] or "127.0.0.1",
            port=db["PORT"] or 5432,
            user=db["USER"],
            password=db["PASSWORD"] or None,
            dbname=db["NAME"],
            autocommit=True,
        ) as attacker:
            attacker.execute(f'SET ROLE "{role}"')
            attacker.execute(f"SET pgtrigger.ignore = '{{{OLD_TRIGGER}}}'")
            for sql in (
                f"UPDATE {TABLE} SET resource_name = 'innocent'",
                f"DELETE FROM {TABLE} WHERE id = {events[-1].pk}",
                f"TRUNCATE {TABLE}",
                f"ALTER TABLE {TABLE} DISABLE TRIGGER ALL",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    attacker.execute(sql)
            assert attacker.execute(f"SELECT count(*) FROM {TABLE}").fetchone() == (len(events),)
        assert verify() == (len(events), None)
    finally:
        raw(f'DROP OWNED BY "{role}"')
        raw(f'DROP ROLE "{role}"')
