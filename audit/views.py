"""The audit log pages: global (administrators) and the Audit tab of an integration.

Thin: load what the user may see (not visible → 404), check the action (not allowed →
403), filter with the one FilterSet, page with a cursor, render. One URL serves the page
and its htmx fragment (the results region, or one event's field changes).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field as dc_field
from html import escape
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import get_template
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from integrations.filters import errors_text
from integrations.fragments import is_fragment
from integrations.models import Integration
from integrations.permissions import Action, get_visible_integration, require
from integrations.reference_names import (
    Ref,
    names_for,
    referenced_ids,
    refs_of_recorded,
    shown_value,
)
from integrations.resources import RESOURCE_TYPES, is_code_field, is_described_field
from integrations.value_diff import ValueDiff, as_text, value_diff

from . import selectors
from .capture import resource_type_choices
from .csv_stream import csv_response
from .filters import EventFilter
from .models import SOURCE_CHOICES, Event
from .models import Action as EventAction

RESULTS_TARGET = "audit-results"
TYPE_LABELS = dict(resource_type_choices())
UNKNOWN_REF = "(a resource this integration never had)"


@dataclass
class Browse:
    filterset: EventFilter
    page: selectors.ListPage
    error: bool


def _browse(request: HttpRequest, base: QuerySet[Event], *, head: bool = False) -> Browse:
    fs = EventFilter(request.GET or None, queryset=base)
    if fs.is_bound and not fs.is_valid():
        return Browse(fs, selectors.ListPage([], None), True)
    events = fs.qs if fs.is_bound else base
    try:
        page = selectors.list_page_of(events, cursor=request.GET.get("cursor") or None, head=head)
    except ValidationError as exc:
        fs.form.add_error(None, exc.messages[0])
        return Browse(fs, selectors.ListPage([], None), True)
    return Browse(fs, page, False)


SOURCE_LABELS = dict(Event._meta.get_field("source").choices)
ACTION_LABELS = dict(EventAction.choices)
TYPE_CHOICES = resource_type_choices()


@functools.cache
def _event_url_pattern() -> str:
    """The URL of one event with "{}" for its id: resolved once, not once per row."""
    return reverse("audit:event", args=[987654321]).replace("987654321", "{}")


def _row(e: Any, event_url: str) -> dict[str, Any]:
    """What one row of the list shows (`e`: a row of selectors.list_page_of), worked out
    in Python: the template only places it (a page is 50 rows; tags and filters per row
    were most of its time, make bench fig 6)."""
    at = timezone.localtime(e.at)
    n = e.change_count
    return {
        "pk": e.pk,
        "action": e.action,
        "action_label": ACTION_LABELS.get(e.action, e.action),
        "url": event_url.format(e.pk),
        "at_iso": at.isoformat(),
        "at_text": at.strftime("%Y-%m-%d %H:%M:%S"),
        "username": e.username,
        "source": e.source,
        "source_label": SOURCE_LABELS.get(e.source, e.source),
        "integration_id": e.integration_id,
        "integration_name": e.integration_name or e.integration_id,
        "type_label": TYPE_LABELS.get(e.resource_type, e.resource_type),
        "resource_name": e.resource_name or "—",
        "resource_id": e.resource_id,
        "changes_text": f"{n} field{'s' if n != 1 else ''}" if n else "",
        "operation_id": e.operation_id,
        "operation_short": str(e.operation_id)[:8],
    }


ROW_TEMPLATE = "audit/_event_row.html"
ROW_CACHE_SECONDS = 24 * 3600


def _row_key(e: Any, *, here: str, global_log: bool) -> str:
    return f"audit-row:1:{e.pk}:{e.hash}:{int(global_log)}:{here}"


def _rows(
    events: list[Any], cached: dict[str, Any], *, here: str, global_log: bool
) -> list[dict[str, Any]]:
    """The list's rows, each with its HTML. An event never changes (append-only), so its
    row is rendered once and cached, keyed by its id and hash (which covers everything
    the row shows) and the page it is on; `cached` holds what the cache had of them."""
    rows = []
    fresh = {}
    template = None
    for e in events:
        key = _row_key(e, here=here, global_log=global_log)
        html = cached.get(key)
        if html is None:
            template = template or get_template(ROW_TEMPLATE)
            row = _row(e, _event_url_pattern())
            html = template.render({"e": row, "here": here, "global_log": global_log})
            fresh[key] = html
        rows.append({"event": e, "html": html})
    if fresh:
        cache.set_many(fresh, ROW_CACHE_SECONDS)
    return rows


def _options(choices: Iterable[tuple[Any, str]], chosen: Any) -> str:
    """The <option>s of a filter's <select>, the chosen one selected. Built here: a
    template loop per option was a large part of the page (make bench fig 6)."""
    chosen = "" if chosen is None else str(chosen)
    # Django's escape is html.escape: the same text, without its lazy-string wrapper.
    return mark_safe(  # every value and label is escaped here
        "".join(
            f'<option value="{escape(str(key))}"{" selected" if str(key) == chosen else ""}>'
            f"{escape(str(label))}</option>"
            for key, label in choices
        )
    )


def _context(
    request: HttpRequest, browse: Browse, *, here: str, csv_url: str, global_log: bool = False
) -> dict[str, Any]:
    query = request.GET.copy()
    query.pop("cursor", None)
    filters = query.urlencode()
    older = None
    if browse.page.next_cursor:
        q = query.copy()
        q["cursor"] = browse.page.next_cursor
        older = f"{here}?{q.urlencode()}"
    events = browse.page.events
    # One cache round trip: the page's rows and, on the global log, its filter choices.
    keys = [_row_key(e, here=here, global_log=global_log) for e in events]
    if global_log:
        keys.append(selectors.FACETS_KEY)
    cached = cache.get_many(keys) if keys else {}
    rows = _rows(events, cached, here=here, global_log=global_log)
    chosen = browse.filterset.form.data
    context = {
        "form": browse.filterset.form,
        "events": rows,
        # Each row was rendered (and escaped) by the row's template.
        "events_html": mark_safe("".join(r["html"] for r in rows)),
        "older_url": older,
        "first_url": f"{here}?{filters}" if filters else here,
        "is_later_page": bool(request.GET.get("cursor")),
        "filtered": bool(filters),
        "filters": filters,
        "here": here,
        "csv_url": f"{csv_url}?{filters}" if filters else csv_url,
        "operation": request.GET.get("operation") if not browse.error else None,
        "type_options": _options(TYPE_CHOICES, chosen.get("resource_type")),
        "action_options": _options(EventAction.choices, chosen.get("action")),
        "source_options": _options(SOURCE_CHOICES, chosen.get("source")),
    }
    if global_log:
        facets = selectors.facets_for(browse.page.head, cached.get(selectors.FACETS_KEY))
        context["integration_options"] = _options(facets.integrations, chosen.get("integration"))
        context["usernames"] = facets.usernames
    return context


def _respond(request, response: HttpResponse) -> HttpResponse:
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


@login_required
@require_GET
def log(request: HttpRequest) -> HttpResponse:
    """The global audit log: every event, administrators only."""
    require(request.user, Action.VIEW_GLOBAL_AUDIT)
    browse = _browse(request, Event.objects.all(), head=True)
    context = _context(
        request, browse, here=reverse("audit:log"), csv_url=reverse("audit:csv"), global_log=True
    )
    context["global_log"] = True
    status = 400 if browse.error else 200
    if is_fragment(request, RESULTS_TARGET):
        return _respond(request, render(request, "audit/_results.html", context, status=status))
    return _respond(request, render(request, "audit/log.html", context, status=status))


@login_required
@require_GET
def log_csv(request: HttpRequest) -> HttpResponse:
    require(request.user, Action.VIEW_GLOBAL_AUDIT)
    return _csv(request, Event.objects.all(), "audit-log.csv")


def _visible_integration(request: HttpRequest, pk: int) -> Integration:
    integration = get_visible_integration(request.user, pk)
    require(request.user, Action.VIEW_AUDIT, integration)
    return integration


def _without_integration(request: HttpRequest) -> HttpRequest:
    # The tab is one integration's log: an `integration` parameter cannot widen it.
    if "integration" in request.GET:
        request.GET = request.GET.copy()
        request.GET.pop("integration")
    return request


@login_required
@require_GET
def integration_log(request: HttpRequest, pk: int) -> HttpResponse:
    """The Audit tab: one integration's events, for anyone who can see the integration."""
    from integrations.views import render_integration_tab

    integration = _visible_integration(request, pk)
    request = _without_integration(request)
    browse = _browse(request, selectors.events_of(integration))
    context = _context(
        request,
        browse,
        here=reverse("audit:integration", args=[pk]),
        csv_url=reverse("audit:integration_csv", args=[pk]),
    )
    context["integration"] = integration
    status = 400 if browse.error else 200
    if is_fragment(request, RESULTS_TARGET):
        return _respond(request, render(request, "audit/_results.html", context, status=status))
    return _respond(
        request,
        render_integration_tab(
            request,
            integration,
            tab="audit",
            template="audit/integration_tab.html",
            context=context,
            status=status,
        ),
    )


