"""Reads of monitoring (the Monitoring page, the Health panel, the API, /metrics).

Everything here reads the rollups (`runs.rollups`: per hour and per UTC day), never the
runs, so the cost follows flows × periods, not runs; the payload issues read the error
group rollups (kept error records grouped by step and message). Ranges are at hour resolution:
a range covers the hours from the one holding `since` up to `until`, read as its whole
UTC days from the day rows and the hours at its ends from the hour rows (`_periods`), so
30 days cost about 30 + 48 rows per flow instead of 720.

Each reader takes a `Scope`: the integrations the user may see
(`integrations.permissions.visible_integrations`), narrowed by the filters.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime, timedelta
from functools import reduce
from operator import or_
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import (
    F,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
)
from django.utils import timezone

from integrations.models import Connection, Flow, Integration, User
from integrations.permissions import visible_integrations

from . import health, histogram, rollups
from .models import (
    BUCKET_FIELDS,
    ERROR_KIND_FIELDS,
    HTTP_CLASS_FIELDS,
    ErrorKind,
    FlowHourRollup,
)
from .rollups import DAYS, HOURS, LEVELS, Level, day_of, hour_of
from .selectors import next_run_at

RANGES: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT_RANGE = "24h"
ERROR_GROUPS = 25  # the most frequent error groups shown
# Lines on the response-time chart: more are unreadable; the rest are merged into one
# line (OTHERS) and every connection is in the table under the chart.
CHART_CONNECTIONS = 8
OTHERS = -1
LATENCY_KEYS = ("integration_id", "flow_lineage_id", "connection_lineage_id")
STATUS_COUNTS = ("runs", "succeeded", "partial", "failed", "canceled")
SUMS = (*STATUS_COUNTS, "records_in", "records_out", "errors", "retries")
CAUSE_FIELDS = {
    **{f"http_{cls}": f"HTTP {cls}" for cls in HTTP_CLASS_FIELDS},
    **{
        field: f"{ErrorKind(kind).label} error"
        for kind, field in ERROR_KIND_FIELDS.items()
        if kind != ErrorKind.HTTP
    },
}


@dataclass(frozen=True)
class Scope:
    """What a reader covers: the user's visible integrations, narrowed by the filters."""

    integrations: QuerySet[Integration]
    flow: uuid.UUID | None
    since: datetime
    until: datetime
    # What several readers of one request share (see `_latency_by`): a scope lives for
    # one request, so nothing here outlives a new run.
    shared: dict[str, Any] = dataclass_field(default_factory=dict, compare=False, repr=False)

    @property
    def start(self) -> datetime:
        return hour_of(self.since)

    @property
    def span(self) -> timedelta:
        return self.until - self.since


def scope_for(
    user: User,
    *,
    since: datetime,
    until: datetime,
    integration: int | None = None,
    flow: uuid.UUID | None = None,
    environment: str | None = None,
) -> Scope:
    integrations = visible_integrations(user)
    if integration:
        integrations = integrations.filter(pk=integration)
    if environment:
        integrations = integrations.filter(environment=environment)
    return Scope(integrations=integrations, flow=flow, since=since, until=until)


def _periods(
    start: datetime, end: datetime, *, hourly: bool = False
) -> list[tuple[Level, list[Window]]]:
    """The rows that add up to [start, end) (start on an hour): the whole UTC days in it
    from the day level, the hours before the first midnight and from the last one on
    from the hour level. A range without a whole day (or `hourly`) is read from hours.
    Each level with the [from, to) spans of its period column to read."""
    first = start if start == day_of(start) else day_of(start) + timedelta(days=1)
    last = day_of(end)
    if hourly or first >= last:
        return [(HOURS, [(start, end)])]
    hours = []
    if start < first:
        hours.append((start, first))
    if last < end:
        hours.append((last, end))
    days = (DAYS, [(first, last)])
    return [(HOURS, hours), days] if hours else [days]


def _period_q(level: Level, spans: list[Window]) -> Q:
    return reduce(
        or_, (Q(**{f"{level.field}__gte": lo, f"{level.field}__lt": hi}) for lo, hi in spans)
    )


Window = tuple[datetime, datetime]


