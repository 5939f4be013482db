"""Error management's figures (issue 16's benchmark), self-contained:

- The error list at N errors (1,000,000 in the issue) filtered to one step: the API's
  `GET /integrations/{id}/errors?step=...&state=open` through Django's test client, median
  over runs (goal ≤ 50 ms), and its query count at N and at N / 100 (goal: flat).
- Retry of R errors (10,000) whose import the target now accepts, against the runtime's
  own throughput on the same records: a live run of the same flow over the same R records
  (transform, then import in batches of 100 to a local HTTP server in another process),
  records/s of each and their ratio (goal ≥ 0.5×).
- Auto-resolve's cost: a live run of the same R records through a step holding an open
  error of each, which it resolves, against the same run with none.

Database: DATABASE_URL, default a fresh SQLite file in /tmp (PostgreSQL is what
production runs; the seeding uses executemany, so 1,000,000 rows take a minute or two).

    .venv/bin/python -m tests.bench.fig_errors --errors 1000000 --retry 10000 --runs 5
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import statistics
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STEPS = 100  # errors spread over this many steps of 10 flows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(port: int, ready: Any) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            body = b'{"ok": true}'
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    ready.set()
    server.serve_forever()


def _setup(database_url: str | None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ilm_site.settings.local")
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    elif not os.environ.get("DATABASE_URL"):
        path = "/tmp/ilm-fig-errors.sqlite3"
        if os.path.exists(path):
            os.remove(path)
        os.environ["DATABASE_URL"] = f"sqlite:///{path}"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _seed_errors(integration: Any, n: int) -> list[uuid.UUID]:
    """N open errors over STEPS steps, inserted in chunks (what a year of runs leaves)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from runs.models import FlowError

    flows = [uuid.uuid4() for _ in range(10)]
    steps = [uuid.uuid4() for _ in range(STEPS)]
    table = FlowError._meta.db_table
    columns = (
        "integration_id, flow_lineage_id, flow_name, step_lineage_id, step_name, fingerprint, "
        "record_index, kind, message, http_status, response_excerpt, record, state, "
        "resolved_by, resolve_comment, first_seen, last_seen, occurrences, retries"
    )
    marks = ", ".join(["%s"] * 19)
    sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
    now = timezone.now()
    chunk = 20_000
    for start in range(0, n, chunk):
        rows = []
        for i in range(start, min(n, start + chunk)):
            step = i % STEPS
            rows.append(
                (
                    integration.pk,
                    flows[step % 10].hex if connection.vendor == "sqlite" else flows[step % 10],
                    f"Flow {step % 10}",
                    steps[step].hex if connection.vendor == "sqlite" else steps[step],
                    f"Step {step}",
                    f"{i:064x}",
                    i,
                    "http",
                    f"POST /sales-orders answered HTTP 422 (order {i}).",
                    422,
                    '{"error": "no customer account"}',
                    f'{{"order_id": {i}, "amount": {i % 997}, "email": "c{i}@example.com"}}',
                    "open",
                    "",
                    "",
                    now,
                    now,
                    1,
                    0,
                )
            )
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, rows)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"ANALYZE {table}")
        else:
            cursor.execute("ANALYZE")
    return steps


def _small_name(n: int) -> str:
    return f"Errors bench (small, {max(STEPS, n // 100):,})"


def _big_name(n: int) -> str:
    return f"Errors bench ({n:,})"


def _seeded(name: str, n: int) -> tuple[Any, list[uuid.UUID], bool]:
    """(integration, its steps, whether it was seeded now): the integration holding N
    seeded errors, kept in make bench's template database, seeded now when missing."""
    from integrations.models import Integration
    from runs.models import FlowError

    integration = Integration.objects.filter(name=name).first()
    if integration is not None and FlowError.objects.filter(integration=integration).count() == n:
        steps = (
            FlowError.objects.filter(integration=integration)
            .order_by("step_lineage_id")
            .values_list("step_lineage_id", flat=True)
            .distinct()
        )
        return integration, list(steps), False
    if integration is not None:
        integration.delete()
    integration = Integration.objects.create(name=name)
    return integration, _seed_errors(integration, n), True


