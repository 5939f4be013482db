"""Figure 9: monitoring at 1,000,000 runs and 10,000,000 step records (issue 14).

- The Monitoring page over 30 days (an administrator: every flow) in ≤ 150 ms, with a
  query count that does not grow with runs (the same count over 24 h, 1/30 of the runs).
- `GET /api/v1/monitoring/flows` (default: the last 24 h) in ≤ 100 ms; over 30 days too.
- Baseline: the same per-flow figures (runs by status, records, errors, retries over 30
  days) by scanning the raw runs, as the ratio baseline / rollups.

Data: 50 flows in 10 integrations, runs spread evenly over the last 30 days, 10 steps per
run (two of them calling a connection, with a latency histogram), one kept error record
per partial or failed run. Runs are recorded in batches the way the runtime records
them, through its bulk path: the run, step and error rows in the shape
`runs.services._store` writes them, sent with COPY (the bulk form of its bulk inserts),
and each batch added to the hourly and daily rollups by `runs.rollups.rollup_runs`, the
code a run's end calls (`rollup_run` is `rollup_runs` of one run). Calling `_store` once
per run would take hours at this size (it locks, audits and writes row by row).
PostgreSQL only.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ilm_mon_bench \\
        .venv/bin/python -m tests.bench.fig_monitoring [--runs-total 1000000] [--runs 5]

`--reuse` measures the runs already recorded there, recording nothing.

`make bench` generates BENCH_MONITORING_RUNS runs (default 1,000,000).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
import uuid
from datetime import timedelta
from typing import Any, NamedTuple
from urllib.parse import quote

FLOWS_PER_INTEGRATION = 5
INTEGRATIONS = 10
STEPS = 10
DAYS = 30
BATCH = 10_000
MARK = "bench-monitoring"
HISTOGRAM = [0, 0, 0, 0, 1, 2, 3, 4, 6, 3, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]


class StepFigures(NamedTuple):
    """What the rollups read of a step row (`RunStep`): the connection and histogram."""

    connection_lineage_id: uuid.UUID | None
    histogram: list[int]


def _flows() -> list[dict[str, Any]]:
    """The integrations, flows and connections of the figure (made once, by name)."""
    from integrations.models import Connection, Flow, Integration

    out = []
    for i in range(INTEGRATIONS):
        integration, _ = Integration.objects.get_or_create(
            name=f"{MARK} {i}", defaults={"description": "monitoring benchmark"}
        )
        conns = []
        for c in range(2):
            conn = Connection.objects.filter(integration=integration, name=f"API {c}").first()
            if conn is None:
                conn = Connection.objects.create(
                    integration=integration,
                    name=f"API {c}",
                    kind="http",
                    config={"base_url": "http://127.0.0.1:9"},
                )
            conns.append(conn)
        for f in range(FLOWS_PER_INTEGRATION):
            flow = Flow.objects.filter(integration=integration, name=f"Flow {f}").first()
            if flow is None:
                flow = Flow.objects.create(
                    integration=integration, name=f"Flow {f}", schedule="*/5 * * * *"
                )
            out.append(_shape(integration, flow, conns))
    return out


def _shape(integration: Any, flow: Any, conns: list[Any]) -> dict[str, Any]:
    """A flow's steps as the runtime reports them: 10 steps, the first calling one
    connection (export), the last another (import)."""
    steps = []
    for position in range(1, STEPS + 1):
        conn = {1: conns[0].lineage_id, STEPS: conns[1].lineage_id}.get(position)
        steps.append(
            {
                "lineage_id": uuid.uuid5(flow.lineage_id, str(position)),
                "position": position,
                "kind": "export" if position == 1 else "import" if position == STEPS else "map",
                "connection": conn,
                "calls": sum(HISTOGRAM) if conn else 0,
                "histogram": HISTOGRAM if conn else [],
            }
        )
    return {
        "integration_id": integration.pk,
        "lineage": flow.lineage_id,
        "name": flow.name,
        "steps": steps,
        "figures": [StepFigures(s["connection"], s["histogram"]) for s in steps],
    }


def _copy(cursor: Any, table: str, columns: str, lines: list[str]) -> None:
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        copy.write("".join(lines))


def generate(total: int, *, first: int = 0, upto: int | None = None, batch: int = BATCH) -> float:
    """Record runs number `first` to `upto` (default `total`) of `total` spread over the
    last DAYS days (run 1 is the newest) with their steps and errors, and roll them up.
    Seconds."""
    from django.db import connection, transaction
    from django.utils import timezone

    from runs.models import Run, RunError, RunStep
    from runs.rollups import rollup_runs

    started = time.perf_counter()
    flows = _flows()
    now = timezone.now()
    span = DAYS * 86400
    run_t, step_t, error_t = (m._meta.db_table for m in (Run, RunStep, RunError))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [run_t])
        sequence = cursor.fetchone()[0]
    upto = total if upto is None else upto
    for low in range(first, upto, batch):
        n = min(batch, upto - low)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT nextval(%s) FROM generate_series(1, %s)", [sequence, n])
            ids = [row[0] for row in cursor.fetchall()]
            ended, run_lines, step_lines, error_lines = [], [], [], []
            for g, pk in zip(range(low + 1, low + n + 1), ids, strict=True):
                flow = flows[g % len(flows)]
                failed, partial = g % 53 == 0, g % 17 == 0
                status = "failed" if failed else "partial" if partial else "succeeded"
                bad = 1 if failed or partial else 0
                at = now - timedelta(seconds=g * span / total)
                run = Run(
                    pk=pk,
                    integration_id=flow["integration_id"],
                    flow_lineage_id=flow["lineage"],
                    flow_name=flow["name"],
                    mode="live",
                    trigger="schedule",
                    status=status,
                    created_at=at,
                    started_at=at,
                    ended_at=at + timedelta(seconds=2),
                    records_in=100 + g % 50,
                    records_out=100 + g % 50 - bad,
                    errors=bad,
                    retries=g % 3,
                    pages=1,
                )
                t0, t1 = at.isoformat(), run.ended_at.isoformat()
                run_lines.append(
                    f"{pk}\t{run.integration_id}\t{run.flow_lineage_id}\t{run.flow_name}\t"
                    f"live\tschedule\t{status}\t{t0}\t{t0}\t{t1}\t{run.records_in}\t"
                    f"{run.records_out}\t{bad}\t{run.retries}\t1\t{{}}\tf\t[]\t\n"
                )
                for s in flow["steps"]:
                    step_lines.append(
                        f"{pk}\t{s['lineage_id']}\t{s['position']}\tStep {s['position']}\t"
                        f"{s['kind']}\t{run.records_in}\t{run.records_out}\t0\t12.5\t"
                        f"{s['calls']}\t0\t{s['histogram']}\t{s['connection'] or '\\N'}\n"
                    )
                errors = []
                if bad:
                    last = flow["steps"][-1]
                    http = pk % 2 == 0
                    error = RunError(
                        run_id=pk,
                        step_lineage_id=last["lineage_id"],
                        step_name=f"Step {STEPS}",
                        kind="http" if http else "mapping",
                        message="POST /orders answered HTTP 422."
                        if http
                        else f"sku {pk % 40} is not in lookup cache SKU",
                        http_status=422 if http else None,
                        created_at=run.ended_at,
                    )
                    errors.append(error)
                    error_lines.append(
                        f"{pk}\t{error.step_lineage_id}\t{error.step_name}\t0\t{error.kind}\t"
                        f"{error.message}\t{error.http_status or '\\N'}\t"
                        f'{{"id": 1}}\t\t{t1}\n'
                    )
                ended.append((run, flow["figures"], errors))
            raw = cursor.cursor
            _copy(
                raw,
                run_t,
                "id, integration_id, flow_lineage_id, flow_name, mode, trigger, status, "
                "created_at, started_at, ended_at, records_in, records_out, errors, retries, "
                "pages, progress, cancel_requested, output, message",
                run_lines,
            )
            _copy(
                raw,
                step_t,
                "run_id, lineage_id, position, name, kind, records_in, records_out, errors, "
                "duration_ms, http_calls, http_retries, histogram, connection_lineage_id",
                step_lines,
            )
            _copy(
                raw,
                error_t,
                "run_id, step_lineage_id, step_name, record_index, kind, message, "
                "http_status, record, response_excerpt, created_at",
                error_lines,
            )
            rollup_runs(ended)
        if (low // batch) % 5 == 0:
            print(
                f"  {low + n:,} runs recorded ({time.perf_counter() - started:.0f} s)", flush=True
            )
    with connection.cursor() as cursor:
        for model in (Run, RunStep, RunError):
            cursor.execute(f"ANALYZE {model._meta.db_table}")
        for table in (
            "runs_flowhourrollup",
            "runs_flowdayrollup",
            "runs_connectionhourlatency",
            "runs_connectiondaylatency",
            "runs_errorgrouphour",
            "runs_errorgroupday",
        ):
            cursor.execute(f"ANALYZE {table}")
    return time.perf_counter() - started


def measure(runs: int) -> dict[str, Any]:
    """Each measure's samples (seconds, or query counts), `runs` times (at least 5)."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.db.models import Count, Q, Sum
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse
    from django.utils import timezone
    from rest_framework.test import APIClient

    from runs.models import Run, RunStep

    User = get_user_model()
    admin = User.objects.filter(username=f"{MARK}-admin").first() or User.objects.create_user(
        f"{MARK}-admin", password=uuid.uuid4().hex, role="administrator"
    )
    client = Client()
    client.force_login(admin)
    api = APIClient()
    api.force_authenticate(admin)
    page_30d = reverse("runs:monitoring") + "?range=30d"
    page_24h = reverse("runs:monitoring") + "?range=24h"
    api_24h = "/api/v1/monitoring/flows?page_size=500"
    since = (timezone.now() - timedelta(days=30)).isoformat()
    api_30d = api_24h + f"&since={quote(since)}"

    def get(c: Any, url: str) -> tuple[float, int]:
        gc.collect()
        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            response = c.get(url)
            if response.status_code != 200:
                raise RuntimeError(f"{url} answered {response.status_code}")
            t = time.perf_counter() - start
        return t, len(captured.captured_queries)

    def scan() -> int:
        # The grid's per-flow figures from the raw runs (counts and sums only; adding the
        # latency would also read the 10 M step rows).
        rows = list(
            Run.objects.filter(mode="live", created_at__gte=timezone.now() - timedelta(days=30))
            .values("integration_id", "flow_lineage_id")
            .annotate(
                runs=Count("pk"),
                succeeded=Count("pk", filter=Q(status="succeeded")),
                partial=Count("pk", filter=Q(status="partial")),
                failed=Count("pk", filter=Q(status="failed")),
                records_in=Sum("records_in"),
                records_out=Sum("records_out"),
                errors=Sum("errors"),
                retries=Sum("retries"),
            )
        )
        return len(rows)

    for url in (page_30d, page_24h):
        get(client, url)  # warm
    get(api, api_24h)
    out: dict[str, Any] = {k: [] for k in ("page_30d", "q_30d", "q_24h", "api_24h", "api_30d")}
    out["scan"] = []
    for _ in range(max(5, runs)):
        t, q = get(client, page_30d)
        out["page_30d"].append(t)
        out["q_30d"].append(q)
        out["q_24h"].append(get(client, page_24h)[1])
        out["api_24h"].append(get(api, api_24h)[0])
        out["api_30d"].append(get(api, api_30d)[0])
        gc.collect()
        start = time.perf_counter()
        scan()
        out["scan"].append(time.perf_counter() - start)
    out["runs"] = Run.objects.count()
    out["steps"] = RunStep.objects.count()
    out["profile"] = {
        "page": lambda: client.get(page_30d),
        "api": lambda: api.get(api_24h),
    }
    return out


