"""The Errors tab (Open / Resolved / Retries), one error, a retry's progress, and the
revision page's "retry with the fix" offer (served here: revisions does not import runs).

Thin, as `runs.views`: load what the user may see (404), check the action in the one
role table (403), call `runs.errors` or `runs.error_selectors`, render. The list's
filters are `runs.filters.ErrorFilter`, the same FilterSet the API and the CSV use.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST
from django_htmx.http import HTMX_STOP_POLLING

from integrations.filters import errors_text
from integrations.forms import JSONObjectField
from integrations.fragments import is_fragment
from integrations.models import FlowStep, Integration, Role, User
from integrations.permissions import (
    Action,
    can,
    get_visible_integration,
    require,
    visible_integrations,
)
from integrations.views import render_integration_tab
from revisions.models import Revision

from . import error_csv, error_selectors, errors, services
from .filters import ErrorFilter
from .models import ErrorRetry, ErrorState, FlowError

PAGE_SIZE = 50
TABS = (("open", "Open"), ("resolved", "Resolved"), ("retries", "Retries"))
FILTER_KEYS = ("flow", "step", "kind", "assignee", "since", "until", "q")


def assignable_users(integration: Integration) -> list[User]:
    """Who can see the integration (and so can be given its errors)."""
    return list(
        User.objects.filter(is_active=True)
        .filter(
            Q(role__in=[Role.ADMINISTRATOR, Role.APPROVER])
            | Q(is_superuser=True)
            | Q(grants__integration=integration)
        )
        .distinct()
        .order_by("username")
    )


def _filterset(request_data: QueryDict, integration: Integration, state: str | None) -> ErrorFilter:
    data = request_data.copy()
    if state:
        data["state"] = state
    fs = ErrorFilter(data=data, queryset=error_selectors.errors_of(integration))
    form = fs.form
    flows = integration.flows.order_by("name", "pk").values_list("lineage_id", "name")
    form.fields["flow"].widget = forms.Select(
        choices=[("", "All flows")] + [(str(i), n) for i, n in flows]
    )
    steps = (
        FlowStep.objects.filter(flow__integration=integration)
        .order_by("flow__name", "position")
        .values_list("lineage_id", "flow__name", "name")
    )
    form.fields["step"].widget = forms.Select(
        choices=[("", "All steps")] + [(str(i), f"{f} · {n}") for i, f, n in steps]
    )
    form.fields["kind"].empty_label = "Any kind"
    form.fields["kind"].widget.choices = [("", "Any kind"), *form.fields["kind"].choices[1:]]
    users = assignable_users(integration)
    form.fields["assignee"].widget = forms.Select(
        choices=[("", "Anyone"), ("none", "Unassigned")] + [(u.username, u.username) for u in users]
    )
    form.fields["since"].label = "Seen from"
    form.fields["until"].label = "Seen until"
    form.fields["q"].label = "Search"
    form.fields["q"].widget.attrs.update(
        {"type": "search", "placeholder": "Message or record", "autocomplete": "off"}
    )
    form.fields["flow"].label = "Flow"
    form.fields["step"].label = "Step"
    form.fields["assignee"].label = "Assignee"
    return fs


def _filter_query(request_data: QueryDict) -> str:
    return urlencode(
        [(k, v) for k in FILTER_KEYS for v in request_data.getlist(k) if v], doseq=False
    )


@login_required
def errors_tab(request: HttpRequest, pk: int) -> HttpResponse:
    integration = get_visible_integration(request.user, pk)
    tab = request.GET.get("tab", "open")
    if tab not in dict(TABS):
        tab = "open"
    fs = _filterset(request.GET, integration, None if tab == "retries" else tab)
    query = _filter_query(request.GET)
    context: dict[str, Any] = {
        "tab_key": tab,
        "error_tabs": [
            {
                "key": k,
                "label": label,
                "url": f"{reverse('runs:errors', args=[integration.pk])}?tab={k}"
                + (f"&{query}" if query and k != "retries" else ""),
            }
            for k, label in TABS
        ],
        "filter_form": fs.form,
        "query": query,
        "filtered": bool(query),
        "may_retry": can(request.user, Action.RETRY_ERRORS, integration),
        "may_manage": can(request.user, Action.MANAGE_ERRORS, integration),
        "users": assignable_users(integration),
        "open_count": FlowError.objects.filter(
            integration=integration, state=ErrorState.OPEN
        ).count(),
    }
    if tab == "retries":
        context["retries"] = error_selectors.retries_of(integration, n=50)
    else:
        qs = fs.qs if fs.is_valid() else error_selectors.errors_of(integration).none()
        page_obj = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
        context.update(page_obj=page_obj, errors=page_obj.object_list)
        context["csv_url"] = (
            reverse("runs:errors_csv", args=[integration.pk])
            + f"?state={tab}"
            + (f"&{query}" if query else "")
        )
    if is_fragment(request, "errors-region"):
        context.update(integration=integration)
        response = render(request, "runs/errors.html#errors-region", context)
        patch_vary_headers(response, ["HX-Request", "HX-Target"])
        return response
    return render_integration_tab(
        request, integration, tab="errors", template="runs/errors.html", context=context
    )


@login_required
def errors_csv(request: HttpRequest, pk: int) -> HttpResponse:
    integration = get_visible_integration(request.user, pk)
    fs = _filterset(request.GET, integration, request.GET.get("state") or None)
    if not fs.is_valid():
        return HttpResponse(errors_text(fs), status=400, content_type="text/plain; charset=utf-8")
    return error_csv.csv_response(fs.qs, filename=f"errors-integration-{integration.pk}.csv")


def _chosen_ids(request: HttpRequest, integration: Integration) -> list[int]:
    """The ticked errors, or every open error matching the filters (`all_matching`)."""
    if request.POST.get("all_matching"):
        data = QueryDict(request.POST.get("query", ""), mutable=True)
        fs = _filterset(data, integration, ErrorState.OPEN)
        if not fs.is_valid():
            return []
        return list(fs.qs.values_list("pk", flat=True)[: errors.MAX_RETRY_IDS])
    out = []
    for value in request.POST.getlist("ids"):
        if value.isascii() and value.isdigit():
            out.append(int(value))
    return out


@login_required
@require_POST
def errors_bulk(request: HttpRequest, pk: int) -> HttpResponse:
    """Retry, resolve or assign the chosen errors (the list's select-many bar)."""
    integration = get_visible_integration(request.user, pk)
    action = request.POST.get("action")
    back = reverse("runs:errors", args=[integration.pk]) + (
        f"?{request.POST.get('query')}" if request.POST.get("query") else ""
    )
    ids = _chosen_ids(request, integration)
    if not ids:
        messages.error(request, "Choose at least one error first.")
        return redirect(back)
    try:
        if action == "retry":
            require(request.user, Action.RETRY_ERRORS, integration)
            retry = errors.errors_retry_start(integration=integration, user=request.user, ids=ids)
            return redirect("runs:error_retry", pk=retry.pk)
        require(request.user, Action.MANAGE_ERRORS, integration)
        if action == "resolve":
            done = errors.errors_resolve(
                integration=integration,
                user=request.user,
                ids=ids,
                comment=request.POST.get("comment", "").strip(),
            )
            messages.success(request, f"Resolved {done} error{'s' if done != 1 else ''}.")
        elif action == "assign":
            assignee = _assignee(request.POST.get("assignee", ""))
            errors.errors_assign(
                integration=integration, user=request.user, ids=ids, assignee=assignee
            )
            who = assignee.get_username() if assignee else "nobody"
            messages.success(request, f"Assigned {len(ids)} error(s) to {who}.")
        else:
            messages.error(request, "Choose Retry, Resolve or Assign.")
    except services.RunRefused as refused:
        messages.error(request, refused.message)
    return redirect(back)


def _assignee(username: str) -> User | None:
    if not username:
        return None
    user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        raise services.RunRefused(f"No user {username!r}.", 400, field="assignee")
    return user


# One error -----------------------------------------------------------------------------


class RetryRecordForm(forms.Form):
    record = JSONObjectField(
        what="The record",
        label="Retry data (JSON)",
        help_text="The record as it entered the failing step; a retry sends it on from "
        "there. Masked values (••••••) are sent as they were.",
    )


class ResolveForm(forms.Form):
    comment = forms.CharField(
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Comment",
    )


def _error(request: HttpRequest, pk: int) -> FlowError:
    error = get_object_or_404(
        FlowError.objects.select_related("assignee", "resolved_by_user", "run", "last_retry"),
        pk=pk,
        integration__in=visible_integrations(request.user),
    )
    error.integration = get_visible_integration(request.user, error.integration_id)
    return error


@login_required
def error_detail(request: HttpRequest, pk: int) -> HttpResponse:
    error = _error(request, pk)
    integration = error.integration
    may_retry = can(request.user, Action.RETRY_ERRORS, integration)
    may_manage = can(request.user, Action.MANAGE_ERRORS, integration)
    shown = None
    if may_retry and error.retry_data is not None:
        shown = services.mask_record(errors.retry_data_of(error))
    form = RetryRecordForm(initial={"record": shown if shown is not None else error.record})
    resolve_form = ResolveForm()
    status = 200
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "retry":
                require(request.user, Action.RETRY_ERRORS, integration)
                form = RetryRecordForm(request.POST)
                if form.is_valid():
                    edited = form.cleaned_data["record"] or None
                    records = (
                        {str(error.pk): edited} if edited is not None and edited != shown else None
                    )
                    retry = errors.errors_retry_start(
                        integration=integration, user=request.user, ids=[error.pk], records=records
                    )
                    return redirect("runs:error_retry", pk=retry.pk)
                status = 400
            elif action == "resolve":
                require(request.user, Action.MANAGE_ERRORS, integration)
                resolve_form = ResolveForm(request.POST)
                if resolve_form.is_valid():
                    errors.errors_resolve(
                        integration=integration,
                        user=request.user,
                        ids=[error.pk],
                        comment=resolve_form.cleaned_data["comment"].strip(),
                    )
                    messages.success(request, "The error is resolved.")
                    return redirect("runs:error", pk=error.pk)
                status = 400
            elif action == "assign":
                require(request.user, Action.MANAGE_ERRORS, integration)
                assignee = _assignee(request.POST.get("assignee", ""))
                errors.error_assign(error=error, user=request.user, assignee=assignee)
                messages.success(
                    request,
                    f"Assigned to {assignee.get_username()}." if assignee else "Unassigned.",
                )
                return redirect("runs:error", pk=error.pk)
        except services.RunRefused as refused:
            if action == "retry":
                form.add_error("record", refused.message)
            else:
                messages.error(request, refused.message)
                return redirect("runs:error", pk=error.pk)
            status = 400
    return render_integration_tab(
        request,
        integration,
        tab="errors",
        template="runs/error_detail.html",
        context={
            "error": error,
            "form": form,
            "resolve_form": resolve_form,
            "may_retry": may_retry,
            "may_manage": may_manage,
            "users": assignable_users(integration),
        },
        status=status,
    )


# A retry -------------------------------------------------------------------------------


@login_required
def error_retry(request: HttpRequest, pk: int) -> HttpResponse:
    retry = get_object_or_404(
        ErrorRetry.objects.select_related("created_by", "revision"),
        pk=pk,
        integration__in=visible_integrations(request.user),
    )
    integration = get_visible_integration(request.user, retry.integration_id)
    retried = (
        FlowError.objects.filter(pk__in=retry.error_ids[:PAGE_SIZE])
        .defer("retry_data")
        .order_by("pk")
    )
    context = {"retry": retry, "retried": retried, "integration": integration}
    if is_fragment(request, "retry-body"):
        response = render(request, "runs/error_retry.html#retry-body", context)
        if not retry.is_open:
            response.status_code = HTMX_STOP_POLLING
        patch_vary_headers(response, ["HX-Request", "HX-Target"])
        return response
    return render_integration_tab(
        request, integration, tab="errors", template="runs/error_retry.html", context=context
    )


# Retry with the fix (the revision page) ------------------------------------------------


def _revision(request: HttpRequest, pk: int) -> Revision:
    revision = get_object_or_404(
        Revision.objects.select_related("integration", "tree_before", "tree_after"),
        pk=pk,
        integration__in=visible_integrations(request.user),
    )
    return revision


@login_required
def revision_retry_offer(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the offer fragment (hx-get from the revision page); POST: retry them."""
    revision = _revision(request, pk)
    integration = revision.integration
    offer = error_selectors.retry_offer(revision)
    if request.method == "POST":
        if not can(request.user, Action.RETRY_ERRORS, integration):
            raise PermissionDenied("Your role or access does not allow: retry errors.")
        if not offer["ids"]:
            messages.error(request, "No open errors of the flows this change touched are left.")
            return redirect("revisions:detail", pk=revision.pk)
        try:
            retry = errors.errors_retry_start(
                integration=integration,
                user=request.user,
                ids=offer["ids"][: errors.MAX_RETRY_IDS],
                revision=revision,
            )
        except services.RunRefused as refused:
            messages.error(request, refused.message)
            return redirect("revisions:detail", pk=revision.pk)
        return redirect("runs:error_retry", pk=retry.pk)
    context = {
        "revision": revision,
        "offer": offer,
        "may_retry": can(request.user, Action.RETRY_ERRORS, integration),
        "polling": any(r.is_open for r in offer["retries"]),
    }
    response = render(request, "runs/_retry_offer.html", context)
    if not context["polling"]:
        response.status_code = 200
    patch_vary_headers(response, ["HX-Request"])
    return response
