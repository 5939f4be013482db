"""The keyed hash chain: every event's hash is an HMAC over its content and the previous
event's hash, under a key that lives outside the database (`ILM_AUDIT_KEY`).

Without the key, a changed event cannot be given a valid hash, and neither can the
events after it: whoever can write to the table directly still cannot rewrite the past
unseen. `ILM_AUDIT_KEY` is a comma-separated list: the first key signs new events, the
others are retired keys kept to verify older events; each event stores the id of the key
it was signed with (`key_id`, a fingerprint of the key, covered by the HMAC). Events
written before keys existed have an empty `key_id` and a plain SHA-256 hash; they are
accepted only as the first `ILM_AUDIT_LEGACY_EVENTS` events of the log (0 unless set),
so turning keyed events into unkeyed ones is caught as well.

`append()` is the only way events are written. On PostgreSQL it takes a
transaction-level advisory lock first (after the rows of the integrations concerned, see
`_lock`), so appends from concurrent transactions queue up and the chain order is the id
order; the lock is released when the surrounding transaction commits or rolls back (an
event written inside a change's transaction lands or disappears with it). `check()` walks
the chain in id order and names the first broken link; events removed from the end leave
a valid, shorter chain, which only checkpoints kept outside the table show
(audit/checkpoints.py, held against the chain by `check(checkpoints=…)`).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from django.conf import settings
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
# Everything stored about an event's place in the chain, after its content: what
# audit_export writes and the benchmark's loader copies in, besides the id.
CHAIN_FIELDS: tuple[str, ...] = (*HASHED_FIELDS, "key_id", "prev_hash", "hash")

# The key id of events hashed before the chain had a key (plain SHA-256).
LEGACY_KEY_ID = ""


class UnknownKeyError(LookupError):
    """An event or checkpoint names a key that ILM_AUDIT_KEY does not list."""


@dataclass(frozen=True)
class AuditKey:
    id: str
    secret: bytes = field(repr=False)

    @functools.cached_property
    def _prepared(self) -> hmac.HMAC:
        return hmac.new(self.secret, digestmod=hashlib.sha256)

    def mac(self, message: bytes) -> str:
        """HMAC-SHA256 of `message` (from a prepared state: the key is set up once)."""
        mac = self._prepared.copy()
        mac.update(message)
        return mac.hexdigest()


def key_id_of(secret: str) -> str:
    """A key's id: a fingerprint that names the key without giving it away."""
    return hashlib.sha256(b"ilm-audit-key-id:" + secret.encode()).hexdigest()[:12]


@functools.lru_cache(maxsize=8)
def _parse_keys(secrets: tuple[str, ...]) -> tuple[tuple[AuditKey, ...], dict[str, AuditKey]]:
    keys = tuple(AuditKey(key_id_of(s), s.encode()) for s in (s.strip() for s in secrets) if s)
    if not keys:
        raise UnknownKeyError("ILM_AUDIT_KEY lists no key: the audit log cannot be signed.")
    return keys, {key.id: key for key in reversed(keys)}


def audit_keys() -> tuple[AuditKey, ...]:
    """The configured keys, the signing key first."""
    return _parse_keys(tuple(settings.ILM_AUDIT_KEYS))[0]


def signing_key() -> AuditKey:
    return audit_keys()[0]


def key_named(key_id: str) -> AuditKey:
    try:
        return _parse_keys(tuple(settings.ILM_AUDIT_KEYS))[1][key_id]
    except KeyError:
        raise UnknownKeyError(
            f"it is signed with key {key_id}, which ILM_AUDIT_KEY does not list "
            "(keep retired keys in the list, after the current one)"
        ) from None


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


# A number token in orjson's compact output that may be an integral float (`_stable` turns
# 2.0 into 2): "2.0" or any exponent form, right after ":", "," or "[". Text inside a
# string can match too, which only costs the slow path below; 0.5 and other floats with
# a fraction are hashed as they are either way.
_MAYBE_INTEGRAL_FLOAT = re.compile(rb"[:,\[]-?[0-9]+(?:\.0[,\]}]|(?:\.[0-9]+)?[eE])")


def changes_bytes(changes: Any) -> bytes:
    """The canonical bytes of an event's changes, as its hash covers them.

    orjson's C serialiser does the work; the Python walk (`_stable`) runs only when the
    bytes may hold a float (or a key that is not a string), which field changes of
    configuration seldom do. Both give the same bytes wherever both apply.
    """
    return _changes_bytes(changes)[0]