def page_queries() -> int:
    """Queries of the 30-day Monitoring page (an administrator: every flow)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from integrations.models import User

    admin = User.objects.filter(username=f"{MARK}-admin").first() or User.objects.create_user(
        f"{MARK}-admin", password=uuid.uuid4().hex, role="administrator"
    )
    client = Client()
    client.force_login(admin)
    url = reverse("runs:monitoring") + "?range=30d"
    client.get(url)
    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    return len(captured.captured_queries)


def record(total: int, say: Any = print) -> int | None:
    """Record what is missing of `total` runs; when starting below a tenth of them, the
    page's query count at a tenth is returned (to compare with the count at `total`)."""
    have = _have()
    tenth = None
    if have < total // 10:
        say(
            f"Fig 9 recorded {total // 10 - have:,} runs in "
            f"{generate(total, first=have, upto=total // 10):.0f} s."
        )
        have = total // 10
        tenth = page_queries()
    if have < total:
        say(f"Fig 9 recorded {total - have:,} runs in {generate(total, first=have):.0f} s.")
    return tenth


def _have() -> int:
    from runs.models import Run

    return Run.objects.filter(flow_name__startswith="Flow ", mode="live").count()


def _total() -> int:
    return int(os.environ.get("BENCH_MONITORING_RUNS", "1000000"))


