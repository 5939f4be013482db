"""The Revisions tab, the review page of a pull, revert previews and the approval queue.

Thin: each view loads what the user may see (not visible → 404), checks the action
(not allowed → 403), calls the engine's service or selector, and renders. One URL serves a
page and its htmx fragment (`template.html#partial`), with `Vary: HX-Request`.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import (
    HTMX_STOP_POLLING,
    HttpResponseClientRedirect,
    HttpResponseClientRefresh,
    trigger_client_event,
)

from integrations.filters import shown_rows
from integrations.fragments import is_fragment
from integrations.models import Integration
from integrations.permissions import (
    Action,
    allowed_actions,
    can,
    get_visible_integration,
    require,
)
from integrations.resources import LIST_KEYS, RESOURCE_TYPES
from integrations.selectors import namesake_warning

from . import approvals, batches, selectors, services
from .diff import Changeset, empty_changeset
from .document import documents_of_trees
from .errors import RevisionError, StaleReview
from .filters import RevisionFilter
from .forms import (
    CloneForm,
    CommentForm,
    IncludeForm,
    PullForm,
    RejectForm,
    ResolveForm,
    RevertForm,
    SnapshotForm,
)
from .models import (
    ACTIVE_STATUSES,
    REVIEWABLE_STATUSES,
    PullBatch,
    Revision,
    RevisionStatus,
    RevisionType,
)
from .review import (
    document_names,
    field_rows,
    find_resource,
    full_body_fields,
    group_resources,
    latest_approval,
    link_resources,
    merge_box,
    names_for,
    page_of_groups,
    path_head,
    referenced_ids,
    row_actions,
    snapshots_around,
    state_contents,
    stored_bodies,
    summary_of,
    whole_conflict,
)

PAGE_SIZE = 25


# Loading and answering ------------------------------------------------------------------


def _revision(request: HttpRequest, pk: int, *, trees: bool = False) -> Revision:
    """The revision if the user may see its integration; 404 otherwise."""
    related = ["integration", "created_by", "source_integration", "reverted_to"]
    if trees:
        related += ["source_tree", "tree_before", "base_tree", "tree_after"]
    revision = get_object_or_404(Revision.objects.select_related(*related), pk=pk)
    # Same check (and same 404) as every integration page.
    revision.integration = get_visible_integration(request.user, revision.integration_id)
    return revision


def _render(request, template: str, context: dict, *, partial: str | None = None, status=200):
    name = f"{template}#{partial}" if partial and is_fragment(request) else template
    response = render(request, name, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _back(request: HttpRequest, url: str) -> HttpResponse:
    """After a POST: a plain redirect, or for htmx a client-side one (no swap of a page)."""
    if is_fragment(request):
        return HttpResponseClientRedirect(url)
    return redirect(url)


def _refused(request: HttpRequest, url: str, message: str) -> HttpResponse:
    """An engine refusal (state conflict, bad input): say why, change nothing."""
    if is_fragment(request):
        response = HttpResponse(message, status=409, content_type="text/plain")
        return trigger_client_event(response, "ilm:toast", {"value": message})
    messages.error(request, message)
    return redirect(url)


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)


def _detail_url(revision: Revision) -> str:
    return reverse("revisions:detail", args=[revision.pk])


def _tab_url(integration: Integration) -> str:
    return reverse("revisions:tab", args=[integration.pk])


# The Revisions tab ----------------------------------------------------------------------


@login_required
@require_GET
def revisions_tab(request: HttpRequest, pk: int) -> HttpResponse:
    from integrations.views import render_integration_tab

    integration = get_visible_integration(request.user, pk)
    allowed = allowed_actions(request.user, integration)
    revisions = selectors.revisions_for(integration).select_related("operation", "reverted_to")
    fs = RevisionFilter(request.GET or None, queryset=revisions)
    fs.offer_users(
        get_user_model()
        .objects.filter(pk__in=revisions.order_by().values("created_by"))
        .order_by("username")
        .values_list("username", flat=True)
    )
    revisions = shown_rows(fs)
    page = Paginator(revisions, PAGE_SIZE).get_page(request.GET.get("page"))
    current = selectors.current_tree_hash(integration)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "integration": integration,
        "perms_ilm": allowed,
        "filter_form": fs.form,
        "filtered": any(v for k, v in request.GET.items() if k != "page"),
        "page_obj": page,
        "rows": [
            {"revision": r, "actions": row_actions(r, allowed, current_hash=current)} for r in page
        ],
        "compare_url": reverse("revisions:compare_pick", args=[integration.pk]),
        "can_pick": sum(1 for r in page if r.status == RevisionStatus.COMPLETED and r.tree_after_id)
        >= 2,
        "query": query.urlencode(),
        "snapshot_form": SnapshotForm(),
        "has_family": selectors.family_of(integration, request.user).exists(),
    }
    if is_fragment(request, "revisions-table"):
        return _render(request, "revisions/tab.html", context, partial="revisions-table")
    response = render_integration_tab(
        request, integration, tab="revisions", template="revisions/tab.html", context=context
    )
    patch_vary_headers(response, ["HX-Request"])
    return response


@login_required
def snapshot_create(request: HttpRequest, pk: int) -> HttpResponse:
    integration = get_visible_integration(request.user, pk)
    require(request.user, Action.SNAPSHOT, integration)
    form = SnapshotForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            revision = services.snapshot_create(
                integration=integration,
                user=request.user,
                description=form.cleaned_data["description"],
            )
        except (RevisionError, ValidationError) as exc:
            form.add_error(None, _error_text(exc))
        else:
            messages.success(request, f"Snapshot #{revision.number} saved.")
            return _back(request, _tab_url(integration))
    status = 400 if form.is_bound else 200
    return _render(
        request,
        "revisions/snapshot_form.html",
        {"integration": integration, "form": form},
        partial="form",
        status=status,
    )


@login_required
def pull_create(request: HttpRequest, pk: int) -> HttpResponse:
    integration = get_visible_integration(request.user, pk)
    require(request.user, Action.PULL, integration)
    family = selectors.family_of(integration, request.user)
    initial = {}
    if request.GET.get("source"):
        initial["source"] = request.GET["source"]
    form = PullForm(request.POST or None, family=family, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            revision = services.pull_create(
                target=integration,
                source=form.cleaned_data["source"],
                user=request.user,
                description=form.cleaned_data["description"],
            )
        except (RevisionError, ValidationError) as exc:
            form.add_error(None, _error_text(exc))
        else:
            messages.success(
                request,
                f"Pull #{revision.number} started: comparing with "
                f"{form.cleaned_data['source'].name}.",
            )
            return _back(request, _detail_url(revision))
    open_op = (
        Revision.objects.filter(
            integration=integration, status__in=REVIEWABLE_STATUSES | ACTIVE_STATUSES
        )
        .exclude(type=RevisionType.SNAPSHOT)
        .first()
    )
    return _render(
        request,
        "revisions/pull_form.html",
        {
            "integration": integration,
            "form": form,
            "family": family,
            "perms_ilm": allowed_actions(request.user, integration),
            "open_operation": open_op,
        },
        partial="form",
        status=400 if form.is_bound else 200,
    )


@login_required
def clone_create(request: HttpRequest, pk: int) -> HttpResponse:
    """Clone an integration (into a sandbox, or production for roles that may)."""
    source = get_visible_integration(request.user, pk)
    require(request.user, Action.CLONE, source)
    may_prod = can(request.user, Action.CLONE_TO_PRODUCTION, source)
    form = CloneForm(
        request.POST or None,
        may_clone_to_production=may_prod,
        initial={"name": f"{source.name} (sandbox)"},
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            clone = services.integration_clone(
                source=source,
                user=request.user,
                name=data["name"],
                environment=data["environment"],
                copy_cache_data=data["copy_cache_data"],
            )
        except (RevisionError, ValidationError) as exc:
            form.add_error(None, _error_text(exc))
        else:
            messages.success(
                request,
                f"{clone.name} is a clone of {source.name}. Change it, then pull the changes "
                f"back into {source.name} from its Revisions tab.",
            )
            warning = namesake_warning(request.user, clone)
            if warning:
                messages.warning(request, warning)
            return _back(request, clone.get_absolute_url())
    return _render(
        request,
        "revisions/clone_form.html",
        {"integration": source, "form": form},
        partial="form",
        status=400 if form.is_bound else 200,
    )


# One revision: review page for pulls, result page for the others ----------------------


def _changes(revision: Revision) -> Changeset | None:
    if revision.type != RevisionType.PULL or revision.status in (
        RevisionStatus.QUEUED,
        RevisionStatus.RUNNING,
    ):
        return None
    try:
        return selectors.changes_for_review(revision)
    except ObjectDoesNotExist:
        return None  # failed before the changeset was computed


def _review_context(request: HttpRequest, revision: Revision, *, only: str = "") -> dict:
    allowed = allowed_actions(request.user, revision.integration)
    changes = _changes(revision)
    summary = summary_of(changes) if changes is not None else None
    approval = (
        latest_approval(revision)
        if revision.type in (RevisionType.PULL, RevisionType.REVERT)
        else None
    )
    context: dict[str, Any] = {
        "revision": revision,
        "integration": revision.integration,
        "perms_ilm": allowed,
        "changes": changes,
        "summary": summary,
        "only_conflicts": only == "conflicts",
        "approval": approval,
        "active": revision.is_active,
        "read_only": revision.status != RevisionStatus.READY or "resolve" not in allowed,
    }
    if changes is not None:
        context["groups"] = group_resources(
            changes.get("resources") or [],
            revision=revision,
            only_conflicts=only == "conflicts",
        )
        link_resources(context["groups"], "revisions:resource", revision.pk)
        context["include_url"] = reverse("revisions:include", args=[revision.pk])
        context["box"] = merge_box(
            revision, user=request.user, allowed=allowed, summary=summary, approval=approval
        )
    if revision.has_two_states:
        context["snapshots"] = snapshots_around(revision)
    context["empty_caches"] = selectors.caches_left_empty(revision)
    if revision.status == RevisionStatus.COMPLETED and revision.tree_after_id:
        current = selectors.current_tree_hash(revision.integration)
        context["is_current"] = {
            "after": revision.tree_after_id == current,
            "before": bool(revision.tree_before_id) and revision.tree_before_id == current,
        }
        context["compare_url"] = reverse("revisions:compare", args=[revision.pk])
        if not revision.has_two_states:
            (doc,) = documents_of_trees(revision.tree_after)
            context["contents"] = state_contents(doc, revision.integration)
    return context


@login_required
@require_GET
def revision_detail(request: HttpRequest, pk: int) -> HttpResponse:
    revision = _revision(request, pk, trees=True)
    context = _review_context(request, revision, only=request.GET.get("only", ""))
    if "groups" in context:
        _page_resources(request, context)
    if is_fragment(request, MORE_TARGET):
        return _render(request, "revisions/_resources.html", context)
    partial = "resource-list" if is_fragment(request, "resource-list") else None
    # The list is swapped alone: the "All changes / Only conflicts" toggle comes with it
    # out of band, so the pressed button always names what the list shows.
    context["filter_oob"] = partial is not None
    return _render(request, "revisions/detail.html", context, partial=partial)


MORE_TARGET = "more-resources"


def _page_resources(request: HttpRequest, context: dict[str, Any]) -> None:
    """Keep one page of the resource list in `context`, with the link to the next one."""
    try:
        offset = max(0, int(request.GET.get("offset") or 0))
    except ValueError:
        offset = 0
    page = page_of_groups(context["groups"], offset=offset)
    context["groups"] = page.groups
    context["resource_page"] = page
    if page.next_offset is not None:
        query = request.GET.copy()
        query["offset"] = str(page.next_offset)
        context["more_url"] = f"{request.path}?{query.urlencode()}"


@login_required
@require_GET
def revision_status(request: HttpRequest, pk: int) -> HttpResponse:
    """Polling target while the engine works; 286 stops the polling once it is done.

    `part=row` answers with the tab's table row, otherwise the progress box; when the
    revision is no longer working, the page reloads to show the review or the result.
    """
    revision = _revision(request, pk)
    allowed = allowed_actions(request.user, revision.integration)
    working = revision.status in ACTIVE_STATUSES
    if request.GET.get("part") == "row":
        context = {
            "row": {
                "revision": revision,
                "actions": row_actions(
                    revision,
                    allowed,
                    current_hash=None
                    if working
                    else selectors.current_tree_hash(revision.integration),
                ),
            },
            "integration": revision.integration,
            "perms_ilm": allowed,
        }
        response = render(request, "revisions/tab.html#row", context)
    else:
        context = {"revision": revision, "active": working, "polled": True}
        response = render(request, "revisions/detail.html#progress", context)
        if not working and is_fragment(request):
            response = HttpResponseClientRefresh()
    if not working:
        response.status_code = HTMX_STOP_POLLING
    patch_vary_headers(response, ["HX-Request"])
    return response


def _name_scope(revision: Revision) -> list[int]:
    """Integrations whose resources a changed reference may name: target and source."""
    scope = [revision.integration_id]
    if revision.source_integration_id:
        scope.append(revision.source_integration_id)
    return scope


def _resource_fragment(
    request: HttpRequest,
    revision: Revision,
    res: dict[str, Any],
    *,
    two_way: bool,
    read_only: bool,
    extra: dict | None = None,
    ours_body: dict | None = None,
    documents: tuple[dict[str, Any], ...] = (),
) -> HttpResponse:
    context = {
        "revision": revision,
        "integration": revision.integration,
        "read_only": read_only,
        **_diff_context(revision, res, two_way=two_way, ours_body=ours_body, documents=documents),
        **(extra or {}),
    }
    return _render(request, "revisions/resource.html", context, partial="resource-diff")


def _diff_context(
    revision: Revision,
    res: dict[str, Any],
    *,
    two_way: bool,
    ours_body: dict | None = None,
    documents: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    """What the field diff of one resource needs (shared by the lazy load and resolve).

    `documents`: stored states the diff is between, which name what no longer exists."""
    rows = field_rows(
        res,
        ref_names=names_for(
            referenced_ids(res), _name_scope(revision), known=document_names(*documents)
        ),
        two_way=two_way,
        ours_body=ours_body
        if ours_body is not None
        else _ours_body(revision, res, two_way=two_way),
    )
    return {
        "res": res,
        "rows": rows,
        "two_way": two_way,
        "whole": None if two_way else whole_conflict(res),
        "source_name": revision.source_integration.name if revision.source_integration else "",
    }


def _ours_body(revision: Revision, res: dict[str, Any], *, two_way: bool) -> dict | None:
    """The resource as our side has it, where its keyed lists (mappings) changed: the pull's
    target when computed, or the integration now (a revert preview compares with now)."""
    keyed = LIST_KEYS.get(res.get("type", ""))
    if not keyed or res.get("action") != "modified":
        return None
    lineage_id = str(res["lineage_id"])
    if not two_way:
        return stored_bodies(revision, [lineage_id], ("tree_before",)).get(lineage_id)
    rt = RESOURCE_TYPES[res["type"]]
    columns = sorted({path_head(p) for p in keyed})
    row = (
        rt.model.objects.filter(integration_id=revision.integration_id, lineage_id=lineage_id)
        .values(*columns)
        .first()
    )
    return row


# Compare any two states -------------------------------------------------------------


def _other_state(request: HttpRequest, revision: Revision) -> tuple[Revision | None, str]:
    """The state `?with=` names: another revision of the integration, or now (None)."""
    raw = (request.GET.get("with") or "now").strip()
    if raw == "now":
        return None, raw
    try:
        other_pk = int(raw)
    except ValueError:
        raise Http404("Compare with a revision of this integration, or now.") from None
    other = (
        Revision.objects.select_related("tree_after")
        .filter(integration_id=revision.integration_id, pk=other_pk)
        .first()
    )
    if other is None:
        raise Http404("That revision is not of this integration.")
    return other, raw


def _compare(request: HttpRequest, pk: int):
    revision = _revision(request, pk, trees=True)
    other, raw = _other_state(request, revision)
    try:
        changes, left, right = selectors.compare_states(revision.integration, revision, other)
    except LookupError as exc:
        raise Http404(str(exc)) from None
    labels = {
        "left_label": f"#{revision.number} {revision.description or revision.get_type_display()}",
        "right_label": "Now"
        if other is None
        else f"#{other.number} {other.description or other.get_type_display()}",
    }
    return revision, other, raw, changes, (left, right), labels


@login_required
@require_GET
def compare(request: HttpRequest, pk: int) -> HttpResponse:
    """What changed from one revision's state to another's, or to now: the review's
    components, read-only."""
    revision, other, raw, changes, _states, labels = _compare(request, pk)
    integration = revision.integration
    resources = changes.get("resources") or []
    groups = group_resources(resources, revision=revision)
    link_resources(groups, "revisions:compare_resource", revision.pk, f"with={raw}")
    choices = (
        Revision.objects.filter(
            integration=integration, status=RevisionStatus.COMPLETED, tree_after__isnull=False
        )
        .exclude(pk=revision.pk)
        .order_by("-number")[:200]
    )
    context: dict[str, Any] = {
        "revision": revision,
        "other": other,
        "with": raw,
        "choices": choices,
        "integration": integration,
        "perms_ilm": allowed_actions(request.user, integration),
        "summary": summary_of(changes),
        "groups": groups,
        "revert_mode": True,
        "compare_mode": True,
        **labels,
    }
    _page_resources(request, context)
    if is_fragment(request, MORE_TARGET):
        return _render(request, "revisions/_resources.html", context)
    return _render(request, "revisions/compare.html", context)


@login_required
@require_GET
def compare_resource(request: HttpRequest, pk: int, lineage_id) -> HttpResponse:
    revision, other, raw, changes, (left, right), labels = _compare(request, pk)
    res = find_resource(changes.get("resources") or [], lineage_id)
    if res is None:
        raise Http404("This resource is the same in both states.")
    return _resource_fragment(
        request,
        revision,
        res,
        two_way=True,
        read_only=True,
        extra=labels,
        ours_body=(left.get("resources") or {}).get(str(lineage_id)),
        documents=(right, left),
    )


@login_required
@require_GET
def compare_pick(request: HttpRequest, pk: int) -> HttpResponse:
    """Two rows chosen on the Revisions tab: compare the older state with the newer."""
    integration = get_visible_integration(request.user, pk)
    tab = reverse("revisions:tab", args=[integration.pk])
    wanted = []
    for raw in request.GET.getlist("r"):
        try:
            wanted.append(int(raw))
        except ValueError:
            continue
    chosen = list(
        Revision.objects.filter(
            integration=integration,
            pk__in=wanted,
            status=RevisionStatus.COMPLETED,
            tree_after__isnull=False,
        ).order_by("number")
    )
    if len(set(wanted)) != 2 or len(chosen) != 2:
        messages.error(request, "Choose two completed revisions to compare.")
        return redirect(tab)
    older, newer = chosen
    return redirect(f"{reverse('revisions:compare', args=[older.pk])}?with={newer.pk}")


@login_required
@require_GET
def resource_diff(request: HttpRequest, pk: int, lineage_id) -> HttpResponse:
    """One resource's field diff: loaded when the reviewer expands it."""
    revision = _revision(request, pk, trees=True)
    changes = _changes(revision)
    res = find_resource((changes or {}).get("resources") or [], lineage_id)
    if res is None:
        raise Http404("This resource has no changes in this pull.")
    _with_whole_body(revision, res)
    allowed = allowed_actions(request.user, revision.integration)
    read_only = revision.status != RevisionStatus.READY or "resolve" not in allowed
    return _resource_fragment(request, revision, res, two_way=False, read_only=read_only)


