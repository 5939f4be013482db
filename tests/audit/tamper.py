"""What someone who bypasses the database's guard can do to the audit log.

Only the table's owner (or a superuser) can switch the guard triggers off; the tests use
it to show that what gets past the database is still caught by the key and checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection

from audit.chain import HASHED_FIELDS, LEGACY_KEY_ID, content_of
from audit.models import Event

TABLE = Event._meta.db_table
GUARDS = ("audit_event_no_rewrite", "audit_event_no_truncate")


def raw(sql: str, params: Sequence[Any] = ()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def as_owner(sql: str, params: Sequence[Any] = ()) -> None:
    """Run a statement with the guard triggers off (the owner's power), then restore them
    exactly as they were."""
    if connection.vendor != "postgresql":
        raw(sql, params)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname, tgenabled FROM pg_trigger WHERE tgname = ANY(%s)", [list(GUARDS)]
        )
        before = dict(cursor.fetchall())
        for name in before:
            cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER {name}")
        cursor.execute(sql, params)
        for name, state in before.items():
            if state != "D":
                cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER {name}")


def rewrite_and_rechain(event_id: int, resource_name: str, sign) -> None:
    """Change one event, then recompute its hash and every later one with `sign(prev,
    values) -> (key_id, hash)`: all a tamperer can do without the key."""
    rows = list(
        Event.objects.filter(id__gte=event_id)
        .order_by("id")
        .values("id", "prev_hash", *HASHED_FIELDS)
    )
    prev = rows[0]["prev_hash"]
    for row in rows:
        if row["id"] == event_id:
            row["resource_name"] = resource_name
        key_id, digest = sign(prev, row)
        as_owner(
            f"UPDATE {TABLE} SET resource_name = %s, key_id = %s, prev_hash = %s, hash = %s"
            " WHERE id = %s",
            [row["resource_name"], key_id, prev, digest, row["id"]],
        )
        prev = digest


def unkeyed(prev: str, values: dict[str, Any]) -> tuple[str, str]:
    """The app's old, keyless hash function: what anyone can compute."""
    import hashlib

    return LEGACY_KEY_ID, hashlib.sha256(prev.encode() + content_of(values)).hexdigest()


def guessed_key(key_id: str):
    """Sign like the app does, under the real key's id but a key the tamperer made up."""
    import hashlib
    import hmac

    def sign(prev: str, values: dict[str, Any]) -> tuple[str, str]:
        message = key_id.encode() + b"\n" + prev.encode() + content_of(values)
        return key_id, hmac.new(b"guessed", message, hashlib.sha256).hexdigest()

    return sign
