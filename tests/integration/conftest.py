"""Real services for the integration tests: PostgreSQL, Redis and Celery worker processes.

A worker is a subprocess (`celery -A ilm_site worker --pool=solo`) started against the very
test database pytest-django created. `celery_worker` is one plain worker shared by the tests
here (a start costs seconds); `start_worker` stops it and starts the test's own
workers (with extra environment, e.g. a short visibility timeout). Tests here use
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
    # "tests/integration/", with the slash: tests/integrations/ is another directory.
    here = [i for i, item in enumerate(items) if "tests/integration/" in str(item.fspath)]
    for i in here:
        items[i].add_marker(pytest.mark.integration)
        # Under pytest-xdist (`--dist loadgroup`) these all run in one pytest worker: two
        # Celery workers on the same Redis queue would take each other's tasks.
        items[i].add_marker(pytest.mark.xdist_group("celery-worker"))
    # Tests with workers of their own last: each stops the shared worker, so the shared
    # one starts once rather than again after each of them.
    ordered = sorted((items[i] for i in here), key=lambda item: "start_worker" in item.fixturenames)
    for i, item in zip(here, ordered, strict=True):
        items[i] = item


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


@pytest.fixture
def not_eager(settings):
    """Send tasks to the broker instead of running them in the test process."""
    from ilm_site.celery import app

    # Read the app's own copy before touching the settings: when no earlier test in this
    # process used Celery, the app reads Django's settings lazily right here, and would
    # otherwise take (and later "restore") False for every test after this one.
    previous = app.conf.task_always_eager
    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.task_always_eager = False
    yield
    app.conf.task_always_eager = previous


class WorkerPool:
    """Starts worker subprocesses; keeps one plain worker shared by the tests that need one."""

    def __init__(self, services: dict[str, str], logs: Path) -> None:
        self.services = services
        self.logs = logs
        self.shared_worker: Worker | None = None

    def start(self, **extra_env: str) -> Worker:
        name = f"ilm-test-{uuid.uuid4().hex[:8]}"
        ready = self.logs / f"{name}.ready"
        log_path = self.logs / f"{name}.log"
        env = {
            **os.environ,
            **self.services,
            # Not the test settings: those run every task eagerly, inside the worker too.
            "DJANGO_SETTINGS_MODULE": "ilm_site.settings.base",
            "DEBUG": "false",
            "PYTHONUNBUFFERED": "1",
            "ILM_TEST_WORKER_READY_FILE": str(ready),
            **extra_env,
        }
        command = [
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
        ]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(name=name, process=process, log_path=log_path, extra_env=extra_env)
        deadline = time.monotonic() + WORKER_START_SECONDS
        while not ready.exists():
            if not worker.alive():
                pytest.fail(f"The Celery worker exited at start:\n{worker.log_tail()}")
            if time.monotonic() > deadline:
                worker.kill()
                pytest.fail(f"The Celery worker was not ready in time:\n{worker.log_tail()}")
            time.sleep(0.1)
        return worker

    def clear_broker(self) -> None:
        """Drop messages an earlier test or run left behind (this Redis db is the tests')."""
        import redis

        redis.Redis.from_url(self.services["CELERY_BROKER_URL"]).delete(
            "celery", "unacked", "unacked_index", "unacked_mutex"
        )

    def shared(self) -> Worker:
        if self.shared_worker is None or not self.shared_worker.alive():
            self.clear_broker()
            self.shared_worker = self.start()
        return self.shared_worker

    def stop_shared(self) -> None:
        if self.shared_worker is not None:
            self.shared_worker.stop(warm=False)
            self.shared_worker = None


# Package scope: the shared worker stops when the integration tests are done, not at the
# end of the whole suite.
@pytest.fixture(scope="package")
def worker_pool(real_services, tmp_path_factory) -> Iterator[WorkerPool]:
    pool = WorkerPool(real_services, tmp_path_factory.mktemp("celery-workers"))
    yield pool
    pool.stop_shared()


@pytest.fixture
def celery_worker(worker_pool, not_eager) -> Worker:
    """A plain worker (shared between tests: starting one costs seconds)."""
    return worker_pool.shared()


@pytest.fixture
def start_worker(worker_pool, not_eager) -> Iterator[Callable[..., Worker]]:
    """`start_worker(**extra_env)`: workers of this test alone; no shared one runs beside them.

    They are stopped when the test ends.
    """
    worker_pool.stop_shared()
    worker_pool.clear_broker()
    started: list[Worker] = []

    def start(**extra_env: str) -> Worker:
        worker = worker_pool.start(**extra_env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop(warm=False)
