"""Reads of the runtime that the Runs tab, the flow page, the home tiles and the API share."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from integrations.models import Flow, FlowStep, Integration
from integrations.schedules import next_fire

from . import histogram
from .models import Run, RunError, RunStatus

_MAX_ID = 2**63 - 1  # BigAutoField


def flow_lineage(flow: Flow | int | str | uuid.UUID) -> uuid.UUID | None:
    if isinstance(flow, Flow):
        return flow.lineage_id
    if isinstance(flow, uuid.UUID):
        return flow
    text = str(flow)
    if text.isascii() and text.isdigit():
        pk = int(text)
        if pk > _MAX_ID:  # no such row; asking would be a database error, not a miss
            return None
        return Flow.objects.filter(pk=pk).values_list("lineage_id", flat=True).first()
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def step_lineage(step: int | str | uuid.UUID) -> uuid.UUID | None:
    """A step's lineage id from its lineage id or its id (None: no such step)."""
    if isinstance(step, uuid.UUID):
        return step
    text = str(step)
    if text.isascii() and text.isdigit():
        pk = int(text)
        if pk > _MAX_ID:
            return None
        return FlowStep.objects.filter(pk=pk).values_list("lineage_id", flat=True).first()
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def runs_of(integration: Integration) -> QuerySet[Run]:
    """The integration's runs, newest first; `runs.filters.RunFilter` narrows them."""
    return (
        Run.objects.filter(integration=integration)
        .select_related("created_by")
        .order_by("-created_at", "-pk")
    )


def step_figures(step: Any) -> dict[str, Any]:
    """A step row as the API and the run page show it, with p50/p95 from its histogram."""
    hist = step.histogram or []
    return {
        "lineage_id": str(step.lineage_id),
        "name": step.name,
        "kind": step.kind,
        "records_in": step.records_in,
        "records_out": step.records_out,
        "errors": step.errors,
        "duration_ms": round(step.duration_ms, 1),
        "http": {
            "calls": step.http_calls,
            "retries": step.http_retries,
            "p50_ms": _rounded(histogram.percentile(hist, 50)) if hist else None,
            "p95_ms": _rounded(histogram.percentile(hist, 95)) if hist else None,
        },
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def run_detail(run: Run) -> dict[str, Any]:
    """The run with its steps (records in/out, duration, HTTP calls, retries, p50/p95)."""
    return {
        "run": run,
        "steps": [step_figures(s) for s in run.steps.all()],
        "error_count": run.errors,
        "kept_errors": run.error_records.count(),
    }


def run_errors(run: Run) -> QuerySet[RunError]:
    return run.error_records.order_by("pk")


def last_runs(flow: Flow, n: int = 5) -> list[Run]:
    return list(
        Run.objects.filter(
            integration_id=flow.integration_id, flow_lineage_id=flow.lineage_id
        ).order_by("-created_at", "-pk")[:n]
    )


def next_run_at(flow: Flow, now: datetime) -> datetime | None:
    """When the flow's schedule next starts a run (None: disabled or not scheduled)."""
    if not flow.enabled or not flow.schedule:
        return None
    return next_fire(flow.schedule, now)


def integration_health(integration_ids: Iterable[int], now: datetime) -> dict[int, dict[str, Any]]:
    """Per integration: the last run's status and time, and errors of runs in the last 24 h.

    One query for all the integrations (the home page's tiles). Each figure is a
    correlated subquery on the runs' (integration, created_at) index: the last run is one
    index probe and the 24-hour sums read only that day's runs, however many runs the
    integrations have (a join over all their runs grew with the retention period)."""
    ids = list(integration_ids)
    if not ids:
        return {}
    runs = Run.objects.filter(integration_id=OuterRef("pk"))
    last = runs.order_by("-created_at", "-pk")
    day = runs.filter(created_at__gte=now - timedelta(hours=24)).order_by().values("integration_id")

    def over_day(aggregate: Any) -> Coalesce:
        return Coalesce(
            Subquery(day.annotate(v=aggregate).values("v"), output_field=IntegerField()), 0
        )

    rows = (
        Integration.objects.filter(pk__in=ids)
        .annotate(
            last_status=Subquery(last.values("status")[:1]),
            last_at=Subquery(last.values("created_at")[:1]),
            errors_24h=over_day(Sum("errors")),
            runs_24h=over_day(Count("pk")),
            failed_24h=over_day(Count("pk", filter=Q(status=RunStatus.FAILED))),
        )
        .values("pk", "last_status", "last_at", "errors_24h", "runs_24h", "failed_24h")
    )
    return {
        row["pk"]: {
            "last_status": row["last_status"],
            "last_run_at": row["last_at"],
            "errors_24h": row["errors_24h"] or 0,
            "runs_24h": row["runs_24h"],
            "failed_24h": row["failed_24h"],
        }
        for row in rows
    }
