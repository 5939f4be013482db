"""Alert rules: each kind judged on real run and rollup data, the state machine (fires
once, resolves once, muted stays quiet, notified when a mute ends if still firing, no
burst for a firing already told), mail to the managers only after commit, audit rows,
bad input saving nothing, and the evaluation after a run ends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.models import Event
from integrations.models import AccessLevel, Role
from runs import alerts
from runs.models import (
    AlertEvent,
    AlertKind,
    AlertRule,
    AlertState,
    Notification,
    NotificationKind,
)
from runs.services import run_execute, run_start
from tests.factories import FlowFactory, GrantFactory, IntegrationFactory, UserFactory
from tests.runs.conftest import build_flow
from tests.runs.monitoring_data import make_run

NOW = datetime(2026, 12, 3, 12, 30, tzinfo=UTC)


@pytest.fixture
def orders(sandbox):
    return FlowFactory(integration=sandbox, name="Orders")


@pytest.fixture
def managers(sandbox, developer, admin_user):
    developer.email = "dev@example.com"
    developer.save()
    admin_user.email = "ada@example.com"
    admin_user.save()
    return {developer, admin_user}


def _rule(integration, user=None, *, flow=None, **data):
    data.setdefault("flow_lineage_id", str(flow.lineage_id) if flow else "")
    return alerts.alert_rule_create(integration=integration, user=user, data=data)


def _runs(integration, flow, statuses, *, start=None, step=timedelta(minutes=1)):
    start = start or NOW - timedelta(minutes=len(statuses) + 1)
    for i, status in enumerate(statuses):
        make_run(
            integration,
            flow.lineage_id,
            created_at=start + i * step,
            status=status,
            flow_name=flow.name,
        )


def _evaluate(rule, now=NOW):
    return alerts.alerts_evaluate(integration_id=rule.integration_id, now=now)


def _alert_notes(kind=None):
    qs = Notification.objects.filter(
        kind__in=[NotificationKind.ALERT_FIRED, NotificationKind.ALERT_RESOLVED]
    )
    return qs.filter(kind=kind) if kind else qs


def _audit(action):
    return Event.objects.filter(resource_type="alert", action=action)


# The kinds, on real data -------------------------------------------------------------


def test_failed_in_a_row_holds_only_when_the_last_n_runs_all_failed(sandbox, orders):
    rule = _rule(sandbox, kind=AlertKind.FAILED_IN_A_ROW, runs=3, flow=orders)
    _runs(sandbox, orders, ["failed", "succeeded", "failed", "failed"])
    result = alerts.check(rule, NOW)
    assert not result.holds and result.reason == "the last 2 run(s) failed"
    _runs(sandbox, orders, ["failed"], start=NOW - timedelta(seconds=30))
    assert alerts.check(rule, NOW).holds


def test_canceled_and_test_runs_do_not_break_a_failure_streak(sandbox, orders):
    rule = _rule(sandbox, kind=AlertKind.FAILED_IN_A_ROW, runs=2, flow=orders)
    _runs(sandbox, orders, ["failed", "canceled", "failed"])
    make_run(sandbox, orders.lineage_id, created_at=NOW - timedelta(seconds=5), mode="test")
    assert alerts.check(rule, NOW).holds


def test_success_rate_is_judged_over_exactly_the_last_n_runs(sandbox, orders):
    rule = _rule(sandbox, kind=AlertKind.SUCCESS_RATE, threshold=80, runs=4, flow=orders)
    _runs(sandbox, orders, ["succeeded", "failed", "succeeded"])
    early = alerts.check(rule, NOW)
    assert not early.holds and early.reason == "only 3 of 4 runs so far"
    _runs(sandbox, orders, ["succeeded"], start=NOW - timedelta(seconds=30))
    result = alerts.check(rule, NOW)  # 3 of 4 = 75 % < 80 %
    assert result.holds and result.reason == "75.0 % of the last 4 runs succeeded"
    _runs(sandbox, orders, ["succeeded"], start=NOW - timedelta(seconds=20))
    assert alerts.check(rule, NOW).holds  # the first success fell out: still 75 %
    _runs(sandbox, orders, ["succeeded"], start=NOW - timedelta(seconds=10))
    assert not alerts.check(rule, NOW).holds  # and now the failure: 100 %


def test_partial_runs_count_against_the_success_rate(sandbox, orders):
    rule = _rule(sandbox, kind=AlertKind.SUCCESS_RATE, threshold=100, runs=2, flow=orders)
    _runs(sandbox, orders, ["succeeded", "partial"])
    assert alerts.check(rule, NOW).holds


def test_slow_p95_reads_the_last_hours_merged_histograms(sandbox, orders):
    rule = _rule(sandbox, kind=AlertKind.SLOW_P95, threshold=1000, flow=orders)
    connection = uuid.uuid4()
    slow = [0] * 17 + [10]  # ten calls in the 2000–3000 ms bucket
    fast = [0] * 5 + [100]  # a hundred calls at 8–13 ms
    # Slow calls two hours ago are outside the window.
    make_run(
        sandbox,
        orders.lineage_id,
        created_at=NOW - timedelta(hours=2),
        steps=[(connection, slow)],
    )
    assert alerts.check(rule, NOW).reason == "no calls in the last hour"
    make_run(
        sandbox,
        orders.lineage_id,
        created_at=NOW - timedelta(minutes=10),
        steps=[(connection, fast)],
    )
    quick = alerts.check(rule, NOW)
    assert not quick.holds and quick.reason.startswith("p95 13 ms over 100 call(s)")
    make_run(
        sandbox,
        orders.lineage_id,
        created_at=NOW - timedelta(minutes=5),
        steps=[(connection, slow * 1)],
    )
    make_run(
        sandbox,
        orders.lineage_id,
        created_at=NOW - timedelta(minutes=4),
        steps=[(connection, slow)],
    )
    result = alerts.check(rule, NOW)  # 20 of 120 calls are slow: p95 is in their bucket
    assert result.holds
    assert "over 120 call(s)" in result.reason


def test_no_success_for_h_hours_from_the_last_successful_run(sandbox, orders):
    rule = _rule(sandbox, kind=AlertKind.NO_SUCCESS, hours=4, flow=orders)
    make_run(sandbox, orders.lineage_id, created_at=NOW - timedelta(hours=5), status="succeeded")
    _runs(sandbox, orders, ["failed"] * 3)
    result = alerts.check(rule, NOW)
    assert result.holds and result.reason.startswith("last successful run 5 h ago")
    rule.hours = 6
    assert not alerts.check(rule, NOW).holds


def test_no_success_counts_from_the_rules_creation_when_the_flow_never_succeeded(sandbox, orders):
    rule = _rule(sandbox, kind=AlertKind.NO_SUCCESS, hours=2, flow=orders)
    _runs(sandbox, orders, ["failed"])
    assert not alerts.check(rule, rule.created_at + timedelta(hours=1)).holds
    assert alerts.check(rule, rule.created_at + timedelta(hours=2, minutes=1)).holds


def test_a_flow_rule_ignores_other_flows_and_an_integration_rule_sees_them_all(sandbox, orders):
    invoices = FlowFactory(integration=sandbox, name="Invoices")
    flow_rule = _rule(sandbox, kind=AlertKind.FAILED_IN_A_ROW, runs=2, flow=orders)
    wide_rule = _rule(sandbox, kind=AlertKind.FAILED_IN_A_ROW, runs=2)
    _runs(sandbox, orders, ["failed"], start=NOW - timedelta(minutes=3))
    _runs(sandbox, invoices, ["failed"], start=NOW - timedelta(minutes=2))
    assert not alerts.check(flow_rule, NOW).holds
    assert alerts.check(wide_rule, NOW).holds
    assert alerts.describe(wide_rule) == "Any flow: 2 failed runs in a row"


# The state machine -------------------------------------------------------------------


def test_a_rule_fires_once_and_resolves_once(sandbox, orders, managers):
    rule = _rule(sandbox, kind=AlertKind.FAILED_IN_A_ROW, runs=2, flow=orders)
    _runs(sandbox, orders, ["failed", "failed"])
    assert _evaluate(rule)["fired"] == 1
    for later in (1, 2, 3):  # still failing: nothing more
        counts = _evaluate(rule, NOW + timedelta(minutes=later))
        assert counts["fired"] == counts["notified"] == 0
    rule.refresh_from_db()
    assert rule.state == AlertState.FIRING and rule.fired_at == NOW and rule.notified
    fired = _alert_notes(NotificationKind.ALERT_FIRED)
    assert {n.recipient for n in fired} == managers
    assert fired.first().url == f"/integrations/{sandbox.pk}/alerts/#alert-{rule.pk}"

    _runs(sandbox, orders, ["succeeded"], start=NOW + timedelta(minutes=4))
    assert _evaluate(rule, NOW + timedelta(minutes=5))["resolved"] == 1
    assert _evaluate(rule, NOW + timedelta(minutes=6))["resolved"] == 0
    rule.refresh_from_db()
    assert rule.state == AlertState.OK and rule.resolved_at == NOW + timedelta(minutes=5)
    assert {n.recipient for n in _alert_notes(NotificationKind.ALERT_RESOLVED)} == managers
    assert _alert_notes().count() == 2 * len(managers)
    assert list(rule.events.values_list("kind", flat=True)) == ["resolved", "fired"]
    assert _audit("alert_fired").count() == 1 and _audit("alert_resolved").count() == 1
    fired_event = _audit("alert_fired").get()
    assert fired_event.username == "" and fired_event.source == "system"
    assert {"field": "state", "old": "ok", "new": "firing"} in fired_event.changes


def test_a_muted_rule_follows_its_condition_but_tells_nobody(sandbox, orders, managers):
    rule = _rule(sandbox, kind=AlertKind.FAILED_IN_A_ROW, runs=1, flow=orders)
    alerts.alert_rule_mute(
        rule=rule, user=None, until=NOW + timedelta(hours=1), now=NOW - timedelta(minutes=1)
    )
    _runs(sandbox, orders, ["failed"])
    counts = _evaluate(rule)
    assert counts["fired"] == 1 and counts["notified"] == 0
    rule.refresh_from_db()
    assert rule.state == AlertState.FIRING and not rule.notified
    assert rule.events.get().muted
    assert _audit("alert_fired").count() == 1  # the audit always knows
    assert not _alert_notes().exists()
    assert _evaluate(rule, NOW + timedelta(minutes=30))["notified"] == 0


def test_a_rule_that_fired_while_muted_is_told_once_when_the_mute_ends(sandbox, orders, managers):
    rule = _rule(sandbox, kind=AlertKind.FAILED_IN_A_ROW, runs=1, flow=orders)
    alerts.alert_rule_mute(
        rule=rule, user=None, until=NOW + timedelta(hours=1), now=NOW - timedelta(minutes=1)
    )
    _runs(sandbox, orders, ["failed"])
    _evaluate(rule)
    after = NOW + timedelta(hours=1, minutes=1)
    counts = _evaluate(rule, after)
    assert counts == {"evaluated": 1, "fired": 0, "resolved": 0, "notified": 1, "skipped": 0}
    assert _evaluate(rule, after + timedelta(minutes=1))["notified"] == 0
    assert _alert_notes(NotificationKind.ALERT_FIRED).count() == len(managers)
    assert rule.events.count() == 1  # told late, fired once


def test_a_rule_told_before_its_mute_is_not_told_again_when_the_mute_ends(
    sandbox, orders, managers
):
    rule = _rule(sandbox, kind=AlertKind.FAILED_IN_A_ROW, runs=1, flow=orders)
    _runs(sandbox, orders, ["failed"])
    _evaluate(rule)
    alerts.alert_rule_mute(rule=rule, user=None, until=NOW + timedelta(hours=1), now=NOW)
    assert _evaluate(rule, NOW + timedelta(hours=2))["notified"] == 0
    assert _alert_notes().count() == len(managers)


def test_a_rule_that_resolves_while_muted_sends_no_resolved_notice(sandbox, orders, managers):
    rule = _rule(sandbox, kind=AlertKind.FAILED_IN_A_ROW, runs=1, flow=orders)
    _runs(sandbox, orders, ["failed"])
    _evaluate(rule)
    alerts.alert_rule_mute(rule=rule, user=None, until=NOW + timedelta(hours=1), now=NOW)
    _runs(sandbox, orders, ["succeeded"], start=NOW + timedelta(minutes=1))
    assert _evaluate(rule, NOW + timedelta(minutes=2))["resolved"] == 1
    assert not _alert_notes(NotificationKind.ALERT_RESOLVED).exists()
    assert _audit("alert_resolved").count() == 1
    # It fires again after the mute: a new firing, told.
    _runs(sandbox, orders, ["failed"], start=NOW + timedelta(hours=2))
    counts = _evaluate(rule, NOW + timedelta(hours=2, minutes=1))
    assert counts["fired"] == counts["notified"] == 1


def test_mail_goes_to_the_managers_only_after_commit(
    sandbox, orders, managers, developer, monitor, django_capture_on_commit_callbacks
):
    monitor.email = "mo@example.com"
    monitor.save()
    outsider = UserFactory(username="out", role=Role.DEVELOPER, email="out@example.com")
    GrantFactory(
        integration=IntegrationFactory(name="Other"), user=outsider, level=AccessLevel.MANAGE
    )
    rule = _rule(sandbox, kind=AlertKind.FAILED_IN_A_ROW, runs=1, flow=orders)
    _runs(sandbox, orders, ["failed"])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _evaluate(rule)
    assert mail.outbox == []  # not yet committed
    for callback in callbacks:
        callback()
    assert sorted(m.to[0] for m in mail.outbox) == ["ada@example.com", "dev@example.com"]
    subject = mail.outbox[0].subject
    assert subject == f"[ILM] Alert on {sandbox.name}: Orders: 1 failed runs in a row"
    assert "Firing: the last run failed." in mail.outbox[0].body


def test_a_rolled_back_evaluation_fires_nothing_and_mails_nobody(
    sandbox, orders, managers, django_capture_on_commit_callbacks
):
    rule = _rule(sandbox, kind=AlertKind.FAILED_IN_A_ROW, runs=1, flow=orders)
    _runs(sandbox, orders, ["failed"])
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        _evaluate(rule)
        raise RuntimeError("the worker died")
    rule.refresh_from_db()
    assert rule.state == AlertState.OK
    assert not AlertEvent.objects.exists() and not _alert_notes().exists()
    assert not _audit("alert_fired").exists() and mail.outbox == []


def test_a_live_run_that_ends_evaluates_its_flows_rules(
    sandbox, developer, django_capture_on_commit_callbacks
):
    flow = build_flow(sandbox)
    rule = _rule(sandbox, kind=AlertKind.FAILED_IN_A_ROW, runs=1, flow=flow)
    down = httpx.MockTransport(lambda request: httpx.Response(503, json={"error": "down"}))
    with django_capture_on_commit_callbacks(execute=True):
        run = run_execute(run_id=run_start(flow=flow, user=None).pk, transport=down)
    assert run.status == "failed"
    rule.refresh_from_db()
    assert rule.state == AlertState.FIRING
    assert Notification.objects.filter(recipient=developer, kind="alert_fired").exists()


def test_no_evaluation_is_enqueued_for_an_integration_without_rules(
    sandbox, django_capture_on_commit_callbacks, monkeypatch
):
    flow = build_flow(sandbox)
    sent = []
    monkeypatch.setattr(alerts, "_enqueue", lambda *args: sent.append(args))
    down = httpx.MockTransport(lambda request: httpx.Response(503))
    with django_capture_on_commit_callbacks(execute=True):
        run_execute(run_id=run_start(flow=flow, user=None).pk, transport=down)
    assert sent == []
    _rule(sandbox, kind=AlertKind.FAILED_IN_A_ROW, runs=5)  # an integration-wide rule
    with django_capture_on_commit_callbacks(execute=True):
        run_execute(run_id=run_start(flow=flow, user=None).pk, transport=down)
    assert (sandbox.pk, flow.lineage_id) in sent


def test_the_beat_evaluates_every_rule_each_minute(settings, sandbox, orders):
    from runs.tasks import alerts_evaluate

    entry = settings.CELERY_BEAT_SCHEDULE["alerts-evaluate"]
    assert entry["task"] == "runs.tasks.alerts_evaluate"
    assert str(entry["schedule"]) == "<crontab: * * * * * (m/h/dM/MY/d)>"
    other = IntegrationFactory(name="Other")
    _rule(sandbox, kind=AlertKind.NO_SUCCESS, hours=1)
    _rule(other, kind=AlertKind.NO_SUCCESS, hours=1)
    assert alerts_evaluate.delay().get()["evaluated"] == 2


def test_one_broken_rule_does_not_stop_the_others(sandbox, orders, monkeypatch):
    broken = _rule(sandbox, kind=AlertKind.FAILED_IN_A_ROW, runs=1, flow=orders)
    fine = _rule(sandbox, kind=AlertKind.NO_SUCCESS, hours=1)
    AlertRule.objects.filter(pk=broken.pk).update(kind="gone")
    counts = alerts.alerts_evaluate(now=fine.created_at + timedelta(hours=2))
    assert counts["evaluated"] == 1 and counts["fired"] == 1
    assert AlertRule.objects.get(pk=fine.pk).state == AlertState.FIRING


# Writes: validation, audit -----------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"kind": "sometimes"}, "kind"),
        ({"kind": AlertKind.SUCCESS_RATE, "threshold": 80}, "runs"),
        ({"kind": AlertKind.SUCCESS_RATE, "threshold": 180, "runs": 10}, "threshold"),
        ({"kind": AlertKind.SUCCESS_RATE, "threshold": 0, "runs": 10}, "threshold"),
        ({"kind": AlertKind.FAILED_IN_A_ROW, "runs": 2.5}, "runs"),
        ({"kind": AlertKind.FAILED_IN_A_ROW, "runs": "three"}, "runs"),
        ({"kind": AlertKind.FAILED_IN_A_ROW, "runs": 0}, "runs"),
        ({"kind": AlertKind.SLOW_P95, "threshold": 90000}, "threshold"),
        ({"kind": AlertKind.NO_SUCCESS, "hours": 721}, "hours"),
        (
            {"kind": AlertKind.NO_SUCCESS, "hours": 2, "flow_lineage_id": "not-a-uuid"},
            "flow_lineage_id",
        ),
    ],
)
def test_bad_input_is_refused_by_field_and_saves_nothing(sandbox, developer, data, field):
    with pytest.raises(ValidationError) as refused:
        alerts.alert_rule_create(integration=sandbox, user=developer, data=data)
    assert field in refused.value.error_dict
    assert not AlertRule.objects.exists()
    assert not Event.objects.filter(resource_type="alert").exists()


def test_a_flow_of_another_integration_is_refused(sandbox, developer):
    elsewhere = FlowFactory(integration=IntegrationFactory(name="Other"), name="Theirs")
    with pytest.raises(ValidationError) as refused:
        _rule(sandbox, developer, kind=AlertKind.NO_SUCCESS, hours=2, flow=elsewhere)
    assert refused.value.error_dict["flow_lineage_id"][0].messages == [
        f"No such flow in {sandbox.name}."
    ]
    assert not AlertRule.objects.exists()


def test_parameters_the_kind_does_not_use_are_cleared(sandbox, developer):
    rule = _rule(sandbox, developer, kind=AlertKind.NO_SUCCESS, hours=3, threshold=50, runs=4)
    assert (rule.hours, rule.threshold, rule.runs) == (3, None, None)


def test_creating_changing_muting_and_deleting_a_rule_are_audited(sandbox, orders, developer):
    rule = _rule(sandbox, developer, kind=AlertKind.FAILED_IN_A_ROW, runs=3, flow=orders)
    created = Event.objects.get(resource_type="alert", action="created")
    assert created.username == "dev" and created.resource_id == rule.pk
    _, changed = alerts.alert_rule_update(
        rule=rule,
        user=developer,
        data={
            "kind": AlertKind.FAILED_IN_A_ROW,
            "runs": 5,
            "flow_lineage_id": str(orders.lineage_id),
        },
    )
    assert changed
    updated = Event.objects.get(resource_type="alert", action="updated")
    assert updated.changes == [{"field": "runs", "old": 3, "new": 5}]
    until = timezone.now() + timedelta(hours=2)
    alerts.alert_rule_mute(rule=rule, user=developer, until=until)
    muted = Event.objects.filter(resource_type="alert", action="updated").order_by("-id").first()
    assert muted.changes == [{"field": "muted_until", "old": None, "new": until.isoformat()}]
    alerts.alert_rule_delete(rule=rule, user=developer)
    deleted = Event.objects.get(resource_type="alert", action="deleted")
    assert deleted.changes[0]["old"] == "Orders: 5 failed runs in a row"
    assert not AlertRule.objects.exists()


def test_a_mute_must_end_in_the_future_and_within_90_days(sandbox, developer):
    rule = _rule(sandbox, developer, kind=AlertKind.NO_SUCCESS, hours=2)
    for until in (timezone.now() - timedelta(minutes=1), timezone.now() + timedelta(days=91)):
        with pytest.raises(ValidationError):
            alerts.alert_rule_mute(rule=rule, user=developer, until=until)
    rule.refresh_from_db()
    assert rule.muted_until is None
    assert not Event.objects.filter(resource_type="alert", action="updated").exists()


def test_evaluation_reads_a_fixed_number_of_queries_per_rule_however_many_runs(
    sandbox, orders, django_assert_max_num_queries
):
    for kind, data in (
        (AlertKind.SUCCESS_RATE, {"threshold": 50, "runs": 20}),
        (AlertKind.FAILED_IN_A_ROW, {"runs": 3}),
        (AlertKind.SLOW_P95, {"threshold": 500}),
        (AlertKind.NO_SUCCESS, {"hours": 48}),
    ):
        _rule(sandbox, kind=kind, flow=orders, **data)
    connection = uuid.uuid4()
    for many in (5, 60):
        for i in range(many):
            make_run(
                sandbox,
                orders.lineage_id,
                created_at=NOW - timedelta(minutes=50 - i * 0.5),
                status="succeeded",
                steps=[(connection, [0, 0, 4])],
            )
        # Per rule: lock, read (one or two), and the savepoint pair; no transition here.
        with django_assert_max_num_queries(4 * 6 + 1):
            counts = _evaluate(AlertRule.objects.first())
        assert counts["evaluated"] == 4 and counts["fired"] == 0
