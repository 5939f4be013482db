"""The chain is keyed: without ILM_AUDIT_KEY nobody can rewrite it unseen.

Tampering goes through `tests.audit.tamper.as_owner` (the guard triggers off, as only the
table's owner could): what is tested here is what the key catches after the database's
guard has been got past. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.db import connection

from audit.chain import HASHED_FIELDS, LEGACY_KEY_ID, hash_of, key_id_of, signing_key, verify
from audit.models import Event
from tests.audit.tamper import TABLE, as_owner, guessed_key, rewrite_and_rechain, unkeyed
from tests.factories import FlowFactory

pytestmark = pytest.mark.django_db

NEW_KEY = "rotated-in-audit-key-0123456789abcdefghijklmnop"


def _values(event: Event) -> dict:
    return {f: getattr(event, f) for f in HASHED_FIELDS}


def test_events_are_signed_with_the_first_key_and_name_it(events):
    key = signing_key()
    assert key.id == key_id_of(django_settings.ILM_AUDIT_KEYS[0])
    for event in events:
        assert event.key_id == key.id
        # Not the keyless SHA-256 anyone could compute.
        assert event.hash != unkeyed(event.prev_hash, _values(event))[1]


@pytest.mark.parametrize("sign", ["unkeyed", "guessed key"])
def test_rewriting_an_event_and_rechaining_without_the_key_is_detected(events, sign):
    victim = events[1]
    signer = unkeyed if sign == "unkeyed" else guessed_key(signing_key().id)
    rewrite_and_rechain(victim.pk, "innocent", signer)
    checked, broken = verify()
    assert broken is not None and broken.event_id == victim.pk and checked == 1
    with pytest.raises(CommandError, match=f"Audit chain broken at event {victim.pk}: "):
        call_command("audit_verify")


def test_a_hash_replaced_with_any_text_is_named_not_a_crash(events):
    victim = events[-1]
    as_owner(f"UPDATE {TABLE} SET hash = %s WHERE id = %s", ["é" * 64, victim.pk])
    _checked, broken = verify()
    assert broken is not None and broken.event_id == victim.pk
    assert "does not match its hash" in broken.reason


def test_switching_an_event_to_another_listed_key_is_detected(events, settings):
    settings.ILM_AUDIT_KEYS = [*settings.ILM_AUDIT_KEYS, NEW_KEY]
    victim = events[-1]
    as_owner(f"UPDATE {TABLE} SET key_id = %s WHERE id = %s", [key_id_of(NEW_KEY), victim.pk])
    _checked, broken = verify()
    assert broken is not None and broken.event_id == victim.pk
    assert "does not match its hash" in broken.reason


def test_rotation_signs_with_the_new_key_and_still_verifies_the_old(events, integration, settings):
    old = signing_key()
    settings.ILM_AUDIT_KEYS = [NEW_KEY, *settings.ILM_AUDIT_KEYS]
    FlowFactory(integration=integration, name="After rotation")
    latest = Event.objects.order_by("-id").first()
    assert latest.key_id == key_id_of(NEW_KEY) != old.id
    assert latest.prev_hash == events[-1].hash
    assert verify() == (len(events) + 1, None)


def test_dropping_a_retired_key_too_soon_names_it(events, integration, settings):
    old = signing_key()
    settings.ILM_AUDIT_KEYS = [NEW_KEY]
    FlowFactory(integration=integration)
    checked, broken = verify()
    assert checked == 0 and broken.event_id == events[0].pk
    assert f"signed with key {old.id}, which ILM_AUDIT_KEY does not list" in broken.reason


def _legacy_log(count: int) -> list[Event]:
    """A log as it was before keys: unkeyed SHA-256 hashes, empty key ids."""
    prev, made = "", []
    for n in range(count):
        event = Event(
            resource_type="flow",
            resource_name=f"Old flow {n}",
            action="created",
        )
        event.key_id, event.prev_hash = LEGACY_KEY_ID, prev
        event.hash = hash_of(prev, _values(event), key_id=LEGACY_KEY_ID)
        event.save(force_insert=True)  # as the old append() did
        prev = event.hash
        made.append(event)
    return made


@pytest.fixture
def upgraded_log(db):
    """Three events from before the key, then events appended after the upgrade."""
    assert not Event.objects.exists()
    legacy = _legacy_log(3)
    FlowFactory()
    keyed = list(Event.objects.filter(id__gt=legacy[-1].pk).order_by("id"))
    assert keyed and keyed[0].prev_hash == legacy[-1].hash and keyed[0].key_id
    return legacy, keyed


def test_unkeyed_events_fail_unless_declared_as_the_legacy_prefix(upgraded_log, settings):
    legacy, keyed = upgraded_log
    checked, broken = verify()
    assert checked == 0 and broken.event_id == legacy[0].pk
    assert "ILM_AUDIT_LEGACY_EVENTS" in broken.reason
    settings.ILM_AUDIT_LEGACY_EVENTS = len(legacy)
    assert verify() == (len(legacy) + len(keyed), None)


def test_unkeyed_rewrite_of_the_keyed_part_is_detected_despite_a_legacy_prefix(
    upgraded_log, settings
):
    legacy, keyed = upgraded_log
    settings.ILM_AUDIT_LEGACY_EVENTS = len(legacy)
    # Turn the keyed events into "legacy" ones with keyless hashes: a downgrade.
    rewrite_and_rechain(keyed[0].pk, "innocent", unkeyed)
    _checked, broken = verify()
    assert broken is not None and broken.event_id == keyed[0].pk
    assert "only the first 3 event(s) may be" in broken.reason


def test_rewriting_inside_the_legacy_prefix_breaks_the_first_keyed_link(upgraded_log, settings):
    legacy, keyed = upgraded_log
    settings.ILM_AUDIT_LEGACY_EVENTS = len(legacy)
    # Rechain only the legacy events: the first keyed event's signed link no longer matches.
    legacy[1].resource_name = "innocent"
    prev = legacy[0].hash
    for event in legacy[1:]:
        _key, digest = unkeyed(prev, _values(event))
        as_owner(
            f"UPDATE {TABLE} SET resource_name = %s, prev_hash = %s, hash = %s WHERE id = %s",
            [event.resource_name, prev, digest, event.pk],
        )
        prev = digest
    _checked, broken = verify()
    assert broken is not None and broken.event_id == keyed[0].pk
    assert "link to the previous event" in broken.reason


def _production(env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ILM_", "DJANGO_", "DATABASE_", "SECRET_", "ALLOWED_"))
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env={
            **base,
            "DJANGO_SETTINGS_MODULE": "ilm_site.settings.production",
            "SECRET_KEY": "test-only-" + hashlib.sha256(b"x").hexdigest(),
            "ALLOWED_HOSTS": "ilm.example.com",
            # Credential keys are required too; this test is about the audit key.
            "ILM_SECRET_KEYS": "0PnmEy1wXJ3e6cXoTxCl8_aPYv6cR4o0N6k5t0MEN1c=",
            **env,
        },
        cwd=django_settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("key", "why"),
    [
        (None, "Set the ILM_AUDIT_KEY environment variable"),
        ("", "ILM_AUDIT_KEY must list one or more keys"),
        ("too-short", "at least 32 characters"),
        (django_settings.DEV_AUDIT_KEY, "not the development key"),
    ],
)
def test_production_refuses_to_start_without_a_real_audit_key(key, why):
    result = _production({} if key is None else {"ILM_AUDIT_KEY": key})
    assert result.returncode != 0
    assert why in result.stderr


def test_production_starts_with_a_key_and_passes_the_deploy_check():
    result = _production({"ILM_AUDIT_KEY": f"{NEW_KEY},{'retired-' * 5}"})
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the loader uses COPY")
def test_bench_loader_writes_a_chain_that_verifies(integration, developer):
    from tests.bench import audit_events

    before = Event.objects.count()
    audit_events.load(40, [integration], [(developer.pk, developer.username)])
    loaded = Event.objects.order_by("-id")[:40]
    assert {e.key_id for e in loaded} == {signing_key().id}
    assert verify() == (before + 40, None)
