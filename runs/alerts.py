"""Alert rules: the one module that says what each kind of rule means and evaluates them.

Kinds and their parameters (with bounds) are declared once in `KINDS`; the form, the
service's validation, the Alerts tab and the evaluation read it. A rule watches one flow
or, with no flow, every live run of its integration taken together:

    success_rate     success rate below X % over the last N runs (judged once N runs ended)
    failed_in_a_row  the last N runs all failed
    slow_p95         p95 response time above T ms over the last hour (every connection
                     the flow calls, from the rollups' merged histograms: ±1 bucket)
    no_success       no successful run for H hours (since the rule was made, if never)

Runs are counted as `runs.health` counts them: live runs that ended succeeded, partial
or failed; canceled runs are a person's decision and are skipped.

The state machine (`_transition`), per evaluation of one rule:

    ok     + condition holds  → firing: an AlertEvent, an audit event `alert_fired`, and
                                 unless muted a notification to the managers (bell + mail)
    firing + condition clears → ok: an AlertEvent, `alert_resolved`, and a "resolved"
                                 notification if the firing was notified and not muted
    firing, not yet notified, no longer muted → the managers are told now (a rule that
                                 fired during a mute and still holds when it ends); a
                                 rule notified before its mute is not notified again.

Evaluation runs every minute (beat: `runs.tasks.alerts_evaluate`) and after each live
run ends for the rules watching that flow. Each rule is evaluated in its own
transaction, locked with SKIP LOCKED: a second worker skips a rule being evaluated, so
a rule never fires twice; what it skipped is looked at again within the minute.
Notifications and mails go through `runs.notifications.notify` (mails after commit).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet, Sum
from django.urls import reverse
from django.utils import timezone

from audit.chain import append
from audit.context import Source, acting, current
from audit.models import Action as AuditAction
from integrations.models import Flow, Integration, User

from . import health, histogram
from .auditing import actor_of, audit_event
from .models import (
    BUCKET_FIELDS,
    AlertEvent,
    AlertEventKind,
    AlertKind,
    AlertRule,
    AlertState,
    ConnectionHourLatency,
    FlowHourRollup,
    NotificationKind,
    Run,
    RunMode,
    RunStatus,
)
from .notifications import integration_managers, notify
from .rollups import hour_of

logger = logging.getLogger(__name__)

# The statuses a rule judges (as health's success rate does: canceled runs are skipped).
JUDGED = (RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED)
P95_WINDOW = timedelta(hours=1)


# What each kind means (declared once) --------------------------------------------------


@dataclass(frozen=True)
class Param:
    field: str  # the AlertRule field that holds it
    label: str
    low: float
    high: float
    unit: str = ""
    integer: bool = True

    @property
    def bounds(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"from {self.low:g} to {self.high:g}{unit}"


@dataclass(frozen=True)
class KindSpec:
    params: tuple[Param, ...]
    sentence: str  # str.format over the rule's parameter fields

    def describe(self, values: Mapping[str, Any]) -> str:
        return self.sentence.format(**{p.field: _shown(values.get(p.field)) for p in self.params})


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "?" if value is None else str(value)


KINDS: dict[str, KindSpec] = {
    AlertKind.SUCCESS_RATE: KindSpec(
        (
            Param("threshold", "X: success rate below", 1, 100, "%", integer=False),
            Param("runs", "N: over the last runs", 1, 1000, "runs"),
        ),
        "success rate below {threshold} % over the last {runs} runs",
    ),
    AlertKind.FAILED_IN_A_ROW: KindSpec(
        (Param("runs", "N: failed runs in a row", 1, 100, "runs"),),
        "{runs} failed runs in a row",
    ),
    AlertKind.SLOW_P95: KindSpec(
        # The histograms' last bound is 60 s: a p95 above it cannot be told apart.
        (Param("threshold", "T: p95 response time above", 1, 60000, "ms", integer=False),),
        "p95 response time above {threshold} ms over 1 h",
    ),
    AlertKind.NO_SUCCESS: KindSpec(
        (Param("hours", "H: no successful run for", 1, 720, "hours"),),
        "no successful run for {hours} hours",
    ),
}
PARAM_FIELDS: tuple[str, ...] = ("threshold", "runs", "hours")


def describe(rule: AlertRule) -> str:
    """What the rule watches, in words: "Orders: 3 failed runs in a row"."""
    what = KINDS[rule.kind].describe({f: getattr(rule, f) for f in PARAM_FIELDS})
    return f"{rule.flow_name or 'Any flow'}: {what}"


# Validation and the writes of rules (services) -----------------------------------------


def alert_rule_clean(*, integration: Integration, data: Mapping[str, Any]) -> dict[str, Any]:
    """The rule's fields from `data` (kind, flow lineage id or None, threshold, runs, hours),
    checked against `KINDS`; raises ValidationError per field. Parameters the kind does
    not use are cleared."""
    errors: dict[str, list[str]] = {}
    kind = data.get("kind")
    if kind not in KINDS:
        raise ValidationError({"kind": [f"Choose one of: {', '.join(KINDS)}."]})
    spec = KINDS[kind]
    out: dict[str, Any] = {"kind": kind, **dict.fromkeys(PARAM_FIELDS)}
    for param in spec.params:
        value = data.get(param.field)
        if value in (None, ""):
            errors.setdefault(param.field, []).append(f"{param.label}: required for this kind.")
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            errors.setdefault(param.field, []).append(f"{param.label}: a number, please.")
            continue
        if param.integer and number != int(number):
            errors.setdefault(param.field, []).append(f"{param.label}: a whole number.")
            continue
        if not param.low <= number <= param.high:
            errors.setdefault(param.field, []).append(f"{param.label}: {param.bounds}.")
            continue
        out[param.field] = int(number) if param.integer else number
    flow = data.get("flow_lineage_id")
    out["flow_lineage_id"], out["flow_name"] = None, ""
    if flow not in (None, ""):
        try:
            lineage = uuid.UUID(str(flow))
        except ValueError:
            lineage = None
        found = (
            Flow.objects.filter(integration=integration, lineage_id=lineage).first()
            if lineage
            else None
        )
        if found is None:
            errors.setdefault("flow_lineage_id", []).append(f"No such flow in {integration.name}.")
        else:
            out["flow_lineage_id"], out["flow_name"] = found.lineage_id, found.name
    if errors:
        raise ValidationError(errors)
    return out


def alert_rule_create(
    *, integration: Integration, user: User | None, data: Mapping[str, Any]
) -> AlertRule:
    """Create a rule (audited as `created`); it is evaluated once the transaction commits,
    so a condition that already holds fires at once. Bad input: ValidationError, nothing
    saved. Permission is the caller's check (`manage_alerts`)."""
    fields = alert_rule_clean(integration=integration, data=data)
    with transaction.atomic():
        rule = AlertRule.objects.create(
            integration=integration, created_by=actor_of(user), **fields
        )
        _audit(
            rule,
            user,
            AuditAction.CREATED,
            [{"field": k, "old": None, "new": _plain(v)} for k, v in fields.items()],
        )
        transaction.on_commit(_evaluate_soon(rule), robust=True)
    return rule