def _sums(
    scope: Scope,
    windows: dict[str, Window],
    fields: dict[str, Sequence[str]],
    keys: Sequence[str],
    *,
    latency: bool = False,
    step: str | None = None,
    maxes: Sequence[str] = (),
    line: Sequence[tuple[int, str]] = (),
) -> dict[tuple[Any, ...], dict[Any, Any]]:
    """Sums of rollup columns per group over several windows at once: {(key values…[,
    period start]): {(window, field): n, …, max field: latest}}. One query per level
    read (two at most), whatever the number of runs; `step` ("hour" or "day") groups by
    period too; `maxes` are columns whose greatest value is kept. `line` (connections as
    (integration id, lineage id)) makes the key "line": the connection's index in it, or
    OTHERS for any other connection.

    Written as SQL (portable: CASE sums, no FILTER, no date functions: day steps are cut
    in Python from the period column): the ORM spent more time building these queries
    of ~25 filtered sums and converting their rows than the database spent answering."""
    by_level: dict[Level, dict[str, list[Window]]] = {}
    for name, (lo, hi) in windows.items():
        for level, spans in _periods(lo, hi, hourly=step == "hour"):
            by_level.setdefault(level, {})[name] = spans
    out: dict[tuple[Any, ...], dict[Any, Any]] = {}
    try:
        integrations, scope_params = _integration_ids_sql(scope)
    except EmptyResultSet:  # a user who may see nothing (`Integration.objects.none()`)
        return out
    for level in LEVELS:
        spans_of = by_level.get(level)
        if not spans_of:
            continue
        model = level.latency if latency else level.rollup
        meta = model._meta
        column = {f: meta.get_field(f).column for f in (*keys, *maxes) if f != "line"}
        period = connection.ops.quote_name(meta.get_field(level.field).column)
        params: list[Any] = []
        select: list[str] = []
        group: list[str] = []
        if keys and keys[0] == "line":
            whens = " ".join(
                "WHEN integration_id = %s AND connection_lineage_id = %s THEN " + str(i)
                for i in range(len(line))
            )
            select.append(f"CASE {whens} ELSE {OTHERS} END")
            for pk, lineage in line:
                params += [pk, _db_uuid(lineage)]
            group.append("1")
        else:
            for k in keys:
                select.append(connection.ops.quote_name(column[k]))
                group.append(select[-1])
        if step:
            select.append(period)
            group.append(period)
        single = len(spans_of) == 1
        names: list[tuple[str, str]] = []
        for name, spans in spans_of.items():
            cond, cond_params = _spans_sql(period, spans)
            for f in fields[name]:
                col = connection.ops.quote_name(meta.get_field(f).column)
                if single:
                    select.append(f"SUM({col})")
                else:
                    select.append(f"SUM(CASE WHEN {cond} THEN {col} ELSE 0 END)")
                    params += cond_params
                names.append((name, f))
        select += [f"MAX({connection.ops.quote_name(column[f])})" for f in maxes]
        where = [f"integration_id IN ({integrations})"]
        params_where = list(scope_params)
        if scope.flow:
            where.append("flow_lineage_id = %s")
            params_where.append(_db_uuid(scope.flow))
        conds = [_spans_sql(period, spans) for spans in spans_of.values()]
        where.append("(" + " OR ".join(c for c, _ in conds) + ")")
        for _, p in conds:
            params_where += p
        sql = f"SELECT {', '.join(select)} FROM {connection.ops.quote_name(meta.db_table)}"
        sql += f" WHERE {' AND '.join(where)}"
        if group:
            sql += f" GROUP BY {', '.join(group)}"
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, *params_where])
            found = cursor.fetchall()
        convert = [_to_python(meta.get_field(k)) if k != "line" else int for k in keys]
        if step:
            convert.append(_period_of(step))
        n = len(convert)
        for row in found:
            key = tuple(f(v) for f, v in zip(convert, row[:n], strict=True))
            entry = out.setdefault(key, {})
            for pair, value in zip(names, row[n : n + len(names)], strict=True):
                entry[pair] = entry.get(pair, 0) + int(value or 0)
            for f, value in zip(maxes, row[n + len(names) :], strict=True):
                value = _to_python(meta.get_field(f))(value)
                if value is not None and (entry.get(f) is None or value > entry[f]):
                    entry[f] = value
    return out