@login_required
@require_GET
def integration_log_csv(request: HttpRequest, pk: int) -> HttpResponse:
    integration = _visible_integration(request, pk)
    request = _without_integration(request)
    return _csv(
        request, selectors.events_of(integration), f"audit-integration-{integration.pk}.csv"
    )


def _csv(request: HttpRequest, base: QuerySet[Event], filename: str) -> HttpResponse:
    fs = EventFilter(request.GET or None, queryset=base)
    if fs.is_bound and not fs.is_valid():
        return HttpResponse(errors_text(fs), status=400, content_type="text/plain; charset=utf-8")
    return csv_response(fs.qs if fs.is_bound else base, filename=filename)


# One event's field changes ---------------------------------------------------------------


@dataclass
class ChangeRow:
    field: str
    old: Any
    new: Any
    diff: ValueDiff | None = None
    # A created or deleted resource has one value per field, not a before and an after.
    value_text: str = ""
    multiline: bool = False
    # What the values refer to, by name: linked while it exists, "deleted …" once not.
    refs: list[Ref] = dc_field(default_factory=list)
    value_ref: Ref | None = None
    # A field its type describes in words (a flow's cron schedule): shown beside it.
    schedule: bool = False


def _references(event: Event) -> tuple[dict[str, Ref], dict[str, Ref]]:
    """What the event's values refer to: lineage ids in configs (a mapping's cache, a
    hook's script) and foreign keys recorded as "Name (#pk)" (a step's flow, connection),
    each {value: Ref}. The names are looked up in the event's integration."""
    changes = event.changes or []
    rt = RESOURCE_TYPES.get(event.resource_type)
    by_id: dict[str, Ref] = {}
    if event.integration_id:
        ids = referenced_ids(*(c.get(side) for c in changes for side in ("old", "new")))
        by_id = names_for(ids, [event.integration_id])
    recorded: dict[str, Ref] = {}
    for c in changes:
        target = rt.refs.get(str(c.get("field"))) if rt else None
        if target:
            recorded.update(refs_of_recorded(target, (c.get("old"), c.get("new"))))
    return by_id, recorded


