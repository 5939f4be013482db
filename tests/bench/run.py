"""`make bench`: the engine, the pages and the audit log measured against the best
alternatives, as ratios measured in the same run (issue 6).

    DATABASE_URL=postgres://…/ilm_bench python -m tests.bench.run [--runs N] [--only 1,2,…]

Prints one table and writes bench/results.md (date, cores, versions, each figure with its
goal and PASS/MISS). Every figure is run several times: median, min and max. Where a goal
is missed the figure is profiled with pyinstrument; the heaviest functions are written
under the table and the full report to bench/profiles/. Goals are the issue's, never
loosened.

Adding a figure: a module tests/bench/fig_<topic>.py with a function taking the
figures.Context, registered with `@figures.figure("N")` (or a module-level
`FIGURES = {"N": fn}`); it is found and run in number order. It adds rows with
`ctx.row(figure, measure, unit, samples, goal=…, check=…)` and, for a row that can
miss, calls `figures.explain_miss` / `profile_miss` so the MISS comes with a profile.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results.md"
PROFILES = ROOT / "bench" / "profiles"


def _configure_environment() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        raise SystemExit("Set DATABASE_URL (make bench does: BENCH_DATABASE_URL or ilm_bench).")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ilm_site.settings.local")
    # DEBUG would keep every query in memory; no broker means Celery runs eagerly here,
    # so an operation's time includes its task.
    os.environ["DEBUG"] = "false"
    os.environ.pop("CELERY_BROKER_URL", None)
    return url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of the slow figures")
    parser.add_argument("--only", default="", help="comma-separated figure numbers")
    parser.add_argument("--events", type=int, default=1_000_000, help="audit events (fig. 6)")
    parser.add_argument("--load-seconds", type=int, default=30, help="locust run length (fig. 7)")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results.md")
    parser.add_argument(
        "--prepare-only",
        action="store_true",
        help="make the template database (schema, users, every figure's bulk data) and stop",
    )
    args = parser.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}

    url = _configure_environment()
    from tests.bench import database

    started = time.perf_counter()
    from_template = database.fresh_from_template(url)
    print(f"bench database: {'copied from template' if from_template else 'new'}", flush=True)

    import django

    django.setup()
    from tests.bench import figures

    ctx = figures.Context(
        url=url,
        runs=max(1, args.runs),
        events=args.events,
        load_seconds=args.load_seconds,
        profiles=PROFILES,
    )
    figures.prepare(ctx, save_template=lambda: _save_template(url), only=only)
    if args.prepare_only:
        print(f"prepared in {(time.perf_counter() - started) / 60:.1f} min", flush=True)
        return 0
    rows = figures.run_all(ctx, only)
    for row in rows:
        if row.verdict == "MISS" and not row.profiled:
            ctx.notes.append(
                f"Fig {row.figure} ({row.measure}) misses {row.goal}; its figure wrote no"
                " profile (a figure should call figures.explain_miss or profile_miss)."
            )
    elapsed = time.perf_counter() - started

    from tests.bench.measure import as_markdown, as_text

    print()
    print(as_text(rows))
    print()
    for line in ctx.notes:
        print(f"- {line}")
    print(f"\nbench took {elapsed / 60:.1f} min")
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(_report(ctx, rows, as_markdown(rows), elapsed, url))
        print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


def _save_template(url: str) -> None:
    from django.db import connections

    from tests.bench import database

    connections.close_all()
    database.save_as_template(url)


def _report(ctx, rows, table_md: str, elapsed: float, url: str) -> str:
    import django

    from tests.bench import database

    verdicts = [r.verdict for r in rows if r.verdict in ("PASS", "MISS")]
    lines = [
        "# Benchmark results",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {os.cpu_count()} cores ({platform.machine()}, {platform.system()}),"
        " shared with other work while measured",
        f"- Python {platform.python_version()}, Django {django.get_version()},"
        f" PostgreSQL {database.server_version(url)}",
        f"- Command: `make bench` (`python -m tests.bench.run --runs {ctx.runs}`),"
        f" took {elapsed / 60:.1f} min",
        f"- Goals met: {verdicts.count('PASS')} of {len(verdicts)}",
        "",
        "Each figure ran several times in the same `make bench`; median, min and max are"
        " shown. Ratios are taken per run (both sides measured back to back) and then"
        " summarised. Workloads are generated from fixed seeds (tests/bench/workloads.py).",
        "",
        table_md,
        "",
        "## Workloads and method",
        "",
        *[f"- {line}" for line in ctx.method],
        "",
        "## Closing note",
        "",
        *[f"- {line}" for line in ctx.notes],
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
