"""Prometheus `/api/v1/metrics`: a custom collector that reads the daily rollups (each the
sum of its hours, so a scrape adds up a row per flow per day) of the integrations a user
may see (no global counters: every scrape adds up the rollups, so
every process and a restart answer the same). Counters are totals since the oldest
rollup kept; response times are Prometheus histograms in seconds with the runtime's
fixed buckets (`runs.histogram`), per connection. The runtime keeps bucket counts, not
the sum of the timings, so the histograms have buckets only (`le="+Inf"` is the count);
`histogram_quantile()` reads them as it reads any other.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery, Sum
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from integrations.models import Connection, Integration

from . import histogram
from .models import (
    BUCKET_FIELDS,
    ERROR_KIND_FIELDS,
    ConnectionDayLatency,
    FlowDayRollup,
)

FLOW_LABELS = ["integration", "flow", "flow_lineage_id"]
STATUSES = ("succeeded", "partial", "failed", "canceled")


class RollupCollector(Collector):
    """Run counts by flow and status, records in/out, errors by kind, retries, and
    response-time histograms per connection, over `integrations`."""

    def __init__(self, integrations: QuerySet[Integration]) -> None:
        self.integrations = integrations

    def collect(self) -> Iterator[Metric]:
        ids = self.integrations.values("pk")
        names = dict(self.integrations.values_list("pk", "name"))
        fields = [*STATUSES, "records_in", "records_out", "retries", *ERROR_KIND_FIELDS.values()]
        flows = (
            FlowDayRollup.objects.filter(integration__in=ids)
            .values("integration_id", "flow_lineage_id")
            .annotate(**{f"sum_{f}": Sum(f) for f in fields}, name=_latest_name())
            .order_by("integration_id", "flow_lineage_id")
        )
        runs = CounterMetricFamily(
            "ilm_flow_runs",
            "Live runs that ended, by flow and status.",
            labels=[*FLOW_LABELS, "status"],
        )
        records = CounterMetricFamily(
            "ilm_flow_records",
            "Records read (in) and written (out) by live runs.",
            labels=[*FLOW_LABELS, "direction"],
        )
        errors = CounterMetricFamily(
            "ilm_flow_errors",
            "Kept error records of live runs, by kind.",
            labels=[*FLOW_LABELS, "kind"],
        )
        retries = CounterMetricFamily(
            "ilm_flow_retries", "HTTP calls retried by live runs.", labels=FLOW_LABELS
        )
        for row in ({k.removeprefix("sum_"): v for k, v in r.items()} for r in flows):
            flow = [
                names.get(row["integration_id"], ""),
                row["name"] or "",
                str(row["flow_lineage_id"]),
            ]
            for status in STATUSES:
                runs.add_metric([*flow, status], row[status] or 0)
            records.add_metric([*flow, "in"], row["records_in"] or 0)
            records.add_metric([*flow, "out"], row["records_out"] or 0)
            for kind, field in ERROR_KIND_FIELDS.items():
                errors.add_metric([*flow, kind], row[field] or 0)
            retries.add_metric(flow, row["retries"] or 0)
        yield from (runs, records, errors, retries)
        yield self._latency(ids, names)

    def _latency(self, ids: Any, names: dict[int, str]) -> HistogramMetricFamily:
        family = HistogramMetricFamily(
            "ilm_connection_response_seconds",
            "Response time of HTTP calls per connection (the runtime's fixed buckets).",
            labels=["integration", "connection", "connection_lineage_id"],
        )
        rows = (
            ConnectionDayLatency.objects.filter(integration__in=ids)
            .values("integration_id", "connection_lineage_id")
            .annotate(**{f"sum_{f}": Sum(f) for f in BUCKET_FIELDS})
            .order_by("integration_id", "connection_lineage_id")
        )
        rows = [{k.removeprefix("sum_"): v for k, v in r.items()} for r in rows]
        connection_names = {
            (i, lineage): name
            for i, lineage, name in Connection.objects.filter(
                integration__in=ids, lineage_id__in={r["connection_lineage_id"] for r in rows}
            ).values_list("integration_id", "lineage_id", "name")
        }
        bounds = [*(f"{ms / 1000:g}" for ms in histogram.BUCKETS_MS), "+Inf"]
        for row in rows:
            counts = [row[f] or 0 for f in BUCKET_FIELDS]
            cumulative, seen = [], 0
            for bound, n in zip(bounds, counts, strict=True):
                seen += n
                cumulative.append((bound, seen))
            key = (row["integration_id"], row["connection_lineage_id"])
            family.add_metric(
                [
                    names.get(row["integration_id"], ""),
                    connection_names.get(key, ""),
                    str(row["connection_lineage_id"]),
                ],
                cumulative,
                sum_value=None,
            )
        return family


def _latest_name() -> Any:
    latest = FlowDayRollup.objects.filter(
        integration_id=OuterRef("integration_id"), flow_lineage_id=OuterRef("flow_lineage_id")
    ).order_by("-day", "-last_run_at")
    return Subquery(latest.values("flow_name")[:1])


def metrics_text(integrations: QuerySet[Integration]) -> bytes:
    """The Prometheus text exposition of the rollups of `integrations`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RollupCollector(integrations))
    return generate_latest(registry)