def _with_whole_body(revision: Revision, res: dict[str, Any]) -> None:
    """An added or deleted resource without field rows gets its stored body as fields."""
    if res.get("fields"):
        return
    lineage_id = str(res["lineage_id"])
    if res.get("action") == "added":
        body = stored_bodies(revision, [lineage_id], ("source_tree", "tree_after")).get(lineage_id)
        full_body_fields(res, body, "theirs")
    elif res.get("action") == "deleted":
        body = stored_bodies(revision, [lineage_id], ("tree_before", "base_tree")).get(lineage_id)
        full_body_fields(res, body, "ours")


MAX_BATCH = 100


@login_required
@require_GET
def resource_diffs(request: HttpRequest, pk: int) -> HttpResponse:
    """Several resources' field diffs at once (for "expand all"), each swapped out-of-band
    into its resource's body. `ids` is a comma-separated list of lineage ids."""
    revision = _revision(request, pk, trees=True)
    wanted: list[str] = []
    for raw in (request.GET.get("ids") or "").split(",")[:MAX_BATCH]:
        try:
            wanted.append(str(uuid.UUID(raw.strip())))
        except ValueError:
            continue
    changes = _changes(revision) or {}
    by_id = {str(r.get("lineage_id")): r for r in changes.get("resources") or []}
    allowed = allowed_actions(request.user, revision.integration)
    base = {
        "revision": revision,
        "integration": revision.integration,
        "read_only": revision.status != RevisionStatus.READY or "resolve" not in allowed,
    }
    parts = []
    for lineage_id in wanted:
        res = by_id.get(lineage_id)
        if res is None:
            continue
        _with_whole_body(revision, res)
        diff = render_to_string(
            "revisions/resource.html#resource-diff",
            {**base, **_diff_context(revision, res, two_way=False)},
            request,
        )
        parts.append(
            format_html(
                '<div class="rv-res-body" id="body-{}" hx-swap-oob="true">{}</div>',
                lineage_id,
                mark_safe(diff),  # rendered by the template engine, escaped there
            )
        )
    response = HttpResponse("".join(parts))
    patch_vary_headers(response, ["HX-Request"])
    return response


