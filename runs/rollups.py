"""Hourly rollups of live runs: the one writer of `FlowHourRollup`.

A run adds its figures to the row of its flow and the UTC hour it was created in, in the
transaction that ends it (`runs.services`: a run that stores its report, one found
interrupted, a queued run canceled). Test runs send nothing and are not counted.

One run's contribution (`figures_of`) and the sum of two (`added`) are plain dicts of
the row's fields, so the writer, the rebuild and the tests add up the same way:

    {"runs", "succeeded", "partial", "failed", "canceled", "records_in", "records_out",
     "errors", "retries": int,
     "errors_by_kind": {kind: n}, "http_classes": {"4xx"|"5xx"|"other": n},
     "latency": {connection lineage id: [bucket counts of runs.histogram]},
     "last_run_at": datetime | None, "last_status": str, "last_run_id": int | None}

`rollup_rebuild` recomputes the rows from the raw runs (`manage.py monitoring_rollup`);
rows of hours whose runs were pruned are only kept when the rebuild starts after them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from django.db import transaction

from . import histogram
from .models import (
    BUCKET_FIELDS,
    ERROR_KIND_FIELDS,
    FINAL_STATUSES,
    HTTP_CLASS_FIELDS,
    ConnectionHourLatency,
    FlowHourRollup,
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


def http_class(status: int | None) -> str | None:
    """`"4xx"` for 404: the class that the failures-by-cause chart shows."""
    if not status:
        return None
    cls = f"{status // 100}xx"
    return cls if cls in HTTP_CLASS_FIELDS else "other"


def empty() -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(COUNTS, 0)
    out.update(errors_by_kind={}, http_classes={}, latency={})
    out.update(last_run_at=None, last_status="", last_run_id=None)
    return out


def counts(run: Run) -> bool:
    """Whether monitoring counts this run: live and ended."""
    return run.mode == RunMode.LIVE and run.status in FINAL_STATUSES


def figures_of(
    run: Run,
    steps: Iterable[tuple[Any, Sequence[int]]],
    errors: Iterable[tuple[str, int | None]],
) -> dict[str, Any]:
    """One ended run's contribution. `steps`: (connection lineage id or None, histogram)
    per step; `errors`: (kind, http_status) per kept error record."""
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
    for kind, status in errors:
        out["errors_by_kind"][kind] = out["errors_by_kind"].get(kind, 0) + 1
        cls = http_class(status)
        if cls:
            out["http_classes"][cls] = out["http_classes"].get(cls, 0) + 1
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
    newer = b if _later(b, a) else a
    for field in ("last_run_at", "last_status", "last_run_id"):
        out[field] = newer.get(field)
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


def row_figures(row: FlowHourRollup, latencies: Iterable[ConnectionHourLatency]) -> dict[str, Any]:
    """A stored row (and its latency rows) as a rollup dict."""
    out = {field: getattr(row, field) for field in COUNTS}
    out["errors_by_kind"] = {
        kind: getattr(row, f) for kind, f in ERROR_KIND_FIELDS.items() if getattr(row, f)
    }
    out["http_classes"] = {
        cls: getattr(row, f) for cls, f in HTTP_CLASS_FIELDS.items() if getattr(row, f)
    }
    out["latency"] = {str(lat.connection_lineage_id): lat.buckets for lat in latencies}
    out.update(last_run_at=row.last_run_at, last_status=row.last_status)
    out["last_run_id"] = row.last_run_id
    return out


def _apply(row: FlowHourRollup, figures: dict[str, Any]) -> None:
    for field in COUNTS:
        setattr(row, field, figures[field])
    for kind, field in ERROR_KIND_FIELDS.items():
        setattr(row, field, figures["errors_by_kind"].get(kind, 0))
    for cls, field in HTTP_CLASS_FIELDS.items():
        setattr(row, field, figures["http_classes"].get(cls, 0))
    row.last_run_at = figures["last_run_at"]
    row.last_status = figures["last_status"] or ""
    row.last_run_id = figures["last_run_id"]


def _latency_rows(key: Key, latency: dict[str, list[int]]) -> list[ConnectionHourLatency]:
    rows = []
    for connection, hist in latency.items():
        row = ConnectionHourLatency(
            integration_id=key[0],
            flow_lineage_id=key[1],
            connection_lineage_id=uuid.UUID(str(connection)),
            hour=key[2],
        )
        full = histogram.merge(hist, [])
        for field, n in zip(BUCKET_FIELDS, full, strict=True):
            setattr(row, field, n)
        rows.append(row)
    return rows


def rollup_run(
    run: Run,
    *,
    steps: Iterable[RunStep] | None = None,
    errors: Iterable[RunError] | None = None,
) -> None:
    """Add an ended live run to its flow's hour (call it in the run-ending transaction).

    `steps` and `errors` are the run's rows when the caller has them in hand; otherwise
    they are read. The hour's row is locked while it is added to, so two writers of
    the same hour (a flow's live runs follow each other, but a rebuild may be running)
    both count.
    """
    if not counts(run):
        return
    if steps is None:
        steps = RunStep.objects.filter(run_id=run.pk).only("connection_lineage_id", "histogram")
    if errors is None:
        errors = RunError.objects.filter(run_id=run.pk).only("kind", "http_status")
    figures = figures_of(
        run,
        ((s.connection_lineage_id, s.histogram or []) for s in steps),
        ((e.kind, e.http_status) for e in errors),
    )
    key: Key = (run.integration_id, run.flow_lineage_id, hour_of(run.created_at))
    with transaction.atomic():
        row, _ = FlowHourRollup.objects.get_or_create(
            integration_id=key[0],
            flow_lineage_id=key[1],
            hour=key[2],
            defaults={"flow_name": run.flow_name},
        )
        row = FlowHourRollup.objects.select_for_update().get(pk=row.pk)
        latencies = ConnectionHourLatency.objects.filter(
            integration_id=key[0], flow_lineage_id=key[1], hour=key[2]
        )
        total = added(row_figures(row, latencies), figures)
        _apply(row, total)
        if row.last_run_id == run.pk:
            row.flow_name = run.flow_name
        row.save()
        if figures["latency"]:
            # Only the connections this run called change; their rows are replaced.
            called = [uuid.UUID(c) for c in figures["latency"]]
            latencies.filter(connection_lineage_id__in=called).delete()
            ConnectionHourLatency.objects.bulk_create(
                _latency_rows(key, {c: total["latency"][c] for c in figures["latency"]})
            )


def recount(runs: Iterable[Run]) -> dict[Key, dict[str, Any]]:
    """Rollups computed from raw runs (with `steps` and `error_records` prefetched or not):
    {(integration id, flow lineage id, hour): figures}."""
    totals: dict[Key, dict[str, Any]] = {}
    for run in runs:
        if not counts(run):
            continue
        key = (run.integration_id, run.flow_lineage_id, hour_of(run.created_at))
        figures = figures_of(
            run,
            ((s.connection_lineage_id, s.histogram or []) for s in run.steps.all()),
            ((e.kind, e.http_status) for e in run.error_records.all()),
        )
        totals[key] = added(totals.get(key) or empty(), figures)
    return totals


def rollup_rebuild(*, since: datetime | None = None, batch: int = 2000) -> int:
    """Recompute the rollups of runs created from `since`'s hour on (all when None), in one
    transaction: the rows of those hours are replaced. Returns how many rows it wrote."""
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
            key = (run.integration_id, run.flow_lineage_id, hour_of(run.created_at))
            if totals[key]["last_run_id"] == run.pk:
                names[key] = run.flow_name
    rows, latency_rows = [], []
    for key, figures in totals.items():
        row = FlowHourRollup(
            integration_id=key[0], flow_lineage_id=key[1], hour=key[2], flow_name=names[key]
        )
        _apply(row, figures)
        rows.append(row)
        latency_rows.extend(_latency_rows(key, figures["latency"]))
    with transaction.atomic():
        for model in (FlowHourRollup, ConnectionHourLatency):
            stale = model.objects.all()
            if start:
                stale = stale.filter(hour__gte=start)
            stale.delete()
        FlowHourRollup.objects.bulk_create(rows, batch_size=1000)
        ConnectionHourLatency.objects.bulk_create(latency_rows, batch_size=1000)
    return len(rows)
