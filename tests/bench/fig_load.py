"""Figure 7: the site's ceiling, and 20 people using it.

gunicorn (2 sync workers) serves the site from the benchmark database on 127.0.0.1 (a free
port) with the production settings (tests/bench/site_settings.py: DEBUG off, cached
templates, hashed static files collected first, PostgreSQL).

- Ceiling: each page in turn is loaded to saturation by a closed loop of clients
  (tests/bench/hammer.py: the next request as soon as the last is answered); its
  requests/s against a trivial Django view on the same gunicorn, the limit of this box.
- 20 people: locust headless (`-u 20 -r 5 -t 30s`, 0.5–1.5 s think time) with
  tests/bench/locustfile.py on the home page and a Revisions tab; its CSV gives
  requests/s and the 95th percentile per page.

Every process is started and stopped here.
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
USERS, SPAWN_RATE, WORKERS = 20, 5, 2
DEFAULT_CACHE_URL = "redis://127.0.0.1:6379/0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cache_url() -> str:
    """The Redis the server caches in: under gunicorn the deployment docs require one
    (README, docs/operations.md), and production then keeps sessions in it (cached_db)."""
    return os.environ.get("BENCH_CACHE_URL") or os.environ.get("CACHE_URL") or DEFAULT_CACHE_URL


def _forget_cached(prefix: str) -> None:
    """Remove what the server kept in Redis under this run's prefix (nothing else)."""
    import redis

    client = redis.Redis.from_url(_cache_url())
    try:
        for batch in _batched(client.scan_iter(match=f"{prefix}:*", count=1000), 500):
            client.delete(*batch)
    finally:
        client.close()


def _batched(items: Any, n: int) -> Any:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def _server_env(url: str, static_root: str, cache_prefix: str) -> dict[str, str]:
    import secrets

    from django.conf import settings

    env = {k: v for k, v in os.environ.items() if k not in ("CELERY_BROKER_URL", "DEBUG")}
    env.update(
        DATABASE_URL=url,
        CACHE_URL=_cache_url(),
        BENCH_CACHE_PREFIX=cache_prefix,
        DJANGO_SETTINGS_MODULE="tests.bench.site_settings",
        BENCH_STATIC_ROOT=static_root,
        # What production requires from its environment. The SECRET_KEY is this
        # process's: the administrator's session made here (force_login) must verify there.
        SECRET_KEY=settings.SECRET_KEY,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        ILM_SECRET_KEYS=",".join(settings.ILM_SECRET_KEYS),
        # A throw-away audit key: the benchmark database is dropped after the run.
        ILM_AUDIT_KEY=secrets.token_urlsafe(32),
    )
    return env


def _collectstatic(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
    )


def _wait_ready(base: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/login/", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("gunicorn did not answer within a minute")


def _integration_for_load(ctx: Any) -> Any:
    """An integration with revisions that every demo user may see (grants for the others)."""
    from django.contrib.auth import get_user_model

    from integrations.models import AccessLevel, IntegrationAccess

    integration = ctx.load_integration
    if integration is None:
        from tests.bench.figures import _pull_with_changes

        integration, _, _ = _pull_with_changes(ctx, 50, seed=77)
    for username in ("developer", "monitor"):
        user = get_user_model().objects.filter(username=username).first()
        if user is not None:
            IntegrationAccess.objects.get_or_create(
                integration=integration, user=user, defaults={"level": AccessLevel.MONITOR}
            )
    return integration


def _sign_in(base: str) -> list[str]:
    """Sign each demo user in through the login page; their session ids."""
    import requests

    from tests.bench.figures import DEMO_USERS

    sessions = []
    for username, (password, _role) in DEMO_USERS.items():
        with requests.Session() as http:
            form = http.get(f"{base}/login/", timeout=60)
            response = http.post(
                f"{base}/login/",
                data={
                    "username": username,
                    "password": password,
                    "csrfmiddlewaretoken": http.cookies.get("csrftoken", ""),
                },
                headers={"Referer": form.url},
                allow_redirects=False,
                timeout=60,
            )
            if response.status_code != 302 or "sessionid" not in http.cookies:
                raise RuntimeError(f"sign-in as {username} answered {response.status_code}")
            sessions.append(http.cookies["sessionid"])
    return sessions


def _stats(path: Path) -> dict[str, dict[str, float]]:
    out = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            if row["95%"] == "N/A":  # no request of this kind completed
                continue
            out[row["Name"]] = {
                "rps": float(row["Requests/s"]),
                "p95": float(row["95%"]) / 1000,
                "count": float(row["Request Count"]),
                "failures": float(row["Failure Count"]),
            }
    return out


CEILING_CLIENTS = 8


def _hammer(url: str, cookie: str, seconds: float) -> dict[str, float]:
    import json

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.bench.hammer",
            url,
            "--cookie",
            cookie,
            "-c",
            str(CEILING_CLIENTS),
            "-t",
            str(seconds),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=seconds + 300,
    )
    return json.loads(done.stdout)


