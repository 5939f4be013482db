"""The Monitoring page (every role; each sees the integrations it may see) and its CSV
exports. Thin: the filters make a `runs.monitoring.Scope`, the readers there do the rest;
the charts are drawn in the browser (uPlot) from JSON prepared here, each with a table."""

from __future__ import annotations

import csv
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from integrations.permissions import visible_integrations

from . import alerts, health, monitoring
from .forms import MonitoringFilterForm


def scope_from(request: HttpRequest, *, now: datetime | None = None) -> tuple[Any, Any, str]:
    """(form, scope, range key) from the query string; bad filters fall back to the last
    24 h over everything the user may see (the form says what was wrong)."""
    now = now or timezone.now()
    form = MonitoringFilterForm(
        request.GET or None, integrations=visible_integrations(request.user)
    )
    data: dict[str, Any] = form.cleaned_data if form.is_bound and form.is_valid() else {}
    key = data.get("range") or monitoring.DEFAULT_RANGE
    if key == "custom":
        since = datetime.combine(data["since"], time.min, tzinfo=UTC)
        until = datetime.combine(data["until"] + timedelta(days=1), time.min, tzinfo=UTC)
    else:
        until = now
        since = now - monitoring.RANGES[key]
    flow = uuid.UUID(data["flow"]) if data.get("flow") else None
    scope = monitoring.scope_for(
        request.user,
        since=since,
        until=until,
        integration=data.get("integration"),
        flow=flow,
        environment=data.get("environment") or None,
    )
    return form, scope, key


@login_required
def monitoring_page(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    form, scope, key = scope_from(request, now=now)
    rows = monitoring.flow_rows(scope, now=now)
    data = monitoring.series(scope)
    # Every connection is in the table; the browser only needs the chart's lines.
    chart_data = {k: v for k, v in data.items() if k != "connection_table"}
    table = [
        {
            "label": label,
            **{f: data[f][i] for f in (*monitoring.SUMS, "success_rate", "other_errors")},
            "causes": [data[c["field"]][i] for c in data["causes"]],
        }
        for i, label in enumerate(data["labels"])
    ]
    counts = {s: sum(1 for r in rows if r["health"].status == s) for s in health.Status}
    return render(
        request,
        "runs/monitoring.html",
        {
            "form": form,
            "scope": scope,
            "range_key": key,
            "rows": rows,
            "series": data,
            "chart_data": chart_data,
            "table": table,
            "chart_connections": monitoring.CHART_CONNECTIONS,
            "rules": health.RULES,
            "status_counts": counts,
            "groups": monitoring.error_groups(scope),
            "firing": alerts.firing(scope.integrations, scope.flow),
            "query": request.GET.urlencode(),
            "now": now,
        },
    )


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv(filename: str, header: list[str], rows: Any) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    lines = (writer.writerow(r) for r in [header, *rows])
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat() if value else ""


@login_required
def flows_csv(request: HttpRequest) -> StreamingHttpResponse:
    """The health grid with the page's filters, as CSV."""
    now = timezone.now()
    _, scope, _ = scope_from(request, now=now)
    header = [
        "integration",
        "flow",
        "flow_lineage_id",
        "status",
        "why",
        "success_rate_24h",
        "success_rate_7d",
        "runs",
        "succeeded",
        "partial",
        "failed",
        "canceled",
        "records_in",
        "records_out",
        "errors",
        "retries",
        "p50_ms",
        "p95_ms",
        "last_run",
        "last_status",
        "next_run",
    ]
    rows = (
        [
            r["integration"].name,
            r["flow_name"],
            r["flow_lineage_id"],
            r["health"].status.value,
            r["health"].reason,
            _blank(r["success_rate_24h"]),
            _blank(r["success_rate_7d"]),
            r["runs"],
            r["succeeded"],
            r["partial"],
            r["failed"],
            r["canceled"],
            r["records_in"],
            r["records_out"],
            r["errors"],
            r["retries"],
            _blank(r["p50_ms"]),
            _blank(r["p95_ms"]),
            _iso(r["last_run_at"]),
            r["last_status"] or "",
            _iso(r["next_run_at"]),
        ]
        for r in monitoring.flow_rows(scope, now=now)
    )
    return _csv("monitoring-flows.csv", header, rows)


@login_required
def errors_csv(request: HttpRequest) -> StreamingHttpResponse:
    """The payload issues (error groups) with the page's filters, as CSV."""
    _, scope, _ = scope_from(request)
    header = [
        "flow",
        "step",
        "kind",
        "http_status",
        "message",
        "count",
        "first_seen",
        "last_seen",
        "example_run",
    ]
    rows = (
        [
            g["flow_name"],
            g["step_name"],
            g["kind"],
            _blank(g["http_status"]),
            g["message"],
            g["count"],
            _iso(g["first_seen"]),
            _iso(g["last_seen"]),
            request.build_absolute_uri(reverse("runs:detail", args=[g["example_run"]])),
        ]
        for g in monitoring.error_groups(scope, limit=1000)
    )
    return _csv("monitoring-errors.csv", header, rows)


def _blank(value: Any) -> Any:
    return "" if value is None else value