def prepare9(ctx: Any) -> bool:
    """Record the runs the template lacks (all of them once; none when copied from it).

    The page's query count at a tenth of the runs is known only when they were recorded
    in this run (ctx.prepared["9"], else None)."""
    have = _have()
    ctx.prepared["9"] = record(_total(), ctx.notes.append)
    return _have() != have


def fig9_monitoring(ctx: Any) -> None:
    """monitoring at 1,000,000 runs / 10,000,000 steps: page 30 d, /monitoring/flows, raw scan"""
    from tests.bench.figures import explain_miss
    from tests.bench.measure import hot_spots

    total = _total()
    if "9" not in ctx.prepared:  # run without make bench's prepare step
        prepare9(ctx)
    tenth = ctx.prepared["9"]
    m = measure(ctx.runs)
    ctx.method.append(
        f"Fig 9: {m['runs']:,} live runs and {m['steps']:,} step records over 30 days (50"
        " flows in 10 integrations, 2 connections each; 1 in 17 partial, 1 in 53 failed,"
        " each with a kept error record), recorded in batches of 10,000 through the"
        " runtime's bulk path (COPY of the rows runs.services stores, rollups by"
        " runs.rollups.rollup_runs). Page = GET /monitoring/?range=30d as an"
        " administrator through Django's test client; API = GET /api/v1/monitoring/flows"
        " (24 h, and since 30 days ago). Baseline: the grid's per-flow counts and sums"
        " over 30 days by a GROUP BY over the raw runs (no latency: that would read the"
        " step rows too)."
    )
    page = ctx.row(
        "9",
        f"Monitoring page, 30 days ({m['runs']:,} runs)",
        "s",
        m["page_30d"],
        goal="≤ 150 ms",
        check=lambda v: v <= 0.150,
    )
    queries = ctx.row(
        "9",
        "… queries (30 d)",
        "queries",
        m["q_30d"],
        goal=f"= at {total // 10:,} runs ({tenth})" if tenth else "",
        check=(lambda v: v <= tenth) if tenth else None,
    )
    ctx.row("9", "… queries (24 h)", "queries", m["q_24h"])
    flows = ctx.row(
        "9",
        "GET /monitoring/flows (24 h)",
        "s",
        m["api_24h"],
        goal="≤ 100 ms",
        check=lambda v: v <= 0.100,
    )
    ctx.row("9", "GET /monitoring/flows (30 d)", "s", m["api_30d"])
    ctx.row("9", "scan of the raw runs, same per-flow sums (30 d)", "s", m["scan"])
    ctx.row(
        "9",
        "raw scan time / /monitoring/flows (30 d) time",
        "×",
        [s / a for s, a in zip(m["scan"], m["api_30d"], strict=True)],
    )
    for row, label, key in ((page, "fig9-monitoring-page", "page"), (flows, "fig9-flows", "api")):
        if row.verdict == "MISS":
            explain_miss(ctx, row, label, hot_spots(m["profile"][key]))
    if queries.verdict == "MISS":
        explain_miss(ctx, queries, "fig9-monitoring-queries", hot_spots(m["profile"]["page"]))