def _integration_ids_sql(scope: Scope) -> tuple[str, tuple[Any, ...]]:
    """The scope's integrations as a subquery (the ORM's own, so the role rules stay in
    `visible_integrations`)."""
    return scope.integrations.order_by().values("pk").query.sql_with_params()


def _spans_sql(column: str, spans: list[Window]) -> tuple[str, list[Any]]:
    adapt = connection.ops.adapt_datetimefield_value
    sql = " OR ".join(f"({column} >= %s AND {column} < %s)" for _ in spans)
    return f"({sql})", [adapt(v) for span in spans for v in span]


def _db_uuid(value: uuid.UUID | str) -> Any:
    value = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    return value if connection.features.has_native_uuid_field else value.hex


def _to_python(field: Any) -> Any:
    """A raw column value as the ORM would give it (SQLite answers text for uuids and
    datetimes; PostgreSQL the types themselves)."""
    if field.get_internal_type() == "DateTimeField":
        return _moment
    if field.get_internal_type() == "UUIDField":
        return lambda v: v if v is None or isinstance(v, uuid.UUID) else uuid.UUID(v)
    return lambda v: v


def _moment(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _period_of(step: str) -> Any:
    if step == "hour":
        return _moment
    return lambda v: _moment(v).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _rate(succeeded: int, partial: int, failed: int) -> float | None:
    rate = health.success_rate(succeeded, partial, failed)
    return None if rate is None else round(rate, 1)


def _percentiles(buckets: list[int]) -> tuple[float | None, float | None]:
    p50, p95 = histogram.percentile(buckets, 50), histogram.percentile(buckets, 95)
    return (
        None if p50 is None else round(p50, 1),
        None if p95 is None else round(p95, 1),
    )


# The health grid -----------------------------------------------------------------------


def flow_rows(scope: Scope, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per flow in scope (flows that never ran too): the health light and why,
    success rate over 24 h and 7 d, last run, next scheduled run, and over the range:
    runs by status, records in/out, errors (by kind), retries, p50/p95 response time.

    Five queries whatever the number of runs: flows with their last run, the range and
    24 h/7 d sums (hour and day rows), latency buckets (hour and day rows)."""
    now = now or timezone.now()
    day, week = now - health.WINDOW, now - timedelta(days=7)
    flows = Flow.objects.filter(integration__in=scope.integrations.values("pk")).select_related(
        "integration"
    )
    if scope.flow:
        flows = flows.filter(lineage_id=scope.flow)
    # The last run of each flow: subqueries on the flows query (one row per flow; on the
    # grouped rollups they would join the GROUP BY and run once per hour row).
    last = FlowHourRollup.objects.filter(
        integration_id=OuterRef("integration_id"), flow_lineage_id=OuterRef("lineage_id")
    ).order_by("-hour")
    flows = flows.annotate(
        last_run_at=Subquery(last.values("last_run_at")[:1]),
        last_status=Subquery(last.values("last_status")[:1]),
        last_run_id=Subquery(last.values("last_run_id")[:1]),
    )
    statuses = ("succeeded", "partial", "failed", "canceled")
    summed = _sums(
        scope,
        {
            "range": (scope.start, scope.until),
            "24h": (hour_of(day), now),
            "7d": (hour_of(week), now),
        },
        {"range": [*SUMS, *ERROR_KIND_FIELDS.values()], "24h": statuses, "7d": statuses},
        ("integration_id", "flow_lineage_id"),
        maxes=("last_run_at", "flow_name"),
    )
    kind_of = {f: k for k, f in ERROR_KIND_FIELDS.items()}
    figures: dict[tuple[int, uuid.UUID], dict[str, Any]] = {}
    for key, entry in summed.items():
        f: dict[str, Any] = {
            "last_run_at": entry.get("last_run_at"),
            "last_name": entry.get("flow_name"),
        }
        for field in SUMS:
            f[field] = entry.get(("range", field), 0)
        for field, kind in kind_of.items():
            f[f"kind_{kind}"] = entry.get(("range", field), 0)
        for window in ("24h", "7d"):
            for field in statuses:
                f[f"{field}_{window}"] = entry.get((window, field), 0)
        figures[key] = f  # type: ignore[index]
    latency = _latency_by(scope, ("integration_id", "flow_lineage_id"))
    # Flows share a few schedules: work each one's next fire time out once.
    fires: dict[str, datetime | None] = {}

    def next_at(flow: Flow) -> datetime | None:
        if flow.schedule not in fires:
            fires[flow.schedule] = next_run_at(flow, now)
        return fires[flow.schedule] if flow.enabled else None

    rows = []
    seen: set[tuple[int, uuid.UUID]] = set()
    for flow in flows.order_by("integration__name", "name", "pk"):
        key = (flow.integration_id, flow.lineage_id)
        seen.add(key)
        f = dict(figures.get(key) or {})
        f.update(
            last_run_at=flow.last_run_at,
            last_status=flow.last_status,
            last_run_id=flow.last_run_id,
        )
        rows.append(_flow_row(flow.integration, flow, f, latency.get(key), now, next_at(flow)))
    # Flows removed since they ran still have their history in range.
    gone = [k for k, f in figures.items() if k not in seen and f["runs"]]
    if gone:
        names = dict(
            scope.integrations.filter(pk__in={k[0] for k in gone}).values_list("pk", "name")
        )
        for key in gone:
            integration = Integration(pk=key[0], name=names.get(key[0], ""))
            rows.append(
                _flow_row(integration, None, figures[key], latency.get(key), now, None, key[1])
            )
    return rows


def _unprefixed(row: dict[str, Any]) -> dict[str, Any]:
    """A row of sums with their aliases (`sum_<field>`: an alias may not be a field's name)
    named as the fields."""
    return {k.removeprefix("sum_"): v for k, v in row.items()}


def _flow_row(
    integration: Integration,
    flow: Flow | None,
    f: dict[str, Any] | None,
    buckets: list[int] | None,
    now: datetime,
    next_at: datetime | None = None,
    lineage: uuid.UUID | None = None,
) -> dict[str, Any]:
    f = f or {}

    def n(key: str) -> int:
        return int(f.get(key) or 0)

    light = health.flow_health(
        succeeded=n("succeeded_24h"),
        partial=n("partial_24h"),
        failed=n("failed_24h"),
        canceled=n("canceled_24h"),
        last_status=f.get("last_status"),
    )
    p50, p95 = _percentiles(buckets) if buckets else (None, None)
    return {
        "flow": flow,
        "flow_id": flow.pk if flow else None,
        "flow_lineage_id": flow.lineage_id if flow else lineage,
        "flow_name": flow.name if flow else (f.get("last_name") or "(removed flow)"),
        "integration": integration,
        "health": light,
        "success_rate_24h": _rate(n("succeeded_24h"), n("partial_24h"), n("failed_24h")),
        "success_rate_7d": _rate(n("succeeded_7d"), n("partial_7d"), n("failed_7d")),
        "success_rate": _rate(n("succeeded"), n("partial"), n("failed")),
        **{key: n(key) for key in SUMS},
        "errors_by_kind": {k: n(f"kind_{k}") for k in ERROR_KIND_FIELDS},
        "p50_ms": p50,
        "p95_ms": p95,
        "last_run_at": f.get("last_run_at"),
        "last_status": f.get("last_status") or None,
        "last_run_id": f.get("last_run_id"),
        "next_run_at": next_at,
    }


def _latency_by(scope: Scope, keys: tuple[str, ...]) -> dict[Any, list[int]]:
    """Bucket counts over the range per `keys` (some of integration, flow, connection).
    Read once per scope grouped by all three (flows × the connections they call: a few
    rows per flow) and added up here, so the grid and the connection table of one page
    share one query per level."""
    if "latency" not in scope.shared:
        scope.shared["latency"] = _sums(
            scope,
            {"range": (scope.start, scope.until)},
            {"range": BUCKET_FIELDS},
            LATENCY_KEYS,
            latency=True,
        )
    at = [LATENCY_KEYS.index(k) for k in keys]
    out: dict[Any, list[int]] = {}
    for key, entry in scope.shared["latency"].items():
        picked = tuple(key[i] for i in at)
        buckets = out.setdefault(picked if len(keys) > 1 else picked[0], histogram.empty())
        for i, f in enumerate(BUCKET_FIELDS):
            buckets[i] += entry.get(("range", f), 0)
    return out


# Charts --------------------------------------------------------------------------------


def _step(scope: Scope) -> str:
    return "hour" if scope.span <= timedelta(days=7) else "day"


def series(scope: Scope) -> dict[str, Any]:
    """The charts' data over the range, per hour (up to 7 days) or per day: volume in/out,
    runs by status and success rate, retries, failures by cause; p50/p95 response time of
    the most called connections and of the others merged (`connections`), and every
    connection over the whole range (`connection_table`). A few queries per level read,
    whatever the number of runs or connections."""
    step = _step(scope)
    causes = list(CAUSE_FIELDS)
    fields = list(dict.fromkeys((*SUMS, *causes, *_kind_fields())))
    summed = _sums(scope, {"range": (scope.start, scope.until)}, {"range": fields}, (), step=step)
    times = _buckets(scope, step)
    rows = [{f: (summed.get((t,)) or {}).get(("range", f), 0) for f in fields} for t in times]
    out: dict[str, Any] = {
        "step": step,
        "since": scope.since.isoformat(),
        "until": scope.until.isoformat(),
        "times": [t.isoformat() for t in times],
        "labels": [t.strftime("%Y-%m-%d %H:00" if step == "hour" else "%Y-%m-%d") for t in times],
    }
    for f in (*SUMS, *causes):
        out[f] = [int(r[f] or 0) for r in rows]
    out["success_rate"] = [_rate(r["succeeded"], r["partial"], r["failed"]) for r in rows]
    out["causes"] = [{"field": f, "label": CAUSE_FIELDS[f]} for f in causes]
    # Kept error records say their cause; errors beyond the kept ones do not.
    out["other_errors"] = [
        max(0, int(r["errors"] or 0) - sum(int(r[f] or 0) for f in _kind_fields())) for r in rows
    ]
    out["any_runs"] = any(out["runs"])
    out["connection_table"] = connection_latency(scope)
    out["connections"] = _connection_series(scope, step, times, out["connection_table"])
    return out


def _buckets(scope: Scope, step: str) -> list[datetime]:
    """Every hour (or UTC day) of the range, so the charts show the quiet ones as zero."""
    first = scope.start if step == "hour" else scope.start.replace(hour=0)
    delta = timedelta(hours=1) if step == "hour" else timedelta(days=1)
    out = []
    moment = first
    while moment < scope.until:
        out.append(moment)
        moment += delta
    return out


def _kind_fields() -> list[str]:
    return [*ERROR_KIND_FIELDS.values()]


def connection_latency(scope: Scope) -> list[dict[str, Any]]:
    """Every connection called in the range: its calls and p50/p95 over the whole range
    (from its summed buckets), the most called first. One GROUP BY per level read, one
    query for the names. A clone keeps its source's lineage ids, so a connection is
    (integration, lineage)."""
    summed = _latency_by(scope, ("integration_id", "connection_lineage_id"))
    if not summed:
        return []
    found = list(
        Connection.objects.filter(
            integration__in=scope.integrations.values("pk"),
            lineage_id__in={lineage for _, lineage in summed},
        ).values_list("integration_id", "lineage_id", "name", "integration__name")
    )
    shown = Counter(name for _, _, name, _ in found)
    names = {
        (pk, lineage): f"{name} ({integration})" if shown[name] > 1 else name
        for pk, lineage, name, integration in found
    }
    out = []
    for (pk, lineage), buckets in summed.items():
        p50, p95 = _percentiles(buckets)
        out.append(
            {
                "integration_id": pk,
                "lineage_id": str(lineage),
                "name": names.get((pk, lineage)) or f"Connection {str(lineage)[:8]}",
                "calls": histogram.count(buckets),
                "p50_ms": p50,
                "p95_ms": p95,
            }
        )
    return sorted(out, key=lambda c: (-c["calls"], c["name"].lower()))


def _connection_series(
    scope: Scope, step: str, times: list[datetime], table: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The response-time chart's lines: p50/p95 per period of the CHART_CONNECTIONS most
    called connections of `table`, and one line for all the others merged (their buckets
    summed per period, so its percentiles are those of their calls together). One
    GROUP BY per level read, whatever the number of connections."""
    top, rest = table[:CHART_CONNECTIONS], table[CHART_CONNECTIONS:]
    if not top:
        return []
    summed = _sums(
        scope,
        {"range": (scope.start, scope.until)},
        {"range": BUCKET_FIELDS},
        ("line",),
        latency=True,
        step=step,
        line=[(c["integration_id"], c["lineage_id"]) for c in top],
    )
    lines = [{"name": c["name"], "calls": c["calls"]} for c in top]
    if rest:
        lines.append(
            {
                "name": f"{len(rest)} other connection{'s' if len(rest) > 1 else ''}",
                "calls": sum(c["calls"] for c in rest),
                "others": True,
            }
        )
    for entry in lines:
        entry["p50"], entry["p95"] = [None] * len(times), [None] * len(times)
    index = {t: i for i, t in enumerate(times)}
    for (n, at), entry in summed.items():
        i = index.get(at)
        if i is None:
            continue
        target = lines[-1] if n == OTHERS else lines[n]
        target["p50"][i], target["p95"][i] = _percentiles(
            [entry.get(("range", f), 0) for f in BUCKET_FIELDS]
        )
    return lines


# Payload issues ------------------------------------------------------------------------


def error_groups(scope: Scope, *, limit: int = ERROR_GROUPS) -> list[dict[str, Any]]:
    """The most frequent kept errors of live runs in the range, grouped by the same step
    and message: count, first and last seen, the flow, an example run (the latest).
    Read from the error group rollups (runs created in the range; one query per level)."""
    found: dict[tuple[Any, str], dict[str, Any]] = {}
    for level, spans in _periods(scope.start, scope.until):
        qs = level.errors.objects.filter(
            _period_q(level, spans), integration__in=scope.integrations.values("pk")
        )
        if scope.flow:
            qs = qs.filter(flow_lineage_id=scope.flow)
        rows = (
            qs.values("step_lineage_id", "message")
            .annotate(
                count=Sum("count"),
                first_seen=Min("first_seen"),
                last_seen=Max("last_seen"),
                example_run_id=Max("example_run_id"),
                step_name=Max("step_name"),
                kind=Max("kind"),
                http_status=Max("http_status"),
                flow_name=Max("flow_name"),
                integration_id=Max("integration_id"),
            )
            .order_by()
        )
        for r in rows:
            key = (r["step_lineage_id"], r["message"])
            if key in found:
                merged = rollups.group_added(found[key], r)
                merged["integration_id"] = max(found[key]["integration_id"], r["integration_id"])
                found[key] = merged
            else:
                found[key] = r
    ranked = sorted(found.values(), key=lambda g: (-g["count"], -g["last_seen"].timestamp()))
    return [{**g, "example_run": g.pop("example_run_id")} for g in ranked[:limit]]


def integration_sparkline(
    integration_ids: list[int], *, now: datetime | None = None, days: int = 7
) -> dict[int, dict[str, Any]]:
    """Per integration: runs and success rate per day over the last `days` days (the home
    tiles' sparkline). One query for all the tiles, on the day rows (today's holds its
    hours so far)."""
    now = now or timezone.now()
    start = day_of(now - timedelta(days=days - 1))
    rows = (
        DAYS.rollup.objects.filter(integration_id__in=integration_ids, day__gte=start)
        .values("integration_id", at=F("day"))
        .annotate(**{f"sum_{f}": Sum(f) for f in STATUS_COUNTS})
        .order_by()
    )
    rows = [_unprefixed(r) for r in rows]
    days_list = [(start + timedelta(days=i)).date() for i in range(days)]
    out: dict[int, dict[str, Any]] = {}
    for r in rows:
        entry = out.setdefault(
            r["integration_id"], {"days": days_list, "runs": [0] * days, "rate": [None] * days}
        )
        i = (r["at"].date() - days_list[0]).days
        if 0 <= i < days:
            entry["runs"][i] = r["runs"]
            entry["rate"][i] = _rate(r["succeeded"], r["partial"], r["failed"])
    return out
