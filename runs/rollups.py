"""Rollups of live runs per hour and per UTC day: the one writer of `FlowHourRollup`,
`FlowDayRollup` and their latency rows.

A run adds its figures to the rows of its flow and the UTC hour and day it was created
in, in the transaction that ends it (`runs.services`: a run that stores its report, one found
interrupted, a queued run canceled). Test runs send nothing and are not counted.

One run's contribution (`figures_of`) and the sum of two (`added`) are plain dicts of
the row's fields, so the writer, the rebuild and the tests add up the same way:

    {"runs", "succeeded", "partial", "failed", "canceled", "records_in", "records_out",
     "errors", "retries": int,
     "errors_by_kind": {kind: n}, "http_classes": {"4xx"|"5xx"|"other": n},
     "latency": {connection lineage id: [bucket counts of runs.histogram]},
     "groups": {digest: {"step_lineage_id", "step_name", "message", "kind",
                "http_status", "flow_name", "count", "first_seen", "last_seen",
                "example_run_id"}},
     "last_run_at": datetime | None, "last_status": str, "last_run_id": int | None}

`groups` are the kept error records grouped by step and message (`digest_of`), the
payload issues of the Monitoring page.

A day row is the sum of its hours (the writers add a run to both; the rebuild folds
hours into days with `added`), so a range can be read as whole days plus the hours at
its ends. `rollup_rebuild` recomputes the rows from the raw runs (`manage.py
monitoring_rollup`); rows of hours whose runs were pruned are only kept when the rebuild
starts after them.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection as db_connection
from django.db import models, transaction
from django.db.models import Q

from . import histogram
from .models import (
    BUCKET_FIELDS,
    ERROR_KIND_FIELDS,
    FINAL_STATUSES,
    HTTP_CLASS_FIELDS,
    ConnectionDayLatency,
    ConnectionHourLatency,
    ConnectionLatency,
    ErrorGroup,
    ErrorGroupDay,
    ErrorGroupHour,
    FlowDayRollup,
    FlowHourRollup,
    FlowRollup,
    Run,
    RunError,
    RunMode,
    RunStatus,
    RunStep,
)

COUNTS = (
    "runs",
    "succeeded",
    "partial",
    "failed",
    "canceled",
    "records_in",
    "records_out",
    "errors",
    "retries",
)
MAPS = ("errors_by_kind", "http_classes")


def hour_of(moment: datetime) -> datetime:
    """The start of the UTC hour that holds `moment`."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_of(moment: datetime) -> datetime:
    """Midnight UTC of the day that holds `moment`."""
    return hour_of(moment).replace(hour=0)


def http_class(status: int | None) -> str | None:
    """`"4xx"` for 404: the class that the failures-by-cause chart shows."""
    if not status:
        return None
    cls = f"{status // 100}xx"
    return cls if cls in HTTP_CLASS_FIELDS else "other"


def empty() -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(COUNTS, 0)
    out.update(errors_by_kind={}, http_classes={}, latency={}, groups={})
    out.update(last_run_at=None, last_status="", last_run_id=None)
    return out


def counts(run: Run) -> bool:
    """Whether monitoring counts this run: live and ended."""
    return run.mode == RunMode.LIVE and run.status in FINAL_STATUSES


def digest_of(step_lineage_id: Any, message: str) -> str:
    """What groups error records: the same step and the same message."""
    return hashlib.sha256(f"{step_lineage_id}\n{message}".encode()).hexdigest()


def figures_of(
    run: Run,
    steps: Iterable[tuple[Any, Sequence[int]]],
    errors: Iterable[RunError],
) -> dict[str, Any]:
    """One ended run's contribution. `steps`: (connection lineage id or None, histogram)
    per step; `errors`: the kept error records (anything with their fields)."""
    out = empty()
    out["runs"] = 1
    if run.status in (
        RunStatus.SUCCEEDED,
        RunStatus.PARTIAL,
        RunStatus.FAILED,
        RunStatus.CANCELED,
    ):
        out[str(run.status)] = 1
    for field in ("records_in", "records_out", "errors", "retries"):
        out[field] = getattr(run, field) or 0
    for e in errors:
        kind, status = e.kind, e.http_status
        out["errors_by_kind"][kind] = out["errors_by_kind"].get(kind, 0) + 1
        cls = http_class(status)
        if cls:
            out["http_classes"][cls] = out["http_classes"].get(cls, 0) + 1
        one = {
            "step_lineage_id": e.step_lineage_id,
            "step_name": e.step_name or "",
            "message": e.message,
            "kind": kind,
            "http_status": status,
            "flow_name": run.flow_name,
            "count": 1,
            "first_seen": e.created_at,
            "last_seen": e.created_at,
            "example_run_id": run.pk,
        }
        digest = digest_of(e.step_lineage_id, e.message)
        groups = out["groups"]
        groups[digest] = group_added(groups[digest], one) if digest in groups else one
    for connection, hist in steps:
        if connection is None or not hist or not any(hist):
            continue
        key = str(connection)
        out["latency"][key] = histogram.merge(out["latency"].get(key, []), hist)
    out["last_run_at"] = run.created_at
    out["last_status"] = str(run.status)
    out["last_run_id"] = run.pk
    return out