# Resolving conflicts and choosing what to merge (htmx, saved at once) -----------------


def _after_resolution(request: HttpRequest, revision: Revision, lineage_id: str) -> HttpResponse:
    """The changed resource, with the summary, merge box and resource head updated
    out-of-band."""
    revision.refresh_from_db(fields=["status", "summary"])
    context = _review_context(request, revision, only=request.GET.get("only", ""))
    changes = context["changes"] or {}
    res = find_resource(changes.get("resources") or [], lineage_id)
    item = None
    for group in context.get("groups", []):
        for it in group.items:
            if it.lineage_id == str(lineage_id):
                item = it
            for child in it.children:
                if child.lineage_id == str(lineage_id):
                    item = child
    oob = render_to_string(
        "revisions/detail.html#oob-updates", {**context, "item": item, "oob": True}, request
    )
    if res is None:
        return HttpResponse(oob)
    body = render_to_string(
        "revisions/resource.html#resource-diff",
        {**context, **_diff_context(revision, res, two_way=False)},
        request,
    )
    response = HttpResponse(body + oob)
    patch_vary_headers(response, ["HX-Request"])
    return response


@login_required
@require_POST
def resolve(request: HttpRequest, pk: int) -> HttpResponse:
    revision = _revision(request, pk, trees=True)
    require(request.user, Action.RESOLVE, revision.integration)
    form = ResolveForm(request.POST)
    url = _detail_url(revision)
    if not form.is_valid():
        return _refused(request, url, "Choose “keep ours” or “take theirs” for a conflict.")
    lineage_id = str(form.cleaned_data["lineage_id"])
    try:
        services.resolution_set(
            revision=revision,
            user=request.user,
            lineage_id=lineage_id,
            path=form.cleaned_data["path"] or None,
            choose=form.cleaned_data["choose"],
        )
    except (RevisionError, ValidationError) as exc:
        return _refused(request, url, _error_text(exc))
    if not is_fragment(request):
        return redirect(f"{url}#res-{lineage_id}")
    return _after_resolution(request, revision, lineage_id)


