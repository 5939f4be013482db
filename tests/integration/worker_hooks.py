"""Imported by every test worker (`celery worker --include=tests.integration.worker_hooks`).

- `ILM_TEST_WORKER_READY_FILE`: the worker creates this file once it consumes tasks, so a
  test starts work only when a worker is listening.
- `ILM_TEST_PAUSE_IN_APPLY`: a file path. On the first save or delete of a tracked
  resource (only a merge or revert writes resources in a worker that a test starts after
  the clone), the worker writes its pid there and waits, inside the merge's transaction
  with part of the changes written, until the test kills it or creates `<path>.resume`.
  This makes a kill land mid-merge every time without depending on timing.
- `ILM_TEST_RESTORE_EVERY_SECOND`: look for unacknowledged messages older than the
  visibility timeout every second (Redis transport default: every 100 s, and once at start),
  so a redelivery test need not time the start of its worker.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from celery.signals import worker_ready
from django.db.models.signals import post_delete, post_save

_READY = os.environ.get("ILM_TEST_WORKER_READY_FILE")
_PAUSE = os.environ.get("ILM_TEST_PAUSE_IN_APPLY")
_PAUSE_SECONDS = 600
_paused = False


@worker_ready.connect
def _announce_ready(**kwargs) -> None:
    if _READY:
        Path(_READY).write_text(str(os.getpid()))


def _pause_once(sender, instance, **kwargs) -> None:
    global _paused
    from integrations.resources import TYPE_BY_MODEL

    if _paused or sender not in TYPE_BY_MODEL:
        return
    _paused = True
    # Written whole, then renamed: the test reads it as soon as it exists.
    partial = Path(f"{_PAUSE}.partial")
    partial.write_text(f"{os.getpid()} {sender.__name__} {instance.pk}")
    partial.replace(_PAUSE)
    resume = Path(f"{_PAUSE}.resume")
    deadline = time.monotonic() + _PAUSE_SECONDS
    while not resume.exists() and time.monotonic() < deadline:
        time.sleep(0.1)


if os.environ.get("ILM_TEST_RESTORE_EVERY_SECOND"):
    from ilm_site.celery import app

    app.conf.broker_transport_options = {
        **(app.conf.broker_transport_options or {}),
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }

if _PAUSE:
    post_save.connect(_pause_once, dispatch_uid="ilm-test-pause-save")
    post_delete.connect(_pause_once, dispatch_uid="ilm-test-pause-delete")