def alert_rule_update(
    *, rule: AlertRule, user: User | None, data: Mapping[str, Any]
) -> tuple[AlertRule, bool]:
    """Change a rule's kind, flow or parameters: (rule, whether anything changed). Nothing
    changed: the row is not written (nor audited). A changed rule keeps its state and is
    evaluated again once committed (it resolves by itself if the new condition clears)."""
    fields = alert_rule_clean(integration=rule.integration, data=data)
    with transaction.atomic():
        locked = AlertRule.objects.select_for_update().select_related("integration").get(pk=rule.pk)
        changes = [
            {"field": k, "old": _plain(getattr(locked, k)), "new": _plain(v)}
            for k, v in fields.items()
            if getattr(locked, k) != v
        ]
        if not changes:
            return locked, False
        for key, value in fields.items():
            setattr(locked, key, value)
        locked.save(update_fields=list(fields))
        _audit(locked, user, AuditAction.UPDATED, changes)
        transaction.on_commit(_evaluate_soon(locked), robust=True)
    return locked, True


def alert_rule_mute(
    *, rule: AlertRule, user: User | None, until: datetime | None, now: datetime | None = None
) -> AlertRule:
    """Mute the rule until `until` (in the future, at most 90 days ahead), or unmute it
    (None). A muted rule still follows its condition (and the audit says so) but tells
    nobody; when the mute ends a rule that still fires is notified once."""
    now = now or timezone.now()
    if until is not None:
        if until <= now:
            raise ValidationError({"muted_until": ["Mute until a moment in the future."]})
        if until > now + timedelta(days=90):
            raise ValidationError({"muted_until": ["Mute for at most 90 days."]})
    with transaction.atomic():
        locked = AlertRule.objects.select_for_update().select_related("integration").get(pk=rule.pk)
        old = locked.muted_until if locked.muted_at(now) else None
        if old == until:
            return locked
        locked.muted_until = until
        locked.save(update_fields=["muted_until"])
        _audit(
            locked,
            user,
            AuditAction.UPDATED,
            [{"field": "muted_until", "old": _plain(old), "new": _plain(until)}],
        )
        if until is None:
            # Unmuted: a firing nobody was told of is told now, not at the next tick.
            transaction.on_commit(_evaluate_soon(locked), robust=True)
    return locked