def _changes_bytes(changes: Any) -> tuple[bytes, bool]:
    """`changes_bytes`, and whether those bytes are also the changes exactly as given (JSON
    that can be stored as it is: no integral float was turned into an integer)."""
    changes = changes or []
    try:
        raw = orjson.dumps(changes, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # a key that is not a string: _stable makes it one
        raw = None
    if raw is not None and _MAYBE_INTEGRAL_FLOAT.search(raw) is None:
        return raw, True
    return orjson.dumps(_stable(changes), option=orjson.OPT_SORT_KEYS), False


def content_of(values: dict[str, Any]) -> bytes:
    """The canonical bytes of an event's content (sorted keys, UTC microsecond times).

    `values["changes"]` may be given as its `changes_bytes` already (an orjson.Fragment).
    """
    data = {}
    for name in HASHED_FIELDS:
        value = values.get(name)
        if name == "at" and isinstance(value, datetime):
            value = value.astimezone(UTC).isoformat(timespec="microseconds")
        elif name == "operation_id" and value is not None:
            value = str(value)
        elif name == "changes" and not isinstance(value, orjson.Fragment):
            value = orjson.Fragment(changes_bytes(value))
        data[name] = value
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def hash_of(prev_hash: str, values: dict[str, Any], *, key_id: str | None = None) -> str:
    """An event's hash: HMAC-SHA256 under the key named `key_id` (default: the signing
    key) over the key id, the previous hash and the content; `LEGACY_KEY_ID` gives the
    unkeyed SHA-256 of events written before keys existed."""
    if key_id == LEGACY_KEY_ID:
        return hashlib.sha256(prev_hash.encode() + content_of(values)).hexdigest()
    key = signing_key() if key_id is None else key_named(key_id)
    return key.mac(key.id.encode() + b"\n" + prev_hash.encode() + content_of(values))


def seal(prev_hash: str, values: dict[str, Any]) -> tuple[str, str]:
    """(key id, hash) of a new event after `prev_hash`, signed with the signing key."""
    key = signing_key()
    return key.id, hash_of(prev_hash, values, key_id=key.id)


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
        # Each event's changes are serialised once: for its hash and, as they are, for COPY.
        stored: list[str | None] = []
        times: dict[datetime, str] = {}
        for event in events:
            if event.at.tzinfo is None:
                raise ValueError("Audit event times must be timezone-aware.")
            raw, exact = _changes_bytes(event.changes)
            values = _values(event)
            values["changes"] = orjson.Fragment(raw)
            # Events written together mostly share one time: formatted once.
            if event.at not in times:
                times[event.at] = event.at.astimezone(UTC).isoformat(timespec="microseconds")
            values["at"] = times[event.at]
            event.prev_hash = prev
            event.key_id, event.hash = seal(prev, values)
            prev = event.hash
            stored.append(raw.decode() if exact else None)
        if len(events) == 1:
            events[0].save(force_insert=True)
        elif connection.vendor == "postgresql":
            _copy(events, stored)
        else:
            Event.objects.bulk_create(events, batch_size=1000)
    return events


# Every column COPY writes, the id first (taken from the sequence beforehand).
_COPY_COLUMNS: tuple[str, ...] = ("id", *CHAIN_FIELDS)


def _copy(events: list[Event], changes: list[str | None]) -> None:
    """Insert many events with one COPY (the chain's lock is held: ids come in order).
    `changes[i]`: the JSON text of events[i].changes, where it is known already."""
    meta = Event._meta
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    columns = [meta.get_field(name) for name in _COPY_COLUMNS]
    at = _COPY_COLUMNS.index("changes")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [meta.db_table, len(events)],
        )
        for event, (pk,) in zip(events, sorted(cursor.fetchall()), strict=True):
            event.pk = pk
        names = ", ".join(quote(c.column) for c in columns)
        with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for event, text in zip(events, changes, strict=True):
                # Plain values (str, int, datetime, UUID, None): PostgreSQL parses them
                # by the column's type; the changes as orjson text.
                row = [getattr(event, c.attname) for c in columns]
                row[at] = text if text is not None else orjson.dumps(event.changes).decode()
                copy.write_row(row)
        # The events are saved rows now, as bulk_create would leave them.
        for event in events:
            event._state.adding = False
            event._state.db = connection.alias


@dataclass(frozen=True)
class BrokenLink:
    event_id: int
    reason: str

    def __str__(self) -> str:
        return f"event {self.event_id}: {self.reason}"


@dataclass(frozen=True)
class Checkpoint:
    """The chain's head at a moment: `count` events, the last one `last_id` with `head`
    as its hash. Kept outside the table, it shows events later removed from the end."""

    at: str
    count: int
    last_id: int | None  # None only when count is 0
    head: str


