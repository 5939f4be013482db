"""Worker processes and polling for the integration tests (the fixtures are in conftest)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# A generous guard against hangs, not a timed assertion: a loaded 2-core CI machine is slow.
WAIT_SECONDS = float(os.environ.get("ILM_TEST_WAIT_SECONDS", "120"))


@dataclass
class Worker:
    """One worker subprocess; its output goes to a log file shown when a test fails."""

    name: str
    process: subprocess.Popen
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no worker log)"
        return "\n".join(text.splitlines()[-lines:]) or "(worker log is empty)"

    def kill(self) -> None:
        """SIGKILL: no warm shutdown, no acknowledgement, no clean-up of any kind."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, *, warm: bool = True) -> None:
        """Warm shutdown finishes and acknowledges the task at hand (SIGTERM); cold
        (SIGQUIT) stops at once. Either way SIGKILL if it lingers."""
        if not self.alive():
            return
        self.process.send_signal(signal.SIGTERM if warm else signal.SIGQUIT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()


def _logs(workers: Sequence[Worker]) -> str:
    return "\n\n".join(f"--- worker {w.name} ---\n{w.log_tail()}" for w in workers)


def wait_for(
    predicate: Callable[[], object],
    *,
    what: str,
    workers: Sequence[Worker] = (),
    timeout: float = WAIT_SECONDS,
):
    """Poll until `predicate()` is truthy and return it; fail with the workers' logs if never."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if workers and not any(w.alive() for w in workers):
            pytest.fail(f"Every worker exited while waiting for {what}.\n{_logs(workers)}")
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout:.0f} s waiting for {what}.\n{_logs(workers)}")
        time.sleep(0.2)


def wait_for_status(revision, *statuses: str, workers: Sequence[Worker] = ()):
    """Poll a revision until its status is one of `statuses`; a different final status fails."""
    from revisions.models import FINAL_STATUSES, Revision

    wanted = set(statuses)

    def reached():
        current = Revision.objects.get(pk=revision.pk)
        if current.status in wanted:
            return current
        if current.status in FINAL_STATUSES:
            pytest.fail(
                f"Revision #{current.number} ({current.type}) ended {current.status}, not "
                f"{'/'.join(sorted(wanted))}: {current.error or 'no error text'}\n"
                f"{_logs(workers)}"
            )
        return None

    return wait_for(
        reached,
        what=f"revision #{revision.number} ({revision.type}) to become {'/'.join(sorted(wanted))}",
        workers=workers,
    )


@contextmanager
def run_tasks_here() -> Iterator[None]:
    """Run what is enqueued inside the block in this process (set-up that is not under test)."""
    from ilm_site.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = previous
