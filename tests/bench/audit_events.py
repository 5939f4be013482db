"""A million audit events for figure 6, generated fast and kept in the template database.

Events are written with PostgreSQL COPY in one transaction, chained and signed with the
audit app's own `audit.chain.seal` (HMAC under the ILM_AUDIT_KEY signing key, its key id
stored) from the last event already there, so `audit_verify` still passes on the
benchmark database; the table's secondary indexes are dropped during the load and
rebuilt after (building an index once is far cheaper than updating seven indexes a
million times). The append-only triggers refuse UPDATE, DELETE and TRUNCATE only, so
COPY is not in their way.

Layout (deterministic, seed 6): 20 integrations "Bench audit NN" with exactly
`total / 20` events each; every event has exactly two field changes, so the CSV of one
integration at one million events has exactly 100,000 rows (one row per field change).
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

AUDIT_INTEGRATIONS = 20
PREFIX = "Bench audit"
SEED = 6
_TYPES = ("connection", "lookup_cache", "script", "flow", "step")
_ACTIONS = (("updated", 80), ("created", 12), ("deleted", 8))
_SOURCES = (("ui", 55), ("api", 25), ("ilm", 18), ("system", 2))
_FIELDS = ("name", "config", "description", "schedule", "code", "settings", "enabled")


def available() -> bool:
    try:
        from audit import chain  # noqa: F401
        from audit.models import Event  # noqa: F401
    except ImportError:
        return False
    return True


def integrations() -> list[Any]:
    from integrations.models import Environment, Integration

    existing = list(Integration.objects.filter(name__startswith=PREFIX).order_by("name"))
    if len(existing) == AUDIT_INTEGRATIONS:
        return existing
    return [
        Integration.objects.get_or_create(
            name=f"{PREFIX} {i + 1:02d}",
            defaults={"environment": Environment.PRODUCTION, "description": "Audit benchmark"},
        )[0]
        for i in range(AUDIT_INTEGRATIONS)
    ]


def generated_count(targets: list[Any]) -> int:
    from audit.models import Event

    # Creating the integrations wrote events of their own (type "integration").
    return Event.objects.filter(
        integration_id__in=[i.pk for i in targets], resource_type__in=_TYPES
    ).count()


def ensure(total: int, admin: Any) -> bool:
    """Make sure `total` generated events exist; returns whether any were written now."""
    from django.contrib.auth import get_user_model

    targets = integrations()
    have = generated_count(targets)
    if have >= total:
        return False
    if have:
        raise SystemExit(
            f"The benchmark database holds {have} of {total} generated audit events (an"
            " interrupted load?): drop the ilm_bench databases and run make bench again."
        )
    users = list(get_user_model().objects.order_by("pk").values_list("pk", "username"))
    print(f"generating {total:,} audit events (once; kept in the template)…", flush=True)
    import time

    start = time.perf_counter()
    load(total, targets, users)
    print(f"… done in {time.perf_counter() - start:.0f} s", flush=True)
    return True


def _weighted(rng: random.Random, choices: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def rows(total: int, targets: list[Any], users: list[tuple[int, str]], *, seed: int = SEED):
    """The events' column values, oldest first (pure: same seed, same events)."""
    rng = random.Random(seed)
    per = total // len(targets)
    end = datetime(2026, 11, 1, tzinfo=UTC)
    step = timedelta(days=365) / max(total, 1)
    at = end - timedelta(days=365)
    operation = uuid.UUID(int=rng.getrandbits(128), version=4)
    counts = dict.fromkeys(range(len(targets)), 0)
    for n in range(per * len(targets)):
        at += step
        index = n % len(targets)
        counts[index] += 1
        integration = targets[index]
        if rng.random() < 0.3:  # about three events per request/operation
            operation = uuid.UUID(int=rng.getrandbits(128), version=4)
        user_id, username = rng.choice(users)
        rtype = rng.choice(_TYPES)
        action = _weighted(rng, _ACTIONS)
        resource_id = rng.randint(1, 50_000)
        fields = rng.sample(_FIELDS, 2)
        changes = [
            {
                "field": f,
                "old": None if action == "created" else f"{f} value {rng.randint(1, 999)}",
                "new": None if action == "deleted" else f"{f} value {rng.randint(1, 999)}",
            }
            for f in fields
        ]
        yield {
            "at": at,
            "user_id": user_id,
            "username": username,
            "source": _weighted(rng, _SOURCES),
            "remote_addr": f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            "integration_id": integration.pk,
            "integration_name": integration.name,
            "revision_id": None,
            "resource_type": rtype,
            "resource_id": resource_id,
            "resource_name": f"{rtype.replace('_', ' ').title()} {resource_id}",
            "action": action,
            "changes": changes,
            "operation_id": operation,
        }


def load(total: int, targets: list[Any], users: list[tuple[int, str]]) -> None:
    import orjson
    from django.db import connection, transaction

    from audit.chain import CHAIN_FIELDS, HASHED_FIELDS, LOCK_KEY, seal
    from audit.models import Event

    table = Event._meta.db_table
    # What the chain hashes, then key id and the two links: the columns audit_export writes.
    columns = list(CHAIN_FIELDS)
    by_attname = {f.attname: f.column for f in Event._meta.concrete_fields}
    db_columns = [f'"{by_attname[c]}"' for c in columns]
    copy_sql = f'COPY "{table}" ({", ".join(db_columns)}) FROM STDIN'
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        prev = Event.objects.order_by("-id").values_list("hash", flat=True).first() or ""
        with connection.schema_editor(atomic=False) as editor:
            for index in Event._meta.indexes:
                editor.remove_index(Event, index)
        with connection.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for values in rows(total, targets, users):
                key_id, digest = seal(prev, values)
                copy.write_row(
                    (
                        *[
                            orjson.dumps(values[c]).decode() if c == "changes" else values[c]
                            for c in HASHED_FIELDS
                        ],
                        key_id,
                        prev,
                        digest,
                    )
                )
                prev = digest
        with connection.schema_editor(atomic=False) as editor:
            for index in Event._meta.indexes:
                editor.add_index(Event, index)
    with connection.cursor() as cursor:
        cursor.execute(f'ANALYZE "{table}"')