def _pages(ctx: Any, integration: Any) -> dict[str, str]:
    from django.urls import reverse

    from tests.bench.site_urls import TRIVIAL

    pages = {
        "trivial Django view (baseline)": TRIVIAL,
        "home page": "/",
        "Revisions tab": reverse("revisions:tab", args=[integration.pk]),
    }
    pages.update(ctx.pages)
    return pages


def _admin_cookie(ctx: Any) -> str:
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(ctx.admin)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def _ceiling(ctx: Any, base: str, pages: dict[str, str], cookie: str) -> None:
    seconds = max(5, ctx.load_seconds // 3)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in pages}
    for _ in range(ctx.runs):
        # Pages in turn within a run, so each ratio compares neighbours in time.
        for name, path in pages.items():
            _hammer(base + path, cookie, 2)  # warm: every worker has served it
            results[name].append(_hammer(base + path, cookie, seconds))
    trivial = results.pop("trivial Django view (baseline)")
    ctx.row("7", "ceiling: trivial Django view (baseline)", "req/s", [r["rps"] for r in trivial])
    goals = {"home page", "Revisions tab"}
    for name, runs in results.items():
        ctx.row("7", f"ceiling: {name}", "req/s", [r["rps"] for r in runs])
        ctx.row(
            "7",
            f"… {name} / trivial view",
            "×",
            [r["rps"] / t["rps"] for r, t in zip(runs, trivial, strict=True)],
            goal="≥ 0.3×" if name in goals else "",
            check=(lambda v: v >= 0.3) if name in goals else None,
        )
        ctx.row("7", f"… {name}: p50 at saturation", "s", [r["p50"] for r in runs])
    errors = sum(r["errors"] for runs in (*results.values(), trivial) for r in runs)
    if errors:
        ctx.notes.append(f"Fig 7: {errors:.0f} requests failed during the ceiling runs.")


def _profile_page(ctx: Any, row: Any, label: str, path: str) -> None:
    """A missed page goal: profile the page in this process (the same code and settings
    but the test client), a few requests in a row."""
    from django.test import Client

    from tests.bench.figures import explain_miss
    from tests.bench.measure import hot_spots

    if row.verdict != "MISS":
        return
    client = Client()
    client.force_login(ctx.admin)
    client.get(path)
    explain_miss(ctx, row, label, hot_spots(lambda: [client.get(path) for _ in range(10)]))


def fig7_load(ctx: Any) -> None:
    """the site's ceiling (requests/s at saturation vs a trivial view) and 20 users' p95"""
    import shutil

    from django.db import connections

    integration = _integration_for_load(ctx)
    pages = _pages(ctx, integration)
    cookie = _admin_cookie(ctx)
    connections.close_all()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    static_root = tempfile.mkdtemp(prefix="ilm-bench-static-")
    # A prefix of this run's own: the benchmark database is new, its primary keys and
    # versions are not, so nothing a previous run cached may answer this one.
    cache_prefix = f"ilm-bench-{os.getpid()}-{time.time_ns()}"
    env = _server_env(ctx.url, static_root, cache_prefix)
    _collectstatic(env)
    server = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "ilm_site.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(WORKERS),
            "--preload",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    runs: list[dict[str, dict[str, float]]] = []
    try:
        _wait_ready(base, server)
        for _ in range(4 * WORKERS):  # every worker has served a page before measuring
            urllib.request.urlopen(f"{base}/login/", timeout=30).close()
        _ceiling(ctx, base, pages, cookie)
        sessions = _sign_in(base)
        for run in range(ctx.runs):
            with tempfile.TemporaryDirectory() as tmp:
                prefix = Path(tmp) / f"run{run}"
                done = subprocess.run(
                    [
                        str(BIN / "locust"),
                        "-f",
                        str(ROOT / "tests" / "bench" / "locustfile.py"),
                        "--headless",
                        "-u",
                        str(USERS),
                        "-r",
                        str(SPAWN_RATE),
                        "-t",
                        f"{ctx.load_seconds}s",
                        "--host",
                        base,
                        "--csv",
                        str(prefix),
                        "--only-summary",
                        "--loglevel",
                        "WARNING",
                    ],
                    cwd=ROOT,
                    env={
                        **env,
                        "BENCH_INTEGRATION": str(integration.pk),
                        "BENCH_SESSIONS": ",".join(sessions),
                    },
                    check=False,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                    timeout=ctx.load_seconds + 120,
                )
                stats = Path(f"{prefix}_stats.csv")
                if not stats.exists():
                    raise RuntimeError(f"locust wrote no statistics: {done.stderr[-2000:]!r}")
                runs.append(_stats(stats))
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(static_root, ignore_errors=True)
        _forget_cached(cache_prefix)
    ctx.method.append(
        f"Fig 7: gunicorn ({WORKERS} sync workers, --preload) on 127.0.0.1 with the benchmark"
        " database (PostgreSQL), Redis as its cache (as the deployment docs require under"
        " gunicorn; sessions cached_db) and the production settings"
        " (tests/bench/site_settings.py: DEBUG off, cached templates, collected hashed"
        " static files; plain HTTP on"
        " loopback, so no HTTPS redirect or Secure cookies). Ceiling: each page in turn"
        f" loaded by {CEILING_CLIENTS} closed-loop clients (tests/bench/hammer.py, one"
        f" process, a new connection per request) for {max(5, ctx.load_seconds // 3)} s"
        " after 2 s of warm-up, signed in as an administrator; its requests/s divided by"
        " the trivial Django view's (tests/bench/site_urls.py: same gunicorn, middleware and"
        " URL resolver, no session, database or template) measured in the same run. The"
        " clients share the 2 cores with gunicorn and PostgreSQL, so the trivial view's"
        " rate is this box's limit, not Django's. 20 users: locust --headless"
        f" -u {USERS} -r {SPAWN_RATE} -t {ctx.load_seconds}s; the four demo users sign in"
        " through the login page first (not timed); the 20 simulated users share their"
        " sessions and open the home page or the Revisions tab of the typical integration"
        " of fig 5 with 0.5–1.5 s think time; p95 is the latency they see."
    )
    failures = sum(r.get(name, {}).get("failures", 0) for r in runs for name in r)
    for name, label in (("home page", "home page"), ("revisions tab", "Revisions tab")):
        ctx.row(
            "7",
            f"20 users: {label}: requests/s",
            "req/s",
            [r[name]["rps"] for r in runs if name in r],
        )
        p95 = ctx.row(
            "7",
            f"20 users: {label}: p95",
            "s",
            [r[name]["p95"] for r in runs if name in r],
            goal="≤ 150 ms",
            check=lambda v: v <= 0.150,
        )
        _profile_page(ctx, p95, f"fig7-{name.replace(' ', '-')}", pages[label])
    for row in ctx.rows:
        if row.figure == "7" and row.goal == "≥ 0.3×":
            name = row.measure.removeprefix("… ").removesuffix(" / trivial view")
            _profile_page(ctx, row, f"fig7-ceiling-{name.replace(' ', '-')}", pages[name])
    if failures:
        ctx.notes.append(f"Fig 7: {failures:.0f} failed requests under load (see locust).")