def alert_rule_delete(*, rule: AlertRule, user: User | None) -> None:
    """Delete a rule and its history (audited as `deleted`, with what it watched)."""
    with transaction.atomic():
        locked = AlertRule.objects.select_for_update().select_related("integration").get(pk=rule.pk)
        _audit(
            locked,
            user,
            AuditAction.DELETED,
            [{"field": "rule", "old": describe(locked), "new": None}],
        )
        locked.delete()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _evaluate_soon(rule: AlertRule) -> Any:
    """The on-commit callback that evaluates the rule's flow's rules. Robust: a broker that
    is down does not turn a saved rule into an error page; the beat evaluates it anyway."""
    return partial(_enqueue, rule.integration_id, rule.flow_lineage_id)


def _enqueue(integration_id: int, flow_lineage_id: uuid.UUID | None) -> None:
    from .tasks import alerts_evaluate

    alerts_evaluate.delay(integration_id, str(flow_lineage_id) if flow_lineage_id else None)


def enqueue_after_run(integration_id: int, flow_lineage_id: uuid.UUID) -> None:
    """A live run of this flow ended (call on commit): evaluate the rules watching it, if
    there are any (no message is sent for an integration without rules)."""
    if watching(integration_id, flow_lineage_id).exists():
        _enqueue(integration_id, flow_lineage_id)


# Audit ---------------------------------------------------------------------------------


def _audit(rule: AlertRule, user: User | None, action: str, changes: list[dict]) -> None:
    """One audit event about a rule, in the caller's transaction."""
    append(
        [
            audit_event(
                rule.integration,
                user,
                action,
                resource_type="alert",
                resource_id=rule.pk,
                resource_name=f"Alert {rule.pk}: {describe(rule)}",
                changes=changes,
            )
        ]
    )


# Conditions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    holds: bool
    reason: str  # the figures, as the tab and the notification show them


def _runs(rule: AlertRule) -> QuerySet[Run]:
    qs = Run.objects.filter(
        integration_id=rule.integration_id, mode=RunMode.LIVE, status__in=JUDGED
    )
    if rule.flow_lineage_id:
        qs = qs.filter(flow_lineage_id=rule.flow_lineage_id)
    # Newest first by the time alone, so the (flow, -created_at) and (integration,
    # -created_at) indexes give the order and the read stops after N rows.
    return qs.order_by("-created_at")


def _rollups(rule: AlertRule, model: type) -> QuerySet:
    qs = model.objects.filter(integration_id=rule.integration_id)
    if rule.flow_lineage_id:
        qs = qs.filter(flow_lineage_id=rule.flow_lineage_id)
    return qs


def check(rule: AlertRule, now: datetime) -> Check:
    """Whether the rule's condition holds now, and the figures that say so."""
    return _CHECKS[rule.kind](rule, now)


def _success_rate(rule: AlertRule, now: datetime) -> Check:
    n = rule.runs or 1
    statuses = list(_runs(rule).values_list("status", flat=True)[:n])
    if len(statuses) < n:
        return Check(False, f"only {len(statuses)} of {n} runs so far")
    rate = health.success_rate(
        statuses.count(RunStatus.SUCCEEDED),
        statuses.count(RunStatus.PARTIAL),
        statuses.count(RunStatus.FAILED),
    )
    assert rate is not None  # n ≥ 1 judged runs
    holds = rate < (rule.threshold or 0)
    return Check(holds, f"{rate:.1f} % of the last {n} runs succeeded")


