"""The hash chain: every event's hash covers its content and the previous event's hash.

`append()` is the only way events are written. On PostgreSQL it takes a
transaction-level advisory lock first (after the rows of the integrations concerned, see
`_lock`), so appends from concurrent transactions queue up and the chain order is the id
order; the lock is released when the surrounding
transaction commits or rolls back (an event written inside a change's transaction lands
or disappears with it). `verify()` walks the chain in id order and names the first
broken link.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from django.db import connection, transaction

from .models import Event

# pg_advisory_xact_lock key: "ILMAUDIT" as a 64-bit integer, unlikely to meet another lock.
LOCK_KEY = int.from_bytes(b"ILMAUDIT", "big") & 0x7FFF_FFFF_FFFF_FFFF

# The columns the hash covers, in a fixed order (the id is not: it is given by the
# database after the hash is computed; the prev_hash link orders the chain instead).
HASHED_FIELDS: tuple[str, ...] = (
    "at",
    "user_id",
    "username",
    "source",
    "remote_addr",
    "integration_id",
    "integration_name",
    "revision_id",
    "resource_type",
    "resource_id",
    "resource_name",
    "action",
    "changes",
    "operation_id",
)


def _stable(value: Any) -> Any:
    # jsonb may hand an integral float back as an integer (1e20 → 100000000000000000000):
    # hash both the same way so a value read back hashes as it did when written.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _stable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_stable(v) for v in value]
    return value


def content_of(values: dict[str, Any]) -> bytes:
    """The canonical bytes of an event's content (sorted keys, UTC microsecond times)."""
    data = {}
    for name in HASHED_FIELDS:
        value = values.get(name)
        if name == "at" and isinstance(value, datetime):
            value = value.astimezone(UTC).isoformat(timespec="microseconds")
        elif name == "operation_id" and value is not None:
            value = str(value)
        elif name == "changes":
            value = _stable(value or [])
        data[name] = value
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def hash_of(prev_hash: str, values: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + content_of(values)).hexdigest()


def _values(event: Event) -> dict[str, Any]:
    return {name: getattr(event, name) for name in HASHED_FIELDS}


def _lock(integration_ids: list[int]) -> None:
    """Take the chain's lock, after the rows of the integrations the events are about.

    Every write to an integration locks its row before it commits (the version bump),
    and the engine locks it first thing. Locking it here, before the chain's lock, keeps
    one lock order for all writers: a writer holding the chain's lock never waits for an
    integration row that a waiter for the chain's lock holds (which would deadlock).
    """
    from integrations.models import Integration

    with connection.cursor() as cursor:
        if integration_ids:
            table = connection.ops.quote_name(Integration._meta.db_table)
            cursor.execute(
                f'SELECT "id" FROM {table} WHERE "id" = ANY(%s) ORDER BY "id" FOR NO KEY UPDATE',
                [integration_ids],
            )
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])


def append(events: list[Event]) -> list[Event]:
    """Chain and insert events, in order, in one transaction (joining the caller's)."""
    if not events:
        return events
    with transaction.atomic():
        if connection.vendor == "postgresql":
            _lock(sorted({e.integration_id for e in events if e.integration_id}))
        prev = Event.objects.order_by("-id").values_list("hash", flat=True).first() or ""
        for event in events:
            if event.at.tzinfo is None:
                raise ValueError("Audit event times must be timezone-aware.")
            event.prev_hash = prev
            event.hash = hash_of(prev, _values(event))
            prev = event.hash
        if len(events) == 1:
            events[0].save(force_insert=True)
        else:
            Event.objects.bulk_create(events, batch_size=1000)
    return events


@dataclass(frozen=True)
class BrokenLink:
    event_id: int
    reason: str

    def __str__(self) -> str:
        return f"event {self.event_id}: {self.reason}"


def walk(rows: Iterable[dict[str, Any]]) -> Iterator[tuple[int, BrokenLink | None]]:
    """Check rows in id order; yields (id, first problem or None) for each row."""
    prev_hash = ""
    prev_id: int | None = None
    for row in rows:
        if row["prev_hash"] != prev_hash:
            after = f"event {prev_id}" if prev_id is not None else "the start of the log"
            yield (
                row["id"],
                BrokenLink(
                    row["id"],
                    f"its link to the previous event does not match {after} "
                    "(an event before it was removed, inserted or changed)",
                ),
            )
            return
        expected = hash_of(prev_hash, row)
        if row["hash"] != expected:
            yield (
                row["id"],
                BrokenLink(row["id"], "its content does not match its hash (it was changed)"),
            )
            return
        yield row["id"], None
        prev_hash, prev_id = row["hash"], row["id"]


def verify(*, chunk_size: int = 5000) -> tuple[int, BrokenLink | None]:
    """Walk the whole chain; returns (events checked, first broken link or None)."""
    rows = (
        Event.objects.order_by("id")
        .values("id", "prev_hash", "hash", *HASHED_FIELDS)
        .iterator(chunk_size=chunk_size)
    )
    checked = 0
    for _id, problem in walk(rows):
        if problem is not None:
            return checked, problem
        checked += 1
    return checked, None
