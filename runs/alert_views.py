"""The Alerts tab of an integration: its rules with their state and history, and the
forms to create, edit, mute and delete them.

Thin, as the other run pages: load what the user may see (404), check `manage_alerts`
in the one role table for every write (403), call `runs.alerts`, render. Who may see the
integration sees its rules read-only. Without JavaScript every form posts and redirects;
with htmx the create, mute, unmute and delete forms swap the tab's region in place (an
htmx answer with form errors is 200, so that htmx swaps the errors in; without htmx it
is 400). Editing a rule is its own page, as the other editors are.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST

from integrations.forms import apply_service_errors
from integrations.models import Integration
from integrations.permissions import (
    Action,
    can,
    get_visible_integration,
    require,
    visible_integrations,
)
from integrations.views import render_integration_tab

from . import alerts
from .forms import AlertMuteForm, AlertRuleForm
from .models import AlertRule

REGION = "alerts-region"


def _htmx(request: HttpRequest) -> bool:
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


def _context(request: HttpRequest, integration: Integration, **extra: Any) -> dict[str, Any]:
    may_manage = can(request.user, Action.MANAGE_ALERTS, integration)
    now = timezone.now()
    rules = alerts.rules_of(integration)
    mute_errors = extra.pop("mute_errors", {})
    for rule in rules:
        # What the rule's condition says right now (the same reading the evaluation makes).
        rule.now = alerts.check(rule, now)
        rule.muted = rule.muted_at(now)
        rule.mute_errors = [e for errs in mute_errors.get(rule.pk, {}).values() for e in errs]
    context = {
        "integration": integration,
        "rules": rules,
        "may_manage": may_manage,
        "now": now,
        "params": alerts.PARAM_FIELDS,
    }
    if may_manage and "form" not in extra:
        context["form"] = AlertRuleForm(integration=integration)
    if may_manage:
        context["mute_form"] = AlertMuteForm()
    context.update(extra)
    return context


def _render(
    request: HttpRequest, integration: Integration, *, status: int = 200, **extra: Any
) -> HttpResponse:
    context = _context(request, integration, **extra)
    if _htmx(request) and request.htmx.target == REGION:
        # htmx swaps only 2xx answers: form errors come back as 200 to be shown.
        context["bell_oob"] = True
        response = render(request, "runs/alerts.html#alerts-region-swap", context)
        patch_vary_headers(response, ["HX-Request", "HX-Target"])
        return response
    return render_integration_tab(
        request,
        integration,
        tab="alerts",
        template="runs/alerts.html",
        context=context,
        status=status,
    )


def _done(request: HttpRequest, integration: Integration, message: str) -> HttpResponse:
    if _htmx(request) and request.htmx.target == REGION:
        return _render(request, integration, done=message)
    messages.success(request, message)
    return redirect("runs:alerts", pk=integration.pk)


def _rule(request: HttpRequest, pk: int) -> AlertRule:
    """A rule of an integration the user may see (404 otherwise, its existence untold)."""
    rule = get_object_or_404(
        AlertRule.objects.select_related("integration"),
        pk=pk,
        integration__in=visible_integrations(request.user),
    )
    rule.integration = get_visible_integration(request.user, rule.integration_id)
    return rule


@login_required
def alerts_tab(request: HttpRequest, pk: int) -> HttpResponse:
    """The rules (GET); a new rule (POST, `manage_alerts`)."""
    integration = get_visible_integration(request.user, pk)
    if request.method != "POST":
        return _render(request, integration)
    require(request.user, Action.MANAGE_ALERTS, integration)
    form = AlertRuleForm(request.POST, integration=integration)
    if form.is_valid():
        try:
            rule = alerts.alert_rule_create(
                integration=integration, user=request.user, data=form.service_data()
            )
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            return _done(request, integration, f"Alert rule added: {alerts.describe(rule)}.")
    return _render(request, integration, form=form, status=400)


@login_required
def alert_edit(request: HttpRequest, pk: int) -> HttpResponse:
    rule = _rule(request, pk)
    integration = rule.integration
    require(request.user, Action.MANAGE_ALERTS, integration)
    initial = {
        "kind": rule.kind,
        "flow_lineage_id": str(rule.flow_lineage_id) if rule.flow_lineage_id else "",
        **{f: getattr(rule, f) for f in alerts.PARAM_FIELDS},
    }
    form = AlertRuleForm(request.POST or None, integration=integration, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                _, changed = alerts.alert_rule_update(
                    rule=rule, user=request.user, data=form.service_data()
                )
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                if changed:
                    messages.success(request, "Alert rule saved.")
                else:
                    messages.info(request, "Nothing changed.")
                return redirect("runs:alerts", pk=integration.pk)
        status = 400
    return render_integration_tab(
        request,
        integration,
        tab="alerts",
        template="runs/alert_form.html",
        context={
            "form": form,
            "rule": rule,
            "description": alerts.describe(rule),
            "params": alerts.PARAM_FIELDS,
        },
        status=status,
    )


@login_required
@require_POST
def alert_mute(request: HttpRequest, pk: int) -> HttpResponse:
    """Mute until a time (`muted_until`), or unmute (`unmute`)."""
    rule = _rule(request, pk)
    integration = rule.integration
    require(request.user, Action.MANAGE_ALERTS, integration)
    if request.POST.get("unmute"):
        alerts.alert_rule_mute(rule=rule, user=request.user, until=None)
        return _done(request, integration, "Alert rule unmuted.")
    form = AlertMuteForm(request.POST)
    if form.is_valid():
        try:
            alerts.alert_rule_mute(
                rule=rule, user=request.user, until=form.cleaned_data["muted_until"]
            )
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            until = form.cleaned_data["muted_until"]
            return _done(
                request, integration, f"Alert rule muted until {until:%Y-%m-%d %H:%M} UTC."
            )
    return _render(request, integration, mute_errors={rule.pk: form.errors}, status=400)


@login_required
@require_POST
def alert_delete(request: HttpRequest, pk: int) -> HttpResponse:
    rule = _rule(request, pk)
    integration = rule.integration
    require(request.user, Action.MANAGE_ALERTS, integration)
    what = alerts.describe(rule)
    alerts.alert_rule_delete(rule=rule, user=request.user)
    return _done(request, integration, f"Alert rule deleted: {what}.")