def added(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The sum of two rollups (or contributions); neither is changed."""
    out = empty()
    for field in COUNTS:
        out[field] = (a.get(field) or 0) + (b.get(field) or 0)
    for field in MAPS:
        merged = dict(a.get(field) or {})
        for key, n in (b.get(field) or {}).items():
            merged[key] = merged.get(key, 0) + n
        out[field] = merged
    latency = {k: list(v) for k, v in (a.get("latency") or {}).items()}
    for key, hist in (b.get("latency") or {}).items():
        latency[key] = histogram.merge(latency.get(key, []), hist)
    out["latency"] = latency
    groups = dict(a.get("groups") or {})
    for digest, group in (b.get("groups") or {}).items():
        groups[digest] = group_added(groups[digest], group) if digest in groups else group
    out["groups"] = groups
    newer = b if _later(b, a) else a
    for field in ("last_run_at", "last_status", "last_run_id"):
        out[field] = newer.get(field)
    return out


def _greatest(x: Any, y: Any) -> Any:
    return y if x is None else x if y is None else max(x, y)


def group_added(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two error groups of the same digest as one: counts add, first and last seen
    widen, the texts and the example run are the greatest (as Max in SQL)."""
    out = dict(a)
    out["count"] = a["count"] + b["count"]
    out["first_seen"] = min(a["first_seen"], b["first_seen"])
    out["last_seen"] = max(a["last_seen"], b["last_seen"])
    for field in ("step_name", "kind", "http_status", "flow_name", "example_run_id"):
        out[field] = _greatest(a[field], b[field])
    return out


def _later(b: dict[str, Any], a: dict[str, Any]) -> bool:
    if b.get("last_run_at") is None:
        return False
    if a.get("last_run_at") is None:
        return True
    return (b["last_run_at"], b.get("last_run_id") or 0) > (
        a["last_run_at"],
        a.get("last_run_id") or 0,
    )


Key = tuple[int, uuid.UUID, datetime]


@dataclass(frozen=True)
class Level:
    """A level of rollups: its two tables, the name of their time column and the start of
    the period that holds a moment."""

    rollup: type[FlowRollup]
    latency: type[ConnectionLatency]
    errors: type[ErrorGroup]
    field: str
    start_of: Callable[[datetime], datetime]


HOURS = Level(FlowHourRollup, ConnectionHourLatency, ErrorGroupHour, "hour", hour_of)
DAYS = Level(FlowDayRollup, ConnectionDayLatency, ErrorGroupDay, "day", day_of)
# Written in this order by every writer, so two writers lock rows in the same order.
LEVELS = (HOURS, DAYS)


def key_of(run: Run, level: Level = HOURS) -> Key:
    return (run.integration_id, run.flow_lineage_id, level.start_of(run.created_at))


GROUP_FIELDS = (
    "step_lineage_id",
    "step_name",
    "message",
    "kind",
    "http_status",
    "flow_name",
    "count",
    "first_seen",
    "last_seen",
    "example_run_id",
)


def row_figures(
    row: FlowRollup,
    latencies: Iterable[ConnectionLatency],
    groups: Iterable[ErrorGroup] = (),
) -> dict[str, Any]:
    """A stored row (with its latency and error group rows) as a rollup dict."""
    out = {field: getattr(row, field) for field in COUNTS}
    out["errors_by_kind"] = {
        kind: getattr(row, f) for kind, f in ERROR_KIND_FIELDS.items() if getattr(row, f)
    }
    out["http_classes"] = {
        cls: getattr(row, f) for cls, f in HTTP_CLASS_FIELDS.items() if getattr(row, f)
    }
    out["latency"] = {str(lat.connection_lineage_id): lat.buckets for lat in latencies}
    out["groups"] = {g.digest: {f: getattr(g, f) for f in GROUP_FIELDS} for g in groups}
    out.update(last_run_at=row.last_run_at, last_status=row.last_status)
    out["last_run_id"] = row.last_run_id
    return out


FIGURE_FIELDS = (
    *COUNTS,
    *ERROR_KIND_FIELDS.values(),
    *HTTP_CLASS_FIELDS.values(),
    "last_run_at",
    "last_status",
    "last_run_id",
)


def _apply(row: FlowRollup, figures: dict[str, Any]) -> None:
    for field in COUNTS:
        setattr(row, field, figures[field])
    for kind, field in ERROR_KIND_FIELDS.items():
        setattr(row, field, figures["errors_by_kind"].get(kind, 0))
    for cls, field in HTTP_CLASS_FIELDS.items():
        setattr(row, field, figures["http_classes"].get(cls, 0))
    row.last_run_at = figures["last_run_at"]
    row.last_status = figures["last_status"] or ""
    row.last_run_id = figures["last_run_id"]


def _new_row(level: Level, key: Key, name: str, figures: dict[str, Any] | None = None):
    row = level.rollup(
        integration_id=key[0], flow_lineage_id=key[1], flow_name=name, **{level.field: key[2]}
    )
    _apply(row, figures or empty())
    return row


def _latency_rows(level: Level, key: Key, latency: dict[str, list[int]]) -> list[Any]:
    rows = []
    for connection, hist in latency.items():
        row = level.latency(
            integration_id=key[0],
            flow_lineage_id=key[1],
            connection_lineage_id=uuid.UUID(str(connection)),
            **{level.field: key[2]},
        )
        full = histogram.merge(hist, [])
        for field, n in zip(BUCKET_FIELDS, full, strict=True):
            setattr(row, field, n)
        rows.append(row)
    return rows


def _group_rows(level: Level, key: Key, groups: dict[str, dict[str, Any]]) -> list[Any]:
    return [
        level.errors(
            integration_id=key[0],
            flow_lineage_id=key[1],
            digest=digest,
            **{level.field: key[2]},
            **group,
        )
        for digest, group in groups.items()
    ]


def _by_key(level: Level, rows: Iterable[Any]) -> dict[Key, list[Any]]:
    out: dict[Key, list[Any]] = {}
    for row in rows:
        key = (row.integration_id, row.flow_lineage_id, getattr(row, level.field))
        out.setdefault(key, []).append(row)
    return out


def _keys_filter(level: Level, keys: Iterable[Key]) -> Q:
    keys = list(keys)
    return Q(
        integration_id__in={k[0] for k in keys},
        flow_lineage_id__in={k[1] for k in keys},
        **{f"{level.field}__gte": min(k[2] for k in keys)},
        **{f"{level.field}__lte": max(k[2] for k in keys)},
    )


def _add(level: Level, contributions: dict[Key, dict[str, Any]], names: dict[Key, str]) -> None:
    """Add figures to the rows of their keys (created when missing), in the caller's
    transaction. The rows are made to exist, then locked in primary-key order before they
    are read, so two writers of the same period (a flow's live runs follow each other, but
    a rebuild may be running) both count; latency and error group rows are only written
    under their flow row's lock."""
    if not contributions:
        return
    where = _keys_filter(level, contributions)
    level.rollup.objects.bulk_create(
        [_new_row(level, key, names[key]) for key in contributions], ignore_conflicts=True
    )
    rows = {
        (r.integration_id, r.flow_lineage_id, getattr(r, level.field)): r
        for r in level.rollup.objects.select_for_update().filter(where).order_by("pk")
    }
    latencies = _by_key(level, level.latency.objects.filter(where))
    groups: dict[Key, list[Any]] = {}
    if any(f["groups"] for f in contributions.values()):
        groups = _by_key(level, level.errors.objects.filter(where))
    changed, stale, fresh, stale_groups, fresh_groups = [], [], [], [], []
    for key, figures in contributions.items():
        row = rows[key]
        mine = latencies.get(key, [])
        their_groups = groups.get(key, [])
        total = added(row_figures(row, mine, their_groups), figures)
        _apply(row, total)
        if row.last_run_id == figures["last_run_id"]:
            row.flow_name = names[key]
        changed.append(row)
        # Only the connections and error groups these runs added to change; their rows
        # are replaced.
        called = set(figures["latency"])
        stale.extend(lat.pk for lat in mine if str(lat.connection_lineage_id) in called)
        fresh.extend(
            _latency_rows(level, key, {c: total["latency"][c] for c in figures["latency"]})
        )
        stale_groups.extend(g.pk for g in their_groups if g.digest in figures["groups"])
        fresh_groups.extend(
            _group_rows(level, key, {d: total["groups"][d] for d in figures["groups"]})
        )
    _update(level.rollup, changed, [*FIGURE_FIELDS, "flow_name"])
    for model, pks, new in (
        (level.latency, stale, fresh),
        (level.errors, stale_groups, fresh_groups),
    ):
        if pks:
            model.objects.filter(pk__in=pks).delete()
        model.objects.bulk_create(new, batch_size=1000)


def _update(model: type[models.Model], rows: list[Any], fields: Sequence[str]) -> None:
    """Write `fields` of many rows. On PostgreSQL one UPDATE … FROM (VALUES …) per 1,000
    rows: Django's bulk_update writes a CASE with a branch per row for every column,
    which PostgreSQL evaluates row by row (quadratic in the batch)."""
    if db_connection.vendor != "postgresql":
        model.objects.bulk_update(rows, fields, batch_size=500)
        return
    meta = model._meta
    columns = [meta.get_field(f) for f in fields]
    pk = meta.pk.column
    sets = ", ".join(f'"{c.column}" = v."{c.column}"::{c.db_type(db_connection)}' for c in columns)
    names = ", ".join(f'"{c}"' for c in [pk, *(c.column for c in columns)])
    with db_connection.cursor() as cursor:
        for i in range(0, len(rows), 1000):
            chunk = rows[i : i + 1000]
            placeholder = "(" + ", ".join(["%s"] * (len(columns) + 1)) + ")"
            params: list[Any] = []
            for row in chunk:
                params.append(row.pk)
                params.extend(
                    c.get_db_prep_save(getattr(row, c.attname), db_connection) for c in columns
                )
            cursor.execute(
                f'UPDATE "{meta.db_table}" AS t SET {sets} FROM (VALUES '
                + ", ".join([placeholder] * len(chunk))
                + f') AS v({names}) WHERE t."{pk}" = v."{pk}"::bigint',
                params,
            )


def rollup_run(
    run: Run,
    *,
    steps: Iterable[RunStep] | None = None,
    errors: Iterable[RunError] | None = None,
) -> None:
    """Add an ended live run to its flow's hour and day (call it in the run-ending
    transaction).

    `steps` and `errors` are the run's rows when the caller has them in hand; otherwise
    they are read.
    """
    if not counts(run):
        return
    if steps is None:
        steps = RunStep.objects.filter(run_id=run.pk).only("connection_lineage_id", "histogram")
    if errors is None:
        errors = RunError.objects.filter(run_id=run.pk).only(
            "step_lineage_id", "step_name", "message", "kind", "http_status", "created_at"
        )
    rollup_runs([(run, steps, errors)])


def rollup_runs(ended: Iterable[tuple[Run, Iterable[RunStep], Iterable[RunError]]]) -> int:
    """Add many ended runs (each with its step and kept error rows) to their hours and
    days at once: what `rollup_run` does for one, in one transaction and a few queries
    per level. The runtime's bulk path (runs recorded in batches) and the benchmark's
    generator call it. Runs monitoring does not count are skipped; returns how many
    were added."""
    hours: dict[Key, dict[str, Any]] = {}
    names: dict[Key, str] = {}
    n = 0
    for run, steps, errors in ended:
        if not counts(run):
            continue
        figures = figures_of(
            run, ((s.connection_lineage_id, s.histogram or []) for s in steps), errors
        )
        key = key_of(run)
        hours[key] = added(hours.get(key) or empty(), figures)
        if hours[key]["last_run_id"] == run.pk:
            names[key] = run.flow_name
        n += 1
    days, day_names = by_day(hours, names)
    with transaction.atomic():
        _add(HOURS, hours, names)
        _add(DAYS, days, day_names)
    return n


def by_day(
    hours: dict[Key, dict[str, Any]], names: dict[Key, str]
) -> tuple[dict[Key, dict[str, Any]], dict[Key, str]]:
    """Hourly figures (and their flow names) added up per UTC day."""
    days: dict[Key, dict[str, Any]] = {}
    day_names: dict[Key, str] = {}
    for key, figures in sorted(hours.items(), key=lambda kv: kv[0][2]):
        day = (key[0], key[1], day_of(key[2]))
        days[day] = added(days.get(day) or empty(), figures)
        if days[day]["last_run_id"] == figures["last_run_id"]:
            day_names[day] = names[key]
    return days, day_names


def recount(runs: Iterable[Run], level: Level = HOURS) -> dict[Key, dict[str, Any]]:
    """Rollups computed from raw runs (with `steps` and `error_records` prefetched or not):
    {(integration id, flow lineage id, hour or day): figures}."""
    totals: dict[Key, dict[str, Any]] = {}
    for run in runs:
        if not counts(run):
            continue
        key = key_of(run, level)
        figures = figures_of(
            run,
            ((s.connection_lineage_id, s.histogram or []) for s in run.steps.all()),
            run.error_records.all(),
        )
        totals[key] = added(totals.get(key) or empty(), figures)
    return totals


def stored(level: Level = HOURS, *, since: datetime | None = None) -> dict[Key, dict[str, Any]]:
    """The rows of a level (from `since` on) as {key: figures}."""
    after = {f"{level.field}__gte": since} if since else {}
    latencies = _by_key(level, level.latency.objects.filter(**after))
    groups = _by_key(level, level.errors.objects.filter(**after))
    out = {}
    for r in level.rollup.objects.filter(**after):
        key = (r.integration_id, r.flow_lineage_id, getattr(r, level.field))
        out[key] = row_figures(r, latencies.get(key, []), groups.get(key, []))
    return out


def _replace(
    level: Level, totals: dict[Key, dict[str, Any]], names: dict[Key, str], start: datetime | None
) -> None:
    for model in (level.rollup, level.latency, level.errors):
        stale = model.objects.all()
        if start:
            stale = stale.filter(**{f"{level.field}__gte": start})
        stale.delete()
    level.rollup.objects.bulk_create(
        [_new_row(level, key, names[key], figures) for key, figures in totals.items()],
        batch_size=1000,
    )
    level.latency.objects.bulk_create(
        [row for key, f in totals.items() for row in _latency_rows(level, key, f["latency"])],
        batch_size=1000,
    )
    level.errors.objects.bulk_create(
        [row for key, f in totals.items() for row in _group_rows(level, key, f["groups"])],
        batch_size=1000,
    )


def rollup_rebuild(*, since: datetime | None = None, batch: int = 2000) -> int:
    """Recompute the rollups of runs created from `since`'s hour on (all when None), in one
    transaction: the hourly rows of those hours are replaced from the runs, then the daily
    rows of those days from the hours (a day's hours before `since` are kept as they
    are). Returns how many hourly rows it wrote."""
    start = hour_of(since) if since else None
    runs = Run.objects.filter(mode=RunMode.LIVE, status__in=FINAL_STATUSES)
    if start:
        runs = runs.filter(created_at__gte=start)
    totals: dict[Key, dict[str, Any]] = {}
    names: dict[Key, str] = {}
    last_pk = 0
    while True:
        chunk = list(
            runs.filter(pk__gt=last_pk)
            .order_by("pk")
            .prefetch_related("steps", "error_records")[:batch]
        )
        if not chunk:
            break
        last_pk = chunk[-1].pk
        for key, figures in recount(chunk).items():
            totals[key] = added(totals.get(key) or empty(), figures)
        for run in chunk:
            key = key_of(run)
            if totals[key]["last_run_id"] == run.pk:
                names[key] = run.flow_name
    with transaction.atomic():
        _replace(HOURS, totals, names, start)
        day_start = day_of(start) if start else None
        hours = stored(HOURS, since=day_start)
        _replace(DAYS, *by_day(hours, _names_of(day_start)), day_start)
    return len(totals)


def _names_of(since: datetime | None) -> dict[Key, str]:
    rows = FlowHourRollup.objects.all()
    if since:
        rows = rows.filter(hour__gte=since)
    return {
        (i, f, h): name
        for i, f, h, name in rows.values_list(
            "integration_id", "flow_lineage_id", "hour", "flow_name"
        )
    }
