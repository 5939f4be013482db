"""Alert evaluations at the same moment, from threads on PostgreSQL (each thread its own
connection): the beat and the evaluations after runs may overlap, and a rule still fires
once, with one notification per manager. A rule another worker holds is skipped, not
waited for, and is evaluated by the next pass."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from runs import alerts
from runs.models import AlertEvent, AlertKind, AlertRule, AlertState, Notification
from tests.factories import FlowFactory
from tests.integration.test_concurrency import _at_once
from tests.runs.monitoring_data import make_run

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def failing_rule(integration, developer):
    flow = FlowFactory(integration=integration, name="Orders")
    now = timezone.now()
    for minutes in (3, 2):
        make_run(
            integration,
            flow.lineage_id,
            created_at=now - timedelta(minutes=minutes),
            status="failed",
        )
    return alerts.alert_rule_create(
        integration=integration,
        user=None,
        data={
            "kind": AlertKind.FAILED_IN_A_ROW,
            "runs": 3,
            "flow_lineage_id": str(flow.lineage_id),
        },
    ), flow


def test_concurrent_evaluations_fire_a_rule_once(integration, developer, failing_rule):
    rule, flow = failing_rule
    make_run(
        integration,
        flow.lineage_id,
        created_at=timezone.now() - timedelta(minutes=1),
        status="failed",
    )
    outcomes = _at_once([lambda: alerts.alerts_evaluate(integration_id=integration.pk)] * 4)
    assert [error for _, error in outcomes] == [None] * 4
    assert sum(result["fired"] for result, _ in outcomes) == 1
    assert AlertEvent.objects.filter(rule=rule).count() == 1
    assert Notification.objects.filter(recipient=developer, kind="alert_fired").count() == 1


def test_a_rule_held_by_another_worker_is_skipped_and_caught_next_pass(integration, failing_rule):
    rule, flow = failing_rule
    make_run(
        integration,
        flow.lineage_id,
        created_at=timezone.now() - timedelta(minutes=1),
        status="failed",
    )
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                AlertRule.objects.select_for_update().get(pk=rule.pk)
                held.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(timeout=30)
    try:
        counts = alerts.alerts_evaluate(integration_id=integration.pk)
    finally:
        release.set()
        holder.join(timeout=30)
    assert counts["skipped"] == 1 and counts["fired"] == 0
    assert AlertRule.objects.get(pk=rule.pk).state == AlertState.OK
    assert alerts.alerts_evaluate()["fired"] == 1