def _failed_in_a_row(rule: AlertRule, now: datetime) -> Check:
    n = rule.runs or 1
    statuses = list(_runs(rule).values_list("status", flat=True)[:n])
    streak = 0
    for status in statuses:
        if status != RunStatus.FAILED:
            break
        streak += 1
    if not statuses:
        return Check(False, "no runs yet")
    if streak == 0:
        return Check(False, f"the last run {statuses[0]}")
    return Check(
        streak >= n, f"the last {streak} run(s) failed" if streak > 1 else "the last run failed"
    )


def _slow_p95(rule: AlertRule, now: datetime) -> Check:
    sums = (
        _rollups(rule, ConnectionHourLatency)
        .filter(hour__gte=hour_of(now - P95_WINDOW))
        .aggregate(**{f: Sum(f) for f in BUCKET_FIELDS})
    )
    buckets = [sums[f] or 0 for f in BUCKET_FIELDS]
    p95 = histogram.percentile(buckets, 95)
    if p95 is None:
        return Check(False, "no calls in the last hour")
    calls = histogram.count(buckets)
    return Check(
        p95 > (rule.threshold or 0), f"p95 {p95:.0f} ms over {calls} call(s) in the last hour"
    )


def _no_success(rule: AlertRule, now: datetime) -> Check:
    # The newest hour with a success (rollups), then the newest success in it (runs): two
    # short reads however long the flow has been failing.
    hour = (
        _rollups(rule, FlowHourRollup)
        .filter(succeeded__gt=0)
        .order_by("-hour")
        .values_list("hour", flat=True)
        .first()
    )
    last = None
    if hour is not None:
        found = (
            _runs(rule)
            .filter(status=RunStatus.SUCCEEDED, created_at__gte=hour)
            .values_list("ended_at", "created_at")
            .first()
        )
        if found:
            last = found[0] or found[1]
    limit = timedelta(hours=rule.hours or 1)
    if last is None:
        since = rule.created_at or now
        return Check(
            now - since >= limit,
            f"no successful run since the rule was made ({since:%Y-%m-%d %H:%M} UTC)",
        )
    age = now - last
    return Check(age >= limit, f"last successful run {_age(age)} ago ({last:%Y-%m-%d %H:%M} UTC)")