@dataclass(frozen=True)
class Verdict:
    checked: int
    broken: BrokenLink | None
    # The head of a wholly intact log (None when broken): a checkpoint worth keeping.
    head: Checkpoint | None


def _legacy_problem(row: dict[str, Any], position: int, keyed_seen: bool) -> str | None:
    if row.get("key_id", LEGACY_KEY_ID) != LEGACY_KEY_ID:
        return None
    if keyed_seen:
        return "it is not signed with a key, yet signed events come before it (it was rewritten)"
    allowed = settings.ILM_AUDIT_LEGACY_EVENTS
    if position > allowed:
        return (
            f"it is not signed with a key, and only the first {allowed} event(s) may be "
            "(ILM_AUDIT_LEGACY_EVENTS: the events written before ILM_AUDIT_KEY existed)"
        )
    return None


def walk(
    rows: Iterable[dict[str, Any]], *, checkpoints: Sequence[Checkpoint] = ()
) -> Iterator[tuple[int, BrokenLink | None]]:
    """Check rows in id order; yields (id, first problem or None) for each row, then, if
    the rows end before an event a checkpoint recorded, (that event's id, the problem)."""
    # Oldest first; a deque, since a year of checkpoints is tens of thousands of them.
    pending = deque(sorted((c for c in checkpoints if c.count), key=lambda c: c.last_id))
    prev_hash = ""
    prev_id: int | None = None
    position = 0
    keyed_seen = False
    for row in rows:
        position += 1
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
        legacy = _legacy_problem(row, position, keyed_seen)
        if legacy is not None:
            yield row["id"], BrokenLink(row["id"], legacy)
            return
        key_id = row.get("key_id", LEGACY_KEY_ID)
        keyed_seen = keyed_seen or key_id != LEGACY_KEY_ID
        try:
            expected = hash_of(prev_hash, row, key_id=key_id)
        except UnknownKeyError as exc:
            yield row["id"], BrokenLink(row["id"], str(exc))
            return
        if not hmac.compare_digest(row["hash"].encode(), expected.encode()):
            yield (
                row["id"],
                BrokenLink(row["id"], "its content does not match its hash (it was changed)"),
            )
            return
        if pending and pending[0].last_id < row["id"]:
            # The recorded event is not in the log although later ones are.
            yield row["id"], _missing(pending[0])
            return
        while pending and pending[0].last_id == row["id"]:
            checkpoint = pending.popleft()
            if checkpoint.count != position or checkpoint.head != row["hash"]:
                yield (
                    row["id"],
                    BrokenLink(
                        row["id"],
                        f"the checkpoint of {checkpoint.at} recorded it as event number "
                        f"{checkpoint.count} with hash {checkpoint.head}; the log has it as "
                        f"number {position} with hash {row['hash']} (events were removed, "
                        "inserted or rewritten)",
                    ),
                )
                return
        yield row["id"], None
        prev_hash, prev_id = row["hash"], row["id"]
    if pending:
        yield pending[0].last_id, _missing(pending[0], empty=position == 0)


def _missing(checkpoint: Checkpoint, *, empty: bool = False) -> BrokenLink:
    if empty:
        why = "the log is empty (it was truncated)"
    else:
        why = "it is missing (events were deleted from the end of the log, or it was truncated)"
    return BrokenLink(
        checkpoint.last_id,
        f"the checkpoint of {checkpoint.at} recorded {checkpoint.count} event(s) ending "
        f"with this one, hash {checkpoint.head}; {why}",
    )


def check(*, chunk_size: int = 5000, checkpoints: Sequence[Checkpoint] = ()) -> Verdict:
    """Walk the whole chain, and hold it against the checkpoints given (if any)."""
    rows = Event.objects.order_by("id").values("id", *CHAIN_FIELDS).iterator(chunk_size=chunk_size)
    checked = 0
    last_id: int | None = None
    for event_id, problem in walk(rows, checkpoints=checkpoints):
        if problem is not None:
            return Verdict(checked, problem, None)
        checked += 1
        last_id = event_id
    # walk() hands out ids only: read the last hash back (rows are immutable).
    head = ""
    if last_id is not None:
        head = Event.objects.values_list("hash", flat=True).get(pk=last_id)
    return Verdict(checked, None, Checkpoint(now_text(), checked, last_id, head))


def verify(*, chunk_size: int = 5000) -> tuple[int, BrokenLink | None]:
    """Walk the whole chain; returns (events checked, first broken link or None)."""
    verdict = check(chunk_size=chunk_size)
    return verdict.checked, verdict.broken


def now_text() -> str:
    """The current UTC time as checkpoints write it."""
    return datetime.now(UTC).isoformat(timespec="seconds")
