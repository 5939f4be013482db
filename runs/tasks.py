"""Celery tasks of the runtime: thin, each taking an id, safe to deliver twice.

`run_flow` acknowledges late: a worker killed mid-run leaves the message to be delivered
again, and `run_execute` then finds the run `running` and marks it failed as interrupted
instead of sending its records a second time (a final run is left as it is).
"""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from . import errors, services


@shared_task(acks_late=True, name="runs.tasks.run_flow")
def run_flow(run_id: int) -> str:
    return services.run_execute(run_id=run_id).status


@shared_task(name="runs.tasks.runs_tick")
def runs_tick() -> int:
    """Beat, every minute: start the scheduled runs that are due."""
    return len(services.schedule_due(timezone.now()))


@shared_task(name="runs.tasks.runs_prune_old")
def runs_prune_old() -> int:
    """Beat, daily: drop runs older than ILM_RUN_RETENTION_DAYS."""
    cutoff = timezone.now() - timedelta(days=settings.ILM_RUN_RETENTION_DAYS)
    return services.runs_prune(older_than=cutoff)


@shared_task(acks_late=True, name="runs.tasks.behaviour_check_run")
def behaviour_check_run(check_id: int) -> str:
    """Compute a pull's behaviour check; a redelivery redoes it whole (it sends nothing)."""
    from .behaviour_checks import behaviour_check_execute

    check = behaviour_check_execute(check_id=check_id)
    return check.status if check is not None else "gone"


@shared_task(acks_late=True, name="runs.tasks.retry_errors")
def retry_errors(retry_id: int) -> str:
    return errors.errors_retry_execute(retry_id=retry_id).status


@shared_task(name="runs.tasks.errors_prune_retry_data")
def errors_prune_retry_data() -> int:
    """Beat, daily: keep retry data for the most recent errors of each step only."""
    return errors.errors_prune_retry_data()


@shared_task(name="runs.tasks.alerts_evaluate")
def alerts_evaluate(integration_id: int | None = None, flow_lineage_id: str | None = None) -> dict:
    """Beat, every minute: evaluate every alert rule; after a live run ends: the rules of
    its integration that watch its flow. Safe twice: a rule fires and resolves once."""
    from . import alerts

    return alerts.alerts_evaluate(integration_id=integration_id, flow_lineage_id=flow_lineage_id)