PREPARE = {"9": prepare9}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-total", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="only measure, on the runs already recorded (no migrate, nothing recorded)",
    )
    args = parser.parse_args(argv)
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL database of its own.")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ilm_site.settings.local")
    os.environ["DEBUG"] = "false"
    import django

    django.setup()
    from django.core.management import call_command

    if args.reuse:
        if not _have():
            raise SystemExit("--reuse: no runs of the figure in this database; run without it.")
        tenth = None
    else:
        call_command("migrate", verbosity=0, interactive=False)
        tenth = record(args.runs_total)
    m = measure(args.runs)
    print(f"{'runs':>24}: {m['runs']:,}\n{'steps':>24}: {m['steps']:,}")
    for key in ("page_30d", "api_24h", "api_30d", "scan"):
        ms = sorted(v * 1000 for v in m[key])
        print(f"{key + ' ms':>24}: median {statistics.median(ms):.1f} ({ms[0]:.1f}–{ms[-1]:.1f})")
    print(f"{'queries 30 d / 24 h':>24}: {max(m['q_30d'])} / {max(m['q_24h'])}")
    if tenth:
        print(f"{'queries 30 d at 1/10':>24}: {tenth}")
    ratios = [s / a for s, a in zip(m["scan"], m["api_30d"], strict=True)]
    print(f"{'scan / api 30 d':>24}: {statistics.median(ratios):.1f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