@login_required
@require_POST
def include(request: HttpRequest, pk: int) -> HttpResponse:
    """Include a resource in the merge, or leave it out (the target keeps its own)."""
    revision = _revision(request, pk, trees=True)
    require(request.user, Action.RESOLVE, revision.integration)
    form = IncludeForm(request.POST)
    url = _detail_url(revision)
    if not form.is_valid():
        return _refused(request, url, "Say whether to include the resource or leave it out.")
    lineage_id = str(form.cleaned_data["lineage_id"])
    try:
        if form.cleaned_data["include"]:
            # A whole-resource "theirs" undoes an earlier "leave out" (the API's contract).
            services.resolution_set(
                revision=revision,
                user=request.user,
                lineage_id=lineage_id,
                path=None,
                choose="theirs",
            )
        else:
            services.resolution_set(
                revision=revision,
                user=request.user,
                lineage_id=lineage_id,
                path=None,
                choose="ours",
            )
    except (RevisionError, ValidationError) as exc:
        return _refused(request, url, _error_text(exc))
    if not is_fragment(request):
        return redirect(f"{url}#res-{lineage_id}")
    return _after_resolution(request, revision, lineage_id)


# Operations on a pull --------------------------------------------------------------------


def _operation(request: HttpRequest, pk: int, action: Action, run, success: str) -> HttpResponse:
    revision = _revision(request, pk)
    require(request.user, action, revision.integration)
    url = _detail_url(revision)
    try:
        result = run(revision)
    except (RevisionError, ValidationError) as exc:
        return _refused(request, url, _error_text(exc))
    if success:
        messages.success(request, success)
    if isinstance(result, Revision) and result.pk != revision.pk:
        url = _detail_url(result)
    return _back(request, url)