def prepare11(ctx: Any) -> bool:
    """Seed the error list's errors once, into make bench's template database."""
    n = Sized.errors
    small = _seeded(_small_name(n), max(STEPS, n // 100))[2]
    big = _seeded(_big_name(n), n)[2]
    return small or big


def measure_list(n: int, runs: int) -> dict[str, Any]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from integrations.models import Role, User

    admin = User.objects.create_user(
        f"bench-errors-{uuid.uuid4().hex[:6]}", password="pw", role=Role.ADMINISTRATOR
    )
    small, small_steps, _ = _seeded(_small_name(n), max(STEPS, n // 100))
    big, big_steps, _ = _seeded(_big_name(n), n)
    client = Client()
    client.force_login(admin)

    def get(integration: Any, step: uuid.UUID) -> tuple[float, int, int]:
        url = f"/api/v1/integrations/{integration.pk}/errors?step={step}&state=open"
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url)
            took = time.perf_counter() - started
        assert response.status_code == 200, response.content[:300]
        return took, len(queries.captured_queries), len(response.json()["results"])

    get(big, big_steps[0])  # warm caches and the connection
    samples = [get(big, big_steps[i % STEPS])[0] * 1000 for i in range(1, runs + 1)]
    _, q_small, _ = get(small, small_steps[1])
    _, q_big, shown = get(big, big_steps[1])
    return {
        "list_ms": samples,
        "queries_small": q_small,
        "queries_big": q_big,
        "shown": shown,
        "per_step": n // STEPS,
        "again": lambda: get(big, big_steps[2]),
    }


def _flow(base: str) -> Any:
    from integrations.models import Connection, Flow, FlowStep, Integration

    integration = Integration.objects.create(name=f"Retry bench {uuid.uuid4().hex[:6]}")
    erp = Connection.objects.create(
        integration=integration,
        name="ERP",
        kind="http",
        config={"base_url": base, "timeout_s": 30, "retry": {"max_attempts": 1}},
    )
    flow = Flow.objects.create(integration=integration, name="Orders to ERP", enabled=True)
    mappings = [{"source": f"f{i}", "target": f"out.f{i}"} for i in range(10)]
    mappings.append({"source": "id", "target": "order_id"})
    FlowStep.objects.create(
        integration=integration,
        flow=flow,
        name="Shape",
        position=1,
        kind="transform",
        config={"mappings": mappings},
    )
    step = FlowStep.objects.create(
        integration=integration,
        flow=flow,
        name="Send",
        position=2,
        kind="import",
        connection=erp,
        config={"path": "/sales-orders", "batch_size": 100},
    )
    return flow, step


def _records(n: int) -> list[dict[str, Any]]:
    return [{"id": i, **{f"f{f}": f"value {i} {f}" for f in range(10)}} for i in range(n)]


def measure_retry(r: int, base: str) -> dict[str, Any]:
    from django.utils import timezone

    from runs.errors import errors_retry_execute, errors_retry_start, seal_record
    from runs.models import FlowError, Run
    from runs.services import run_execute, run_start

    # The runtime's own throughput: a live run of the flow over the same R records.
    flow, step = _flow(base)
    records = _records(r)
    started = time.perf_counter()
    run = run_start(flow=flow, user=None, records=records)
    run = run_execute(run_id=run.pk)  # eager Celery ran it on commit already: a no-op then
    runtime_s = time.perf_counter() - started
    assert Run.objects.get(pk=run.pk).records_out == r

    # R open errors at the import step, each with its retry data (what entered the step).
    flow2, step2 = _flow(base)
    now = timezone.now()
    shaped = [
        {"out": {f"f{f}": rec[f"f{f}"] for f in range(10)}, "order_id": rec["id"]}
        for rec in records
    ]
    FlowError.objects.bulk_create(
        [
            FlowError(
                integration=flow2.integration,
                flow_lineage_id=flow2.lineage_id,
                flow_name=flow2.name,
                step_lineage_id=step2.lineage_id,
                step_name=step2.name,
                fingerprint=f"{i:064x}",
                kind="http",
                message="POST /sales-orders answered HTTP 422.",
                http_status=422,
                record=rec,
                retry_data=seal_record(rec),
                first_seen=now,
                last_seen=now,
            )
            for i, rec in enumerate(shaped)
        ],
        batch_size=2000,
    )
    ids = list(FlowError.objects.filter(integration=flow2.integration).values_list("pk", flat=True))
    started = time.perf_counter()
    retry = errors_retry_start(integration=flow2.integration, user=None, ids=ids)
    retry = errors_retry_execute(retry_id=retry.pk)
    retry_s = time.perf_counter() - started
    retry.refresh_from_db()
    assert retry.succeeded == r, (retry.status, retry.succeeded, retry.failed, retry.message)
    return {"runtime_rps": r / runtime_s, "retry_rps": r / retry_s}


def _analyze(model: Any) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"ANALYZE {model._meta.db_table}" if connection.vendor == "postgresql" else "ANALYZE"
        )


def measure_auto_resolve(r: int, base: str) -> dict[str, Any]:
    """A live run of R records through an import step holding an open error of each of
    them (the ERP takes them now): the run auto-resolves all R. Against the same run with
    no open errors, back to back."""
    from django.utils import timezone

    from runs.errors import record_key
    from runs.models import FlowError, Run
    from runs.services import run_execute, run_start

    records = _records(r)

    def live(flow: Any) -> float:
        started = time.perf_counter()
        run = run_start(flow=flow, user=None, records=records)
        run = run_execute(run_id=run.pk)
        took = time.perf_counter() - started
        assert Run.objects.get(pk=run.pk).records_out == r
        return took

    plain_s = live(_flow(base)[0])
    flow, step = _flow(base)
    now = timezone.now()
    FlowError.objects.bulk_create(
        [
            FlowError(
                integration=flow.integration,
                flow_lineage_id=flow.lineage_id,
                flow_name=flow.name,
                step_lineage_id=step.lineage_id,
                step_name=step.name,
                fingerprint=f"{i:064x}",
                kind="http",
                message="POST /sales-orders answered HTTP 422.",
                http_status=422,
                record=shaped,
                record_key=record_key(
                    step.lineage_id,
                    {"out": {f"f{f}": rec[f"f{f}"] for f in range(10)}, "order_id": rec["id"]},
                ),
                first_seen=now,
                last_seen=now,
            )
            for i, rec in enumerate(records)
            for shaped in [{"order_id": rec["id"]}]
        ],
        batch_size=2000,
    )
    _analyze(FlowError)  # as a table that has lived a while: the planner knows its keys
    auto_s = live(flow)
    resolved = FlowError.objects.filter(integration=flow.integration, resolved_by="auto").count()
    assert resolved == r, resolved
    return {"plain_rps": r / plain_s, "auto_rps": r / auto_s}


def fig_errors(ctx: Any) -> None:
    n, r, runs = ctx.errors, ctx.retry, ctx.runs
    if n:
        _list_rows(ctx, n, runs)
    _run_rows(ctx, r, runs)


def _list_rows(ctx: Any, n: int, runs: int) -> None:
    listing = measure_list(n, runs)
    listed = ctx.row(
        "11",
        f"error list at {n:,} errors, one step ({listing['per_step']:,} open)",
        "ms",
        samples=listing["list_ms"],
        goal="≤ 50 ms",
        check=lambda v: v <= 50,
    )
    ctx.row(
        "11",
        f"queries per list request at {n // 100:,} → {n:,} errors",
        "queries",
        samples=[float(listing["queries_big"])],
        goal=f"flat (= {listing['queries_small']})",
        check=lambda v, s=listing["queries_small"]: v == s,
    )
    if hasattr(ctx, "profiles"):  # in `make bench`: a MISS comes with its profile
        from tests.bench import figures

        figures.profile_miss(ctx, listed, "fig11-error-list", listing["again"])
    ctx.method.append(
        f"Error list: Django test client GET of the API list filtered to one step and open, "
        f"{STEPS} steps over {n:,} errors, page of {listing['shown']}; median of {runs}."
    )


def _run_rows(ctx: Any, r: int, runs: int) -> None:
    port = _free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=_serve, args=(port, ready), daemon=True)
    server.start()
    ready.wait(10)
    try:
        ratios, retry_rps, runtime_rps = [], [], []
        for _ in range(max(1, min(runs, 3))):
            got = measure_retry(r, f"http://127.0.0.1:{port}")
            retry_rps.append(got["retry_rps"])
            runtime_rps.append(got["runtime_rps"])
            ratios.append(got["retry_rps"] / got["runtime_rps"])
        auto = [measure_auto_resolve(r, f"http://127.0.0.1:{port}") for _ in range(2)]
    finally:
        server.terminate()
        server.join(5)
    ctx.row(
        "11",
        f"live run of {r:,} records auto-resolving an open error of each",
        "records/s",
        samples=[a["auto_rps"] for a in auto],
    )
    ctx.row(
        "11",
        "… ÷ the same run with no open errors",
        "×",
        samples=[a["auto_rps"] / a["plain_rps"] for a in auto],
    )
    ctx.row("11", f"retry of {r:,} errors", "records/s", samples=retry_rps)
    ctx.row("11", f"live run of the same {r:,} records", "records/s", samples=runtime_rps)
    ctx.row(
        "11",
        "retry ÷ runtime throughput",
        "×",
        samples=ratios,
        goal="≥ 0.5×",
        check=lambda v: v >= 0.5,
    )
    ctx.method.append(
        "Retry: start + execute (decrypt retry data, engine from the failing import step, "
        "settle rows) against a live run of the same flow over the same records, both "
        "importing in batches of 100 to a local threaded HTTP server in another process."
    )
    ctx.method.append(
        "Auto-resolve: a live run of the same records through an import step holding an "
        "open error of each (all resolved by auto, one audit event each) against the same "
        "run with no open errors, back to back; 2 pairs."
    )


class Sized:
    """make bench's context, with this figure's sizes."""

    errors = 1_000_000
    retry = 10_000

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)


def fig11_errors(ctx: Any) -> None:
    """Error management: the error list at 1,000,000 errors, retry throughput (issue 16)"""
    fig_errors(Sized(ctx))


FIGURES = {"11": fig11_errors}
PREPARE = {"11": prepare11}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--errors", type=int, default=1_000_000, help="errors of the list figure (0: skip it)"
    )
    parser.add_argument("--retry", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    _setup(args.database_url)
    from tests.bench.measure import Row, as_text

    class Ctx:
        errors = args.errors
        retry = args.retry
        runs = args.runs
        rows: list[Row] = []
        method: list[str] = []

        def row(self, *a: Any, **kw: Any) -> Row:
            made = Row(*a, **kw)
            self.rows.append(made)
            return made

    ctx = Ctx()
    fig_errors(ctx)
    print(as_text(ctx.rows))
    for line in ctx.method:
        print(f"- {line}")
    print(
        f"- medians: {[(r.measure, statistics.median(r.samples)) for r in ctx.rows if r.samples]}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