def _refs_in(value: Any, by_id: dict[str, Ref], recorded: dict[str, Ref]) -> list[Ref]:
    if isinstance(value, str) and value in recorded:
        return [recorded[value]]
    return [by_id[i] for i in sorted(referenced_ids(value)) if i in by_id]


def change_rows(event: Event) -> list[ChangeRow]:
    """The event's field changes as people read them: references by name, never ids."""
    one_sided = event.action in (EventAction.CREATED, EventAction.DELETED)
    by_id, recorded = _references(event)

    def shown(value: Any) -> Any:
        if isinstance(value, str) and value in recorded:
            return str(recorded[value])
        return shown_value(value, by_id, unknown=UNKNOWN_REF)

    rows = []
    for change in event.changes or []:
        field = str(change.get("field", ""))
        raw_old, raw_new = change.get("old"), change.get("new")
        old, new = shown(raw_old), shown(raw_new)
        schedule = is_described_field(event.resource_type, field)
        refs: list[Ref] = []
        for ref in _refs_in(raw_new, by_id, recorded) + _refs_in(raw_old, by_id, recorded):
            if ref not in refs:
                refs.append(ref)
        if one_sided:
            raw = raw_new if event.action == EventAction.CREATED else raw_old
            text = as_text(new if event.action == EventAction.CREATED else old)
            row = ChangeRow(
                field,
                old,
                new,
                value_text=text,
                multiline="\n" in text,
                refs=refs,
                schedule=schedule,
            )
            if isinstance(raw, str) and raw in recorded:  # the value is the reference
                row.value_ref, row.refs = recorded[raw], []
            rows.append(row)
            continue
        code = is_code_field(event.resource_type, field)
        diff = value_diff(old, new, code=code, path=field)
        rows.append(ChangeRow(field, old, new, diff=diff, refs=refs, schedule=schedule))
    return rows


@login_required
@require_GET
def event_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One event with its field changes: the expanded row (htmx) or a page of its own."""
    event = selectors.events_visible_to(request.user).filter(pk=pk).first()
    if event is None:
        raise Http404("No such audit event.")
    context = {
        "event": event,
        "type_label": TYPE_LABELS.get(event.resource_type, event.resource_type),
        "rows": change_rows(event),
        "one_sided": event.action in (EventAction.CREATED, EventAction.DELETED),
        "operation_short": str(event.operation_id)[:8],
    }
    if is_fragment(request):
        return _respond(request, render(request, "audit/_changes.html", context))
    return _respond(request, render(request, "audit/event.html", context))