@login_required
@require_POST
def refresh(request: HttpRequest, pk: int) -> HttpResponse:
    return _operation(
        request,
        pk,
        Action.PULL,
        lambda r: services.pull_refresh(revision=r, user=request.user),
        "Recomputing the changes against the source’s current state.",
    )


@login_required
@require_POST
def merge(request: HttpRequest, pk: int) -> HttpResponse:
    return _operation(
        request,
        pk,
        Action.MERGE,
        lambda r: services.merge_start(revision=r, user=request.user),
        "Merge started. A snapshot is taken before anything changes.",
    )


@login_required
@require_POST
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    revision = _revision(request, pk)
    require(request.user, Action.CANCEL, revision.integration)
    try:
        services.revision_cancel(revision=revision, user=request.user)
    except (RevisionError, ValidationError) as exc:
        return _refused(request, _detail_url(revision), _error_text(exc))
    messages.success(
        request,
        f"{revision.get_type_display()} #{revision.number} canceled; nothing was changed.",
    )
    return _back(request, _tab_url(revision.integration))


@login_required
@require_POST
def request_approval(request: HttpRequest, pk: int) -> HttpResponse:
    form = CommentForm(request.POST)
    form.is_valid()
    comment = form.cleaned_data.get("comment", "")
    return _operation(
        request,
        pk,
        Action.REQUEST_APPROVAL,
        lambda r: approvals.approval_request(revision=r, user=request.user, comment=comment),
        "Approval requested. Approvers see it in their queue.",
    )


