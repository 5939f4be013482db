"""Figure 9: monitoring at 1,000,000 runs and 10,000,000 step records (issue 14).

- The Monitoring page over 30 days (an administrator: every flow) in ≤ 150 ms, with a
  query count that does not grow with runs (the same count over 24 h, 1/30 of the runs).
- `GET /api/v1/monitoring/flows` (default: the last 24 h) in ≤ 100 ms; over 30 days too.
- Baseline: the same per-flow figures (runs by status, records, errors, retries over 30
  days) by scanning the raw runs, as the ratio baseline / rollups.

Data: 50 flows in 10 integrations, runs spread evenly over the last 30 days, 10 steps per
run (two of them calling a connection, with a latency histogram), one kept error record
per partial or failed run. The raw rows are written with PostgreSQL's `generate_series`
in the shape `runs.services` stores them (10 M rows through the ORM would take the
benchmark's whole budget); the rollups are then written by the rollup code itself,
`runs.rollups.rollup_rebuild()`, which reads every run with its steps and errors: the
same `figures_of`/`added` that a run's end calls. PostgreSQL only.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ilm_mon_bench \\
        .venv/bin/python -m tests.bench.fig_monitoring [--runs-total 1000000] [--runs 5]
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
from typing import Any
from urllib.parse import quote

FLOWS_PER_INTEGRATION = 5
INTEGRATIONS = 10
STEPS = 10
DAYS = 30
MARK = "bench-monitoring"


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
            out.append({"integration": integration, "flow": flow, "connections": conns})
    return out


def generate(total: int) -> float:
    """Write `total` runs with STEPS steps each (and errors), then the rollups. Seconds."""
    from django.db import connection

    from runs.models import Run, RunError, RunStep
    from runs.rollups import rollup_rebuild

    started = time.perf_counter()
    flows = _flows()
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE bench_flows (n int, integration_id bigint, "
            "lineage uuid, name text, c0 uuid, c1 uuid)"
        )
        for n, f in enumerate(flows):
            cursor.execute(
                "INSERT INTO bench_flows VALUES (%s, %s, %s, %s, %s, %s)",
                [
                    n,
                    f["integration"].pk,
                    f["flow"].lineage_id,
                    f["flow"].name,
                    f["connections"][0].lineage_id,
                    f["connections"][1].lineage_id,
                ],
            )
        run, step, error = Run._meta.db_table, RunStep._meta.db_table, RunError._meta.db_table
        span = DAYS * 86400
        cursor.execute(
            f"""
            INSERT INTO {run} (integration_id, flow_lineage_id, flow_name, mode, trigger,
                status, created_at, started_at, ended_at, records_in, records_out, errors,
                retries, pages, progress, cancel_requested, output, message)
            SELECT f.integration_id, f.lineage, f.name, 'live', 'schedule',
                CASE WHEN g %% 53 = 0 THEN 'failed' WHEN g %% 17 = 0 THEN 'partial'
                     ELSE 'succeeded' END,
                t, t, t + interval '2 seconds', 100 + g %% 50, 100 + g %% 50
                    - CASE WHEN g %% 17 = 0 OR g %% 53 = 0 THEN 1 ELSE 0 END,
                CASE WHEN g %% 17 = 0 OR g %% 53 = 0 THEN 1 ELSE 0 END, g %% 3, 1, '{{}}',
                false, '[]', ''
            FROM generate_series(1, %s) g
            JOIN bench_flows f ON f.n = g %% {len(flows)}
            CROSS JOIN LATERAL (SELECT now() - make_interval(secs => g::float8 * {span} / %s)
                AS t) tt
            """,
            [total, total],
        )
        hist = "[0,0,0,0,1,2,3,4,6,3,2,1,1,0,0,0,0,0,0,0,0,0,0,0,0]"
        cursor.execute(
            f"""
            INSERT INTO {step} (run_id, lineage_id, position, name, kind, records_in,
                records_out, errors, duration_ms, http_calls, http_retries, histogram,
                connection_lineage_id)
            SELECT r.id, md5(r.flow_lineage_id::text || s)::uuid, s, 'Step ' || s,
                CASE WHEN s = 1 THEN 'export' WHEN s = {STEPS} THEN 'import'
                     ELSE 'transform' END,
                r.records_in, r.records_out, 0, 12.5,
                CASE WHEN s IN (1, {STEPS}) THEN 23 ELSE 0 END, 0,
                CASE WHEN s IN (1, {STEPS}) THEN %s::jsonb ELSE '[]'::jsonb END,
                CASE WHEN s = 1 THEN f.c0 WHEN s = {STEPS} THEN f.c1 END
            FROM {run} r JOIN bench_flows f ON f.lineage = r.flow_lineage_id
            CROSS JOIN generate_series(1, {STEPS}) s
            """,
            [hist],
        )
        cursor.execute(
            f"""
            INSERT INTO {error} (run_id, step_lineage_id, step_name, record_index, kind,
                message, http_status, record, response_excerpt, created_at)
            SELECT r.id, md5(r.flow_lineage_id::text || {STEPS})::uuid, 'Step {STEPS}',
                0, CASE WHEN r.id %% 2 = 0 THEN 'http' ELSE 'mapping' END,
                CASE WHEN r.id %% 2 = 0 THEN 'POST /orders answered HTTP 422.'
                     ELSE 'sku ' || (r.id %% 40) || ' is not in lookup cache SKU' END,
                CASE WHEN r.id %% 2 = 0 THEN 422 END, '{{"id": 1}}', '', r.created_at
            FROM {run} r JOIN bench_flows f ON f.lineage = r.flow_lineage_id
            WHERE r.errors > 0
            """,
            [],
        )
        cursor.execute("DROP TABLE bench_flows")
        cursor.execute(f"ANALYZE {run}; ANALYZE {step}; ANALYZE {error}")
    rollup_rebuild()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE runs_flowhourrollup; ANALYZE runs_connectionhourlatency")
    return time.perf_counter() - started


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def measure(runs: int) -> dict[str, Any]:
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

    def get(c: Any, url: str, **params: Any) -> tuple[float, int]:
        gc.collect()
        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            response = c.get(url, params or None)
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
    page_t, page_q, day_q, api_t, api30_t, scan_t = [], [], [], [], [], []
    for _ in range(max(5, runs)):
        t, q = get(client, page_30d)
        page_t.append(t)
        page_q.append(q)
        day_q.append(get(client, page_24h)[1])
        api_t.append(get(api, api_24h)[0])
        api30_t.append(get(api, api_24h + f"&since={quote(since)}")[0])
        gc.collect()
        start = time.perf_counter()
        scan()
        scan_t.append(time.perf_counter() - start)
    return {
        "runs": Run.objects.count(),
        "steps": RunStep.objects.count(),
        "page_30d_ms": _median_ms(page_t),
        "page_30d_queries": max(page_q),
        "page_24h_queries": max(day_q),
        "api_24h_ms": _median_ms(api_t),
        "api_30d_ms": _median_ms(api30_t),
        "scan_30d_ms": _median_ms(scan_t),
        "api_30d_vs_scan": statistics.median(scan_t) / statistics.median(api30_t),
    }


def fig9_monitoring(ctx: Any) -> None:
    """monitoring at 1,000,000 runs / 10,000,000 steps: page 30 d, /monitoring/flows, raw scan"""
    total = int(os.environ.get("BENCH_MONITORING_RUNS", "1000000"))
    from runs.models import Run

    if Run.objects.filter(flow_name__startswith="Flow ").count() < total:
        ctx.notes.append(f"Fig 9 generated its data in {generate(total):.0f} s.")
    m = measure(ctx.runs)
    ms = 1e-3
    ctx.row(
        "9",
        f"Monitoring page, 30 days ({m['runs']:,} runs)",
        "s",
        [m["page_30d_ms"] * ms],
        goal="≤ 150 ms",
        check=lambda v: v <= 0.150,
    )
    ctx.row(
        "9",
        "  queries (30 d; 24 h has the same count)",
        "queries",
        [m["page_30d_queries"]],
        goal=f"= {m['page_24h_queries']}",
        check=lambda v: v == m["page_24h_queries"],
    )
    ctx.row(
        "9",
        "GET /monitoring/flows (24 h)",
        "s",
        [m["api_24h_ms"] * ms],
        goal="≤ 100 ms",
        check=lambda v: v <= 0.100,
    )
    ctx.row(
        "9", "GET /monitoring/flows (30 d) vs a scan of the raw runs", "×", [m["api_30d_vs_scan"]]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-total", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL database of its own.")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ilm_site.settings.local")
    os.environ["DEBUG"] = "false"
    import django

    django.setup()
    from django.core.management import call_command

    from runs.models import Run

    call_command("migrate", verbosity=0, interactive=False)
    have = Run.objects.filter(flow_name__startswith="Flow ").count()
    if have < args.runs_total:
        print(f"generating {args.runs_total:,} runs …", flush=True)
        print(f"generated in {generate(args.runs_total - have):.0f} s", flush=True)
    m = measure(args.runs)
    for key, value in m.items():
        print(f"{key:>20}: {value:,.1f}" if isinstance(value, float) else f"{key:>20}: {value:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
