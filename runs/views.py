"""The Runs tab of an integration, run detail with live progress, and starting runs.

Thin: each view loads what the user may see (integration not visible → 404), checks the
action in the permission table (refused → 403), calls `runs.services` or
`runs.selectors`, and renders. One URL serves a page and its htmx fragment
(`template.html#partial`); polling of an open run stops with status 286 once it is final.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST
from django_htmx.http import HTMX_STOP_POLLING

from integrations.filters import shown_rows
from integrations.fragments import is_fragment
from integrations.models import Flow, FlowStep, Integration
from integrations.permissions import Action, can, get_visible_integration, require
from integrations.views import render_integration_tab
from revisions.models import Revision, RevisionType
from revisions.review import FieldRow, value_diff

from . import behaviour_checks, selectors, services
from .filters import RunFilter
from .forms import BehaviourRecordsForm, TestRunForm
from .models import BehaviourCheck, FlowSample, Run, RunMode, RunTrigger

PAGE_SIZE = 25
ERRORS_PAGE_SIZE = 25


def _run(request: HttpRequest, pk: int) -> Run:
    """The run if the user may see its integration; 404 otherwise."""
    run = get_object_or_404(Run.objects.select_related("created_by", "flow"), pk=pk)
    run.integration = get_visible_integration(request.user, run.integration_id)
    return run


def _flow(request: HttpRequest, pk: int, rid: int) -> tuple[Integration, Flow]:
    integration = get_visible_integration(request.user, pk)
    return integration, get_object_or_404(Flow, pk=rid, integration=integration)


# The Runs tab --------------------------------------------------------------------------


@login_required
def runs_tab(request: HttpRequest, pk: int) -> HttpResponse:
    integration = get_visible_integration(request.user, pk)
    fs = RunFilter(request.GET or None, queryset=selectors.runs_of(integration))
    fs.offer_flows(integration)
    page_obj = Paginator(shown_rows(fs), PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "filter_form": fs.form,
        "filtered": any(v for k, v in request.GET.items() if k != "page"),
        "page_obj": page_obj,
        "runs": page_obj.object_list,
        "query": query.urlencode(),
        "has_flows": integration.flows.exists(),
    }
    if is_fragment(request, "runs-table"):
        context.update(integration=integration)
        response = render(request, "runs/tab.html#runs-table", context)
        patch_vary_headers(response, ["HX-Request", "HX-Target"])
        return response
    return render_integration_tab(
        request, integration, tab="runs", template="runs/tab.html", context=context
    )


# A run ---------------------------------------------------------------------------------


def _detail_context(request: HttpRequest, run: Run) -> dict[str, Any]:
    detail = selectors.run_detail(run)
    longest = max((s["duration_ms"] for s in detail["steps"]), default=0) or 1
    for step in detail["steps"]:
        step["bar_pct"] = round(100 * step["duration_ms"] / longest, 1)
    errors = Paginator(run.error_records.all(), ERRORS_PAGE_SIZE).get_page(
        request.GET.get("errors_page")
    )
    # Import steps by name: the run's own step rows, else the flow's steps as they are now.
    wanted = [str(o.get("step")) for o in (run.output or []) if isinstance(o, dict)]
    names = {
        str(lineage): name
        for lineage, name in FlowStep.objects.filter(
            integration=run.integration, lineage_id__in=_uuids(wanted)
        ).values_list("lineage_id", "name")
    }
    names.update({s["lineage_id"]: s["name"] for s in detail["steps"]})
    output = [
        {"name": names.get(str(o.get("step")), "Import step"), "records": o.get("records") or []}
        for o in (run.output or [])
        if isinstance(o, dict)
    ]
    return {
        "run": run,
        "steps": detail["steps"],
        "errors_page": errors,
        "output": output,
        "duration_s": _duration_s(run),
        "may_cancel": run.is_open and can(request.user, Action.RUN, run.integration),
    }


def _uuids(values: list[str]) -> list[uuid.UUID]:
    out = []
    for value in values:
        try:
            out.append(uuid.UUID(value))
        except ValueError:
            continue
    return out


def _duration_s(run: Run) -> float | None:
    if not run.started_at:
        return None
    return round(((run.ended_at or timezone.now()) - run.started_at).total_seconds(), 1)


@login_required
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = _run(request, pk)
    context = _detail_context(request, run)
    if is_fragment(request, "run-errors"):
        response = render(request, "runs/detail.html#run-errors", context)
        patch_vary_headers(response, ["HX-Request", "HX-Target"])
        return response
    return render_integration_tab(
        request, run.integration, tab="runs", template="runs/detail.html", context=context
    )


@login_required
def run_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """What an open run's row (`?part=row`) or page polls; 286 once the run is final."""
    run = _run(request, pk)
    if request.GET.get("part") == "row":
        response = render(request, "runs/tab.html#run-row", {"run": run})
    else:
        context = {**_detail_context(request, run), "integration": run.integration}
        response = render(request, "runs/detail.html#run-body", context)
    if not run.is_open:
        response.status_code = HTMX_STOP_POLLING
    return response


@login_required
@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = _run(request, pk)
    require(request.user, Action.RUN, run.integration)
    try:
        services.run_cancel(run=run, user=request.user)
    except services.RunRefused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, f"Run #{run.pk} is canceled; records already sent stay sent.")
    return redirect("runs:detail", pk=run.pk)


# Starting runs -------------------------------------------------------------------------


