"""Run pieces that other apps' pages show: a flow's runs panel and the home tiles' health.

Template tags, so the integration pages show runs without the integrations app importing
runs (imports run one way: integrations ← … ← runs).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django import template
from django.utils import timezone
from django.utils.html import format_html

from .. import health, monitoring, selectors
from ..models import STATUS_MARKS, AlertRule, AlertState, FlowSample

register = template.Library()


@register.inclusion_tag("runs/_flow_panel.html")
def flow_runs_panel(flow, perms_ilm: Iterable[str]) -> dict[str, Any]:
    """Run now, Test run, the schedule's next start and the last runs of a flow."""
    perms = set(perms_ilm or ())
    samples = (
        FlowSample.objects.filter(
            integration_id=flow.integration_id, flow_lineage_id=flow.lineage_id
        )
        .values_list("records", flat=True)
        .first()
    )
    return {
        "flow": flow,
        "last_runs": selectors.last_runs(flow, n=5),
        "next_run_at": selectors.next_run_at(flow, timezone.now()),
        "may_run": "run" in perms,
        "may_test": "test_run" in perms,
        "sample_count": len(samples or []),
    }


@register.simple_tag
def runs_health(integrations: Iterable[Any]) -> dict[int, dict[str, Any]]:
    """Health of every tile at once: {integration id: {last_status, errors_24h, ...,
    spark: the last 7 days' runs and success rate per day}} (two queries for all tiles)."""
    ids = [i.pk for i in integrations]
    now = timezone.now()
    out = selectors.integration_health(ids, now)
    for pk, spark in monitoring.integration_sparkline(ids, now=now).items():
        if pk in out:
            out[pk]["spark"] = _spark_bars(spark)
    return out


def _spark_bars(spark: dict[str, Any]) -> list[dict[str, Any]]:
    """Bars of a tile's sparkline: height class 0–8 by runs, colour by success rate."""
    top = max(spark["runs"]) or 1
    bars = []
    for day, runs, rate in zip(spark["days"], spark["runs"], spark["rate"], strict=True):
        if rate is None:
            tone = ""
        elif rate >= health.DEGRADED_BELOW:
            tone = "spark-ok"
        elif rate >= health.FAILING_BELOW:
            tone = "spark-warn"
        else:
            tone = "spark-bad"
        level = 0 if not runs else max(1, round(8 * runs / top))
        label = f"{day:%b %d}: {runs} run(s)"
        if rate is not None:
            label += f", {rate:g} % succeeded"
        bars.append({"level": level, "tone": tone, "label": label})
    return bars


@register.inclusion_tag("runs/_tile_health.html")
def tile_health(health: dict[int, dict[str, Any]], integration) -> dict[str, Any]:
    h = (health or {}).get(integration.pk)
    return {
        "h": h,
        "mark": STATUS_MARKS.get((h or {}).get("last_status"), ""),
        "integration": integration,
    }


@register.inclusion_tag("runs/_health_panel.html", takes_context=True)
def integration_health_panel(context: Any, integration) -> dict[str, Any]:
    """The Health panel of an integration's page: each flow's light and why, success rates
    over 24 h and 7 d, and the last 24 h's figures (read from the rollups)."""
    now = timezone.now()
    scope = monitoring.scope_for(
        context["request"].user,
        since=now - health.WINDOW,
        until=now,
        integration=integration.pk,
    )
    rows = monitoring.flow_rows(scope, now=now)
    return {
        "integration": integration,
        "rows": rows,
        "runs": sum(r["runs"] for r in rows),
        "errors": sum(r["errors"] for r in rows),
        "retries": sum(r["retries"] for r in rows),
        "records_in": sum(r["records_in"] for r in rows),
        "counts": {s: sum(1 for r in rows if r["health"].status == s) for s in health.Status},
        "firing": AlertRule.objects.filter(
            integration=integration, state=AlertState.FIRING
        ).count(),
    }


@register.simple_tag
def time_tag(value: datetime | None, css: str = "", empty: str = "") -> str:
    """`<time datetime="ISO">YYYY-MM-DD HH:MM</time>` in the current time zone, or `empty`.
    The same as `{{ value|date:"c" }}` and `|date:"Y-m-d H:i"`, for pages with many
    timestamps (the Monitoring grid): the `date` filter costs ~40 µs a call."""
    if value is None:
        return empty
    local = timezone.localtime(value)
    attrs = format_html(' class="{}"', css) if css else ""
    return format_html(
        '<time datetime="{}"{}>{}</time>',
        local.isoformat(),
        attrs,
        local.strftime("%Y-%m-%d %H:%M"),
    )