@login_required
@require_POST
def approve(request: HttpRequest, pk: int) -> HttpResponse:
    revision = _revision(request, pk)
    require(request.user, Action.APPROVE, revision.integration)
    approval = latest_approval(revision)
    if approval is not None and approval.requested_by_id == request.user.pk:
        raise PermissionDenied("You asked for this approval; another approver must give it.")
    form = CommentForm(request.POST)
    form.is_valid()
    try:
        approvals.approval_approve(
            revision=revision, user=request.user, comment=form.cleaned_data.get("comment", "")
        )
    except (RevisionError, ValidationError) as exc:
        if is_fragment(request):
            return _refused(request, _detail_url(revision), _error_text(exc))
        # Said on the page itself, with the approver's comment still in its box: a refusal
        # must not cost them what they wrote.
        messages.error(request, _error_text(exc))
        revision = _revision(request, pk, trees=True)
        context = _review_context(request, revision)
        if "groups" in context:
            _page_resources(request, context)
        context["decision_comment"] = form.cleaned_data.get("comment", "")
        return _render(request, "revisions/detail.html", context, status=409)
    if revision.type == RevisionType.REVERT:
        messages.success(request, "Approved. The revert runs now.")
    else:
        messages.success(request, "Approved. The merge runs now, in your name.")
    return _back(request, _detail_url(revision))