@login_required
@require_POST
def run_now(request: HttpRequest, pk: int, rid: int) -> HttpResponse:
    integration, flow = _flow(request, pk, rid)
    require(request.user, Action.RUN, integration)
    try:
        run = services.run_start(flow=flow, user=request.user, mode=RunMode.LIVE)
    except services.RunRefused as refused:
        messages.error(request, str(refused))
        return redirect("integrations:flow", pk=integration.pk, rid=flow.pk)
    return redirect("runs:detail", pk=run.pk)


@login_required
def test_run(request: HttpRequest, pk: int, rid: int) -> HttpResponse:
    """Run the flow over pasted records (or its saved samples); nothing is sent."""
    integration, flow = _flow(request, pk, rid)
    require(request.user, Action.TEST_RUN, integration)
    form = TestRunForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                run = services.run_start(
                    flow=flow,
                    user=request.user,
                    mode=RunMode.TEST,
                    trigger=RunTrigger.TEST,
                    records=form.cleaned_data["records"],
                )
            except services.RunRefused as refused:
                form.add_error("records", str(refused))
            else:
                return redirect("runs:detail", pk=run.pk)
        status = 400
    sample = FlowSample.objects.filter(
        integration=integration, flow_lineage_id=flow.lineage_id
    ).first()
    return render_integration_tab(
        request,
        integration,
        tab="flows",
        template="runs/test_run.html",
        context={
            "flow": flow,
            "form": form,
            "sample_count": len(sample.records) if sample else 0,
            "sample": sample,
            "action": reverse("runs:test_run", args=[integration.pk, flow.pk]),
        },
        status=status,
    )


# The behaviour of a pull (a panel of the review page) ------------------------------------

MAX_RECORDS_SHOWN = 20  # differing records per flow drawn on the panel
RECORDS_OPEN = 3  # of which shown unfolded


def _pull(request: HttpRequest, pk: int) -> Revision:
    revision = get_object_or_404(
        Revision.objects.select_related("integration", "source_integration"), pk=pk
    )
    revision.integration = get_visible_integration(request.user, revision.integration_id)
    if revision.type != RevisionType.PULL:
        raise Http404("Only a pull has a behaviour.")
    return revision


def _behaviour_flows(check: BehaviourCheck | None) -> list[dict[str, Any]]:
    """The result's flows with each differing record's fields as the review's diff rows."""
    flows = []
    for flow in ((check.result or {}).get("flows") or []) if check else []:
        records = []
        for record in flow["different"][:MAX_RECORDS_SHOWN]:
            rows = [
                FieldRow(
                    path=f["path"],
                    conflict=False,
                    resolution=None,
                    base=None,
                    ours=f["ours"],
                    theirs=f["theirs"],
                    diff=value_diff(
                        f["ours"], f["theirs"], absent=(f["ours_missing"], f["theirs_missing"])
                    ),
                )
                for f in record["fields"]
            ]
            records.append(
                {
                    "index": record["record_index"],
                    "rows": rows,
                    "res": {"lineage_id": f"{flow['lineage_id']}-r{record['record_index']}"},
                }
            )
        flows.append(
            {
                **flow,
                "records": records[:RECORDS_OPEN],
                "folded_records": records[RECORDS_OPEN:],
                "more_records": max(0, len(flow["different"]) - MAX_RECORDS_SHOWN),
            }
        )
    return flows


def _behaviour_context(request: HttpRequest, revision: Revision) -> dict[str, Any]:
    can_test = can(request.user, Action.TEST_RUN, revision.integration)
    if can_test:
        check = behaviour_checks.behaviour_current(revision=revision, user=request.user)
    else:
        check = BehaviourCheck.objects.filter(revision=revision).order_by("-pk").first()
    if check is not None:
        check.refresh_from_db()
    result = (check.result or {}) if check else {}
    return {
        "revision": revision,
        "integration": revision.integration,
        "check": check,
        "stale": check is not None and behaviour_checks.is_stale(check),
        "totals": result.get("totals") or {},
        "flows": _behaviour_flows(check),
        "unresolved_as_theirs": result.get("unresolved_as_theirs", 0),
        "can_test": can_test and revision.status in behaviour_checks.TESTABLE,
        "read_only": True,
        "two_way": False,
        "source_name": revision.source_integration.name if revision.source_integration else "",
    }


def _behaviour_response(request: HttpRequest, context: dict[str, Any]) -> HttpResponse:
    fragment = is_fragment(request)
    name = "runs/behaviour.html#behaviour-panel" if fragment else "runs/behaviour.html"
    response = render(request, name, context)
    patch_vary_headers(response, ["HX-Request"])
    check = context["check"]
    if fragment and (check is None or not check.is_open):
        response.status_code = HTMX_STOP_POLLING
    return response


@login_required
def behaviour_panel(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the pull's behaviour for its current changeset (a check starts when there is
    none and the user may test; polls while it runs). POST: test again, with the saved
    samples or the records pasted."""
    revision = _pull(request, pk)
    if request.method == "POST":
        require(request.user, Action.TEST_RUN, revision.integration)
        form = BehaviourRecordsForm(request.POST)
        if form.is_valid():
            try:
                behaviour_checks.behaviour_check_start(
                    revision=revision,
                    user=request.user,
                    records=form.cleaned_data["records"],
                )
            except services.RunRefused as refused:
                form.add_error(None, refused.message)
        if not form.is_valid():
            context = {**_behaviour_context(request, revision), "form": form}
            return _behaviour_response(request, context)
        if not getattr(request, "htmx", False):
            return redirect(f"{reverse('revisions:detail', args=[revision.pk])}#behaviour")
    elif request.method != "GET":
        return HttpResponse(status=405)
    context = {**_behaviour_context(request, revision), "form": BehaviourRecordsForm()}
    return _behaviour_response(request, context)