def _age(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


_CHECKS = {
    AlertKind.SUCCESS_RATE: _success_rate,
    AlertKind.FAILED_IN_A_ROW: _failed_in_a_row,
    AlertKind.SLOW_P95: _slow_p95,
    AlertKind.NO_SUCCESS: _no_success,
}


# Evaluation: the state machine ---------------------------------------------------------


def watching(integration_id: int, flow_lineage_id: uuid.UUID | str | None) -> QuerySet[AlertRule]:
    """The rules of an integration that watch this flow (its own and the integration-wide)."""
    qs = AlertRule.objects.filter(integration_id=integration_id)
    if flow_lineage_id:
        qs = qs.filter(Q(flow_lineage_id__isnull=True) | Q(flow_lineage_id=flow_lineage_id))
    return qs


def alerts_evaluate(
    *,
    integration_id: int | None = None,
    flow_lineage_id: uuid.UUID | str | None = None,
    now: datetime | None = None,
) -> dict[str, int]:
    """Evaluate every rule, or those of one integration (watching one flow): each in its
    own transaction, skipped if another worker holds it. Returns counts of what happened:
    {"evaluated", "fired", "resolved", "notified", "skipped"}."""
    rules = (
        AlertRule.objects.all()
        if integration_id is None
        else watching(integration_id, flow_lineage_id)
    )
    counts = dict.fromkeys(("evaluated", "fired", "resolved", "notified", "skipped"), 0)
    for pk in list(rules.order_by("pk").values_list("pk", flat=True)):
        try:
            with transaction.atomic():
                rule = (
                    AlertRule.objects.select_for_update(skip_locked=True)
                    .select_related("integration")
                    .filter(pk=pk)
                    .first()
                )
                if rule is None:  # deleted, or another worker is evaluating it
                    counts["skipped"] += 1
                    continue
                for what in _transition(rule, now or timezone.now()):
                    counts[what] += 1
                counts["evaluated"] += 1
        except Exception:
            # One broken rule must not keep the others from being evaluated.
            logger.exception("Alert rule %s could not be evaluated", pk)
    return counts


def _transition(rule: AlertRule, now: datetime) -> list[str]:
    """Move one locked rule by its condition (see the module's docstring). Returns what
    happened: "fired", "resolved", "notified"."""
    result = check(rule, now)
    muted = rule.muted_at(now)
    happened: list[str] = []
    changed: list[str] = []
    if result.holds and rule.state == AlertState.OK:
        rule.state, rule.fired_at, rule.reason, rule.notified = (
            AlertState.FIRING,
            now,
            result.reason,
            False,
        )
        changed += ["state", "fired_at", "reason", "notified"]
        _record(rule, AlertEventKind.FIRED, now, result.reason, muted)
        happened.append("fired")
    elif not result.holds and rule.state == AlertState.FIRING:
        told = rule.notified and not muted
        rule.state, rule.resolved_at, rule.reason, rule.notified = (
            AlertState.OK,
            now,
            result.reason,
            False,
        )
        changed += ["state", "resolved_at", "reason", "notified"]
        _record(rule, AlertEventKind.RESOLVED, now, result.reason, muted)
        happened.append("resolved")
        if told:
            _notify(rule, NotificationKind.ALERT_RESOLVED, result.reason)
    if rule.state == AlertState.FIRING and not rule.notified and not muted:
        _notify(rule, NotificationKind.ALERT_FIRED, rule.reason)
        rule.notified = True
        if "notified" not in changed:
            changed.append("notified")
        happened.append("notified")
    if changed:
        rule.save(update_fields=changed)
    return happened


def _record(rule: AlertRule, kind: str, now: datetime, reason: str, muted: bool) -> None:
    AlertEvent.objects.create(rule=rule, kind=kind, at=now, reason=reason, muted=muted)
    fired = kind == AlertEventKind.FIRED
    changes = [
        {
            "field": "state",
            "old": AlertState.OK.value if fired else AlertState.FIRING.value,
            "new": AlertState.FIRING.value if fired else AlertState.OK.value,
        },
        {"field": "why", "old": None, "new": reason},
    ]
    if muted:
        changes.append({"field": "muted_until", "old": None, "new": _plain(rule.muted_until)})
    # A rule fires or resolves by itself, whoever's action led to the evaluation.
    with acting(None, Source.SYSTEM, operation_id=current().request_id):
        _audit(
            rule,
            None,
            AuditAction.ALERT_FIRED if fired else AuditAction.ALERT_RESOLVED,
            changes,
        )


def _notify(rule: AlertRule, kind: str, reason: str) -> None:
    integration = rule.integration
    what = describe(rule)
    if kind == NotificationKind.ALERT_FIRED:
        title = f"Alert on {integration.name}: {what}"
        body = f"Firing: {reason}."
    else:
        title = f"Resolved on {integration.name}: {what}"
        body = f"Resolved: {reason}."
    notify(
        integration_managers(integration),
        kind=kind,
        title=title,
        body=body,
        url=reverse("runs:alerts", args=[integration.pk]) + f"#alert-{rule.pk}",
        integration=integration,
    )


# Reads (the Alerts tab and the Monitoring page) ----------------------------------------


def rules_of(integration: Integration) -> list[AlertRule]:
    """The integration's rules, with their last events (up to 5 each)."""
    rules = list(AlertRule.objects.filter(integration=integration).order_by("pk"))
    events: dict[int, list[AlertEvent]] = {}
    if rules:
        for event in AlertEvent.objects.filter(rule__in=rules).order_by("-at", "-pk")[:500]:
            bucket = events.setdefault(event.rule_id, [])
            if len(bucket) < 5:
                bucket.append(event)
    for rule in rules:
        rule.recent_events = events.get(rule.pk, [])
        rule.description = describe(rule)
    return rules


def firing(integrations: QuerySet[Integration], flow: uuid.UUID | None = None) -> list[AlertRule]:
    """The firing rules of these integrations (one flow's, and the integration-wide ones,
    when a flow is given), most recently fired first: the Monitoring page's list."""
    qs = AlertRule.objects.filter(
        state=AlertState.FIRING, integration__in=integrations.values("pk")
    ).select_related("integration")
    if flow:
        qs = qs.filter(Q(flow_lineage_id__isnull=True) | Q(flow_lineage_id=flow))
    rules = list(qs.order_by("-fired_at", "-pk")[:100])
    for rule in rules:
        rule.description = describe(rule)
    return rules
