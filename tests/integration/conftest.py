"""Real services for the integration tests: PostgreSQL, Redis and Celery worker processes.

A worker is a subprocess (`celery -A ilm_site worker --pool=solo`) started against the very
test database pytest-django created, so tests here use
`@pytest.mark.django_db(transaction=True)`: the worker only sees committed rows. The test
process itself stops running tasks eagerly (the test settings do) for the length of a
test that asks for a worker, so what a service enqueues on commit goes to Redis and the
worker runs it.

Without PostgreSQL (`DATABASE_URL`) or a reachable Redis (`CELERY_BROKER_URL`) every test
here is skipped with the reason; `make test` and CI always have both.

`tests/integration/worker_hooks.py` is imported by every worker (`--include`): it reports
readiness through a file and, when asked through the environment, pauses a worker inside
the merge's transaction so a test can kill it there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.integration.workers import Worker

REPO = Path(__file__).resolve().parents[2]
WORKER_START_SECONDS = 60.0


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def _broker_url() -> str:
    return os.environ.get("CELERY_BROKER_URL", "")


def _redis_reachable(url: str) -> str | None:
    """None when Redis answers at `url`, else why not."""
    if not url.startswith(("redis://", "rediss://")):
        return "CELERY_BROKER_URL is not a Redis URL (set e.g. redis://127.0.0.1:6379/4)"
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping()
    except redis.RedisError as exc:
        return f"Redis at {url} is unreachable: {exc}"
    return None


@pytest.fixture(scope="session")
def real_services(django_db_setup, django_db_blocker) -> dict[str, str]:
    """Check PostgreSQL and Redis once; the worker's environment for the test database."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip(
            "integration tests need PostgreSQL: set DATABASE_URL=postgres://… "
            "(make test does); SQLite runs everything eagerly instead"
        )
    broker = _broker_url()
    why = _redis_reachable(broker) if broker else "CELERY_BROKER_URL is not set"
    if why:
        pytest.skip(f"integration tests need Redis and a real worker: {why}")
    db = connection.settings_dict
    auth = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or "5432"
    # The worker must use the test database pytest-django created, not the configured one.
    database_url = f"postgres://{auth}@{host}:{port}/{quote(db['NAME'], safe='')}"
    return {"DATABASE_URL": database_url, "CELERY_BROKER_URL": broker}


def _clear_broker(url: str) -> None:
    """Drop messages a crashed earlier run left behind (this Redis db is the tests' own)."""
    import redis

    redis.Redis.from_url(url).delete("celery", "unacked", "unacked_index", "unacked_mutex")


@pytest.fixture
def not_eager(settings):
    """Send tasks to the broker instead of running them in the test process."""
    from ilm_site.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    # The Celery app read the settings once already; its own copy is what counts.
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def start_worker(real_services, not_eager, tmp_path_factory) -> Iterator[Callable[..., Worker]]:
    """Start a real Celery worker: `start_worker(**extra_env)`; all are stopped afterwards."""
    _clear_broker(real_services["CELERY_BROKER_URL"])
    workers: list[Worker] = []
    logs = tmp_path_factory.mktemp("celery-workers")

    def start(**extra_env: str) -> Worker:
        name = f"ilm-test-{uuid.uuid4().hex[:8]}"
        ready = logs / f"{name}.ready"
        log_path = logs / f"{name}.log"
        env = {
            **os.environ,
            **real_services,
            "DJANGO_SETTINGS_MODULE": "ilm_site.settings.base",
            "DEBUG": "false",
            "PYTHONUNBUFFERED": "1",
            "ILM_TEST_WORKER_READY_FILE": str(ready),
            **extra_env,
        }
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "ilm_site",
                    "worker",
                    "--pool=solo",
                    "--concurrency=1",
                    "-Q",
                    "celery",
                    "--without-heartbeat",
                    "--without-gossip",
                    "--without-mingle",
                    "--include=tests.integration.worker_hooks",
                    "-n",
                    f"{name}@%h",
                    "-l",
                    "warning",
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(name=name, process=process, log_path=log_path, extra_env=extra_env)
        workers.append(worker)
        deadline = time.monotonic() + WORKER_START_SECONDS
        while not ready.exists():
            if not worker.alive():
                pytest.fail(f"The Celery worker exited at start:\n{worker.log_tail()}")
            if time.monotonic() > deadline:
                worker.kill()
                pytest.fail(f"The Celery worker was not ready in time:\n{worker.log_tail()}")
            time.sleep(0.1)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def celery_worker(start_worker) -> Worker:
    """One plain worker for the length of the test."""
    return start_worker()
