"""Figure 7: the Revisions tab and the home page under a bounded load.

gunicorn serves the site from the benchmark database on 127.0.0.1 (a free port), locust
runs headless (`-u 20 -r 5 -t 30s`) with tests/bench/locustfile.py, and its CSV gives
requests/s and the 95th percentile per page. Both processes are started and stopped here.
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CELERY_BROKER_URL"}
    env.update(
        DATABASE_URL=url,
        DJANGO_SETTINGS_MODULE="ilm_site.settings.local",
        DEBUG="false",
    )
    return env


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


def fig7_load(ctx: Any) -> None:
    """home page and Revisions tab under load: locust -u 20 -r 5 against gunicorn"""
    from django.db import connections

    integration = _integration_for_load(ctx)
    connections.close_all()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = _server_env(ctx.url)
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
    ctx.method.append(
        f"Fig 7: gunicorn ({WORKERS} sync workers) on 127.0.0.1 with the benchmark database"
        f" (PostgreSQL), locust --headless -u {USERS} -r {SPAWN_RATE} -t {ctx.load_seconds}s"
        " on the same machine. The four demo users sign in through the login page first (not"
        " timed: password hashing is slow by design); the 20 simulated users share their"
        " sessions and open the home page or the Revisions tab of the typical integration of"
        " fig 5 (its pull revisions) with 0.5–1.5 s think time. Request rates are what 20"
        " such users produce, not the server's ceiling; p95 is the latency they see."
    )
    failures = sum(r.get(name, {}).get("failures", 0) for r in runs for name in r)
    for name, label in (("home page", "home page"), ("revisions tab", "Revisions tab")):
        ctx.row("7", f"{label}: requests/s", "req/s", [r[name]["rps"] for r in runs if name in r])
        ctx.row("7", f"{label}: p95", "s", [r[name]["p95"] for r in runs if name in r])
    if failures:
        ctx.notes.append(f"Fig 7: {failures:.0f} failed requests under load (see locust).")