@login_required
@require_POST
def reject(request: HttpRequest, pk: int) -> HttpResponse:
    revision = _revision(request, pk)
    require(request.user, Action.APPROVE, revision.integration)
    form = RejectForm(request.POST)
    if not form.is_valid():
        return _refused(request, _detail_url(revision), " ".join(form.errors["comment"]))
    try:
        approvals.approval_reject(
            revision=revision, user=request.user, comment=form.cleaned_data["comment"]
        )
    except (RevisionError, ValidationError) as exc:
        return _refused(request, _detail_url(revision), _error_text(exc))
    if revision.type == RevisionType.REVERT:
        messages.success(request, "Rejected. The revert is canceled; nothing was changed.")
    else:
        messages.success(request, "Rejected. The author can change the pull and ask again.")
    return _back(request, _detail_url(revision))


# Revert ---------------------------------------------------------------------------------


def _revert_side(request: HttpRequest) -> str:
    # Which sides a revision has is the service's rule: a side it refuses shows as the
    # form's error (revisions.services.revert_target).
    return request.POST.get("to") or request.GET.get("to") or "after"


@login_required
def revert(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: preview exactly what the revert changes. POST: start it."""
    revision = _revision(request, pk, trees=True)
    require(request.user, Action.REVERT, revision.integration)
    side = _revert_side(request)
    form = RevertForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            new = services.revert_start(
                revision=revision,
                user=request.user,
                side=side,
                description=form.cleaned_data["description"],
                version=form.cleaned_data["version"],
            )
        except StaleReview as exc:
            form.add_error(
                None, f"{exc} The changes below are what it would change now; confirm again."
            )
        except (RevisionError, ValidationError) as exc:
            form.add_error(None, _error_text(exc))
        else:
            if new.status == RevisionStatus.AWAITING_APPROVAL:
                messages.info(
                    request,
                    f"Revert #{new.number} waits for an approver: {revision.integration.name} "
                    "is protected, so an approver rolls it back.",
                )
            else:
                messages.success(request, f"Revert #{new.number} started.")
            return _back(request, _detail_url(new))
    integration = revision.integration
    # Read before the preview: whatever changes after it makes the revert refuse to run.
    integration.refresh_from_db(fields=["version"])
    blocked = selectors.operation_blocker(integration)
    try:
        preview = services.revert_preview(revision=revision, side=side)
        nothing = None
    except RevisionError as exc:
        preview, nothing = empty_changeset(), str(exc)
    except ValidationError as exc:  # a side this revision does not have
        refused = _error_text(exc)
        preview, nothing = empty_changeset(), refused
    else:
        refused = ""
    resources = preview.get("resources") or []
    if not resources and nothing is None:
        nothing = "The integration is already in this state: there is nothing to revert."
    groups = group_resources(resources, revision=revision)
    link_resources(groups, "revisions:revert_resource", revision.pk, f"to={side}")
    context: dict[str, Any] = {
        "revision": revision,
        "integration": revision.integration,
        "perms_ilm": allowed_actions(request.user, revision.integration),
        "side": side,
        "form": form,
        "summary": summary_of(preview),
        "groups": groups,
        "nothing": nothing,
        "refused": refused,
        "revert_mode": True,
        "version": integration.version,
        "blocked": blocked,
        "caches_back": _cache_names(resources, "added"),
        "caches_gone": _cache_names(resources, "deleted"),
    }
    _page_resources(request, context)
    if is_fragment(request, MORE_TARGET):
        return _render(request, "revisions/_resources.html", context)
    failed = form.errors or refused
    return _render(request, "revisions/revert.html", context, status=400 if failed else 200)


def _cache_names(resources: list[dict[str, Any]], action: str) -> list[str]:
    """Lookup caches a revert brings back ("added": they come back empty) or removes."""
    return sorted(
        str(r.get("name") or r.get("lineage_id"))
        for r in resources
        if r.get("type") == "lookup_cache" and r.get("action") == action
    )


@login_required
@require_GET
def revert_resource_diff(request: HttpRequest, pk: int, lineage_id) -> HttpResponse:
    revision = _revision(request, pk, trees=True)
    require(request.user, Action.REVERT, revision.integration)
    side = _revert_side(request)
    try:
        preview = services.revert_preview(revision=revision, side=side)
    except (RevisionError, ValidationError):
        preview = empty_changeset()
    res = find_resource(preview.get("resources") or [], lineage_id)
    if res is None:
        raise Http404("The revert does not change this resource.")
    return _resource_fragment(
        request,
        revision,
        res,
        two_way=True,
        read_only=True,
        extra={"side": side},
        documents=documents_of_trees(services.revert_target(revision, side)),
    )


# Approvals queue -------------------------------------------------------------------------


@login_required
@require_GET
def approval_queue(request: HttpRequest) -> HttpResponse:
    require(request.user, Action.APPROVE)
    revisions = list(
        selectors.approval_queue(request.user).select_related(
            "integration", "created_by", "source_integration"
        )
    )
    pending = {}
    if revisions:
        from .models import Approval, ApprovalDecision

        for a in Approval.objects.filter(
            revision__in=revisions, decision=ApprovalDecision.PENDING
        ).select_related("requested_by"):
            pending.setdefault(a.revision_id, a)
    rows = [
        {
            "revision": r,
            "approval": pending.get(r.pk),
            "own": r.is_own,
        }
        for r in revisions
    ]
    return _render(request, "revisions/approvals.html", {"rows": rows})


# Pulls into many ------------------------------------------------------------------------


@login_required
def pull_into(request: HttpRequest, pk: int) -> HttpResponse:
    """ "Pull into…": pick family members (with how each stands against this one) and open
    one pull into each; then the batch page."""
    source = get_visible_integration(request.user, pk)
    require(request.user, Action.PULL)
    members = []
    for target in selectors.family_of(source, request.user).order_by("environment", "name", "pk"):
        refused = ""
        if not can(request.user, Action.PULL, target):
            refused = "You may not pull into it."
        else:
            refused = selectors.operation_blocker(target) or ""
        members.append(
            {
                "integration": target,
                "sync": {
                    "state": batches.sync_against(target, source),
                    "source": source,
                    "source_name": source.name,
                },
                "refused": refused,
            }
        )
    errors: list[str] = []
    chosen = request.POST.getlist("targets") if request.method == "POST" else []
    description = request.POST.get("description", "") if request.method == "POST" else ""
    if request.method == "POST":
        try:
            batch = batches.pull_batch_create(
                source=source, targets=chosen, user=request.user, description=description
            )
        except ValidationError as exc:
            errors = exc.messages
        else:
            opened = sum(1 for item in batch.items.all() if item.revision_id)
            messages.success(
                request, f"{opened} pull{'s' if opened != 1 else ''} opened from {source.name}."
            )
            return _back(request, reverse("revisions:batch", args=[batch.pk]))
    return _render(
        request,
        "revisions/pull_into.html",
        {
            "integration": source,
            "members": members,
            "errors": errors,
            "chosen": {str(c) for c in chosen},
            "description": description,
            "perms_ilm": allowed_actions(request.user, source),
        },
        status=400 if errors else 200,
    )


def _batch_or_404(request: HttpRequest, pk: int):
    batch = get_object_or_404(PullBatch.objects.select_related("source", "created_by"), pk=pk)
    if batch.source is None or not can(request.user, Action.VIEW, batch.source):
        raise Http404("No such pull batch.")
    return batch


def _batch_context(request: HttpRequest, batch) -> dict[str, Any]:
    rows = []
    for row in batches.pull_batch_rows(batch):
        visible = row.item.target is None or can(request.user, Action.VIEW, row.item.target)
        rows.append({"row": row, "visible": visible})
    working = any(r["row"].status in ACTIVE_STATUSES for r in rows if r["visible"])
    return {
        "batch": batch,
        "integration": batch.source,
        "rows": rows,
        "working": working,
        "clean": sum(1 for r in rows if r["visible"] and r["row"].clean),
    }


@login_required
def pull_batch(request: HttpRequest, pk: int) -> HttpResponse:
    """One row per target: the pull's status, counts, conflicts and review; polls (the
    table alone) while pulls are still being computed."""
    batch = _batch_or_404(request, pk)
    context = _batch_context(request, batch)
    response = _render(request, "revisions/batch.html", context, partial="batch-table")
    if is_fragment(request) and not context["working"]:
        response.status_code = HTMX_STOP_POLLING
    return response


@login_required
@require_POST
def pull_batch_merge_clean(request: HttpRequest, pk: int) -> HttpResponse:
    batch = _batch_or_404(request, pk)
    require(request.user, Action.MERGE)  # the role; each target's own rule is per row
    taken = batches.pull_batch_merge_clean(batch=batch, user=request.user)
    merging, asked = taken["merging"], taken["asked"]
    text = f"{merging} merge{'s' if merging != 1 else ''} started"
    if asked:
        text += f", {asked} sent for approval"
    messages.success(request, f"{text}; each row says what happened to its pull.")
    return _back(request, reverse("revisions:batch", args=[batch.pk]))
