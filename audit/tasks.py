"""Celery tasks of the audit log: thin, safe to deliver twice (one more checkpoint)."""

from __future__ import annotations

from celery import shared_task

from . import checkpoints


@shared_task(acks_late=True, name="audit.tasks.audit_checkpoint")
def audit_checkpoint() -> int:
    """Write down the chain's head outside the database (the `audit-checkpoint` beat entry)."""
    return checkpoints.checkpoint_record(checkpoints.checkpoint_take()).count
