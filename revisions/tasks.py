"""Celery tasks of the revision engine: thin, idempotent, each taking a revision id.

Every task loads the revision and hands it to `services.run_operation`, which runs the
operation in one transaction as the user behind it (audit source `ilm`) and records a
failure on the row. A task delivered twice (a worker died before acknowledging it) finds
the revision final and does nothing, or finds it still open and does the work whole: an
interrupted run committed nothing.
"""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(acks_late=True, name="revisions.tasks.clone_run")
def clone_run(revision_id: int) -> str | None:
    revision = services.run_operation(revision_id, "clone")
    return revision.status if revision else None


@shared_task(acks_late=True, name="revisions.tasks.pull_compute")
def pull_compute(revision_id: int) -> str | None:
    revision = services.run_operation(revision_id, "pull")
    return revision.status if revision else None


@shared_task(acks_late=True, name="revisions.tasks.merge_run")
def merge_run(revision_id: int, user_id: int | None = None) -> str | None:
    revision = services.run_operation(revision_id, "merge", user_id=user_id)
    return revision.status if revision else None


@shared_task(acks_late=True, name="revisions.tasks.revert_run")
def revert_run(revision_id: int) -> str | None:
    revision = services.run_operation(revision_id, "revert")
    return revision.status if revision else None


@shared_task(acks_late=True, name="revisions.tasks.scheduled_snapshots")
def scheduled_snapshots() -> int:
    """Beat task: snapshot integrations whose schedule is due and that changed since."""
    return len(services.scheduled_snapshots_run())
