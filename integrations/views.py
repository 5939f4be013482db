"""The integration pages: the tile home, the integration page with its tabs, and editors.

Thin: each view loads what the user may see (unseen integration → 404), checks the
action in the permission table (refused → 403), hands parsed input to a service and
renders. Forms post normally and redirect; tabs and the home filters swap with htmx.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST

from . import services
from .filters import IntegrationFilter, shown_rows
from .forms import (
    CacheEntryForm,
    CacheUploadForm,
    ConfirmDeleteForm,
    ConnectionForm,
    FlowForm,
    GrantFormSet,
    IntegrationCreateForm,
    IntegrationSettingsForm,
    LookupCacheForm,
    ProtectionForm,
    ScriptForm,
    StepForm,
    apply_service_errors,
)
from .fragments import is_fragment
from .models import (
    OPERATION_REASON_PREFIX,
    Connection,
    Environment,
    Flow,
    FlowStep,
    Integration,
    LookupCache,
    LookupCacheEntry,
    Script,
)
from .permissions import (
    Action,
    allowed_actions,
    can,
    get_visible_integration,
    require,
    visible_integrations,
)
from .reference_names import names_for, referenced_ids
from .resources import RESOURCE_TYPES, resource_url
from .selectors import namesake_warning, with_counts
from .tiles import home_tiles

TAB_TARGET = "tab-content"
TILES_TARGET = "tiles"


# Home ----------------------------------------------------------------------------------


@login_required
def home(request: HttpRequest) -> HttpResponse:
    user = request.user
    visible = visible_integrations(user)
    params = request.GET
    if "q" in params and "name" not in params:  # a link from before the search was `name`
        params = params.copy()
        params["name"] = params.pop("q")[-1]
    fs = IntegrationFilter(params or None, queryset=visible)
    integrations = shown_rows(fs)
    query = params.get("name", "").strip()
    environment = params.get("environment", "")
    # Counts only for the tiles the cache does not hold (integrations.tiles).
    integrations = integrations.select_related("cloned_from").order_by("name", "pk")
    per_environment = dict(visible.order_by().values_list("environment").annotate(n=Count("pk")))
    environments = [("", "All", sum(per_environment.values()))] + [
        (value, label, per_environment.get(value, 0)) for value, label in Environment.choices
    ]
    integrations = list(integrations)
    context = {
        "environments": environments,
        "environment": environment,
        "integrations": integrations,
        "tiles": home_tiles(integrations, user),
        "filter_form": fs.form,
        "filtered": any(v for k, v in params.items() if k in IntegrationFilter.Meta.fields),
        "query": query,
        "may_create": can(user, Action.CREATE_INTEGRATION),
    }
    template = "integrations/home.html"
    if is_fragment(request, TILES_TARGET):
        template += "#tiles"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


@login_required
def sync_badge(request: HttpRequest, pk: int) -> HttpResponse:
    """A clone's sync badge, loaded by its home tile when it scrolls into view.

    Working out the sync state compares documents; done per tile inline it would make
    the home page's cost grow with the number of clones.
    """
    integration = get_visible_integration(request.user, pk)
    return render(request, "integrations/_sync_badge_slot.html", {"integration": integration})


# The integration page and its tabs ----------------------------------------------------


@dataclass(frozen=True)
class Tab:
    key: str
    label: str
    url_name: str
    count_key: str | None = None


TABS: tuple[Tab, ...] = (
    Tab("flows", "Flows", "integrations:flows", "flow_count"),
    Tab("connections", "Connections", "integrations:connections", "connection_count"),
    Tab("caches", "Lookup caches", "integrations:caches", "cache_count"),
    Tab("scripts", "Scripts", "integrations:scripts", "script_count"),
    # The floors above add these pages; named by URL, so integrations imports none of them.
    Tab("runs", "Runs", "runs:tab"),
    Tab("errors", "Errors", "runs:errors"),
    Tab("alerts", "Alerts", "runs:alerts"),
    Tab("revisions", "Revisions", "revisions:tab"),
    Tab("audit", "Audit", "audit:integration"),
    Tab("settings", "Settings", "integrations:settings"),
)


def tab_counts(integration: Integration) -> dict[str, int]:
    """The tab bar's resource counts, kept in the cache per integration version: adding or
    removing a resource raises the version (integrations/versioning.py), so a key made of
    the version and `updated_at` never answers stale counts. Both are read afresh: the
    view may have written since it loaded `integration` (one small query instead of four
    counts)."""
    at = Integration.objects.filter(pk=integration.pk).values_list("version", "updated_at")
    version, updated_at = at.first() or (None, None)
    key = f"ilm:tab-counts:{integration.pk}:{version}:{updated_at and updated_at.timestamp()}"
    counts = cache.get(key)
    if counts is None:
        counts = (
            with_counts(Integration.objects.filter(pk=integration.pk))
            .values("flow_count", "connection_count", "cache_count", "script_count")
            .first()
            or {}
        )
        cache.set(key, counts, 24 * 3600)
    return counts


def integration_tabs(integration: Integration, active: str) -> list[dict[str, Any]]:
    counts = tab_counts(integration)
    tabs = []
    for tab in TABS:
        tabs.append(
            {
                "key": tab.key,
                "label": tab.label,
                "url": reverse(tab.url_name, args=[integration.pk]),
                "count": counts.get(tab.count_key) if tab.count_key else None,
                "active": tab.key == active,
            }
        )
    return tabs


def render_integration_tab(
    request: HttpRequest,
    integration: Integration,
    *,
    tab: str,
    template: str,
    context: dict[str, Any],
    status: int = 200,
) -> HttpResponse:
    """Render a tab of the integration page.

    `template` extends `integrations/integration_base.html` and fills `tab_content`. A
    normal request gets the whole page; an htmx request aimed at the tab area
    (`hx-target="#tab-content"`) gets only the tab's content, plus the tab bar swapped
    out-of-band and the page title, so switching tabs works with the back button.
    """
    tabs = integration_tabs(integration, tab)
    active = next((t for t in tabs if t["active"]), None)
    fragment = is_fragment(request, TAB_TARGET)
    ctx = {
        "integration": integration,
        "tabs": tabs,
        "active_tab": tab,
        "tab_title": active["label"] if active else tab.title(),
        "perms_ilm": allowed_actions(request.user, integration),
        **context,
        "integration_layout": (
            "integrations/_tab_fragment.html" if fragment else "integrations/_integration_page.html"
        ),
    }
    response = render(request, template, ctx, status=status)
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


def _integration(request: HttpRequest, pk: int, action: Action | None = None) -> Integration:
    integration = get_visible_integration(request.user, pk)
    if action is not None:
        require(request.user, action, integration)
    return integration


@login_required
def flows_tab(request: HttpRequest, pk: int) -> HttpResponse:
    integration = _integration(request, pk)
    flows = integration.flows.annotate(step_count=Count("steps")).order_by("name", "pk")
    return render_integration_tab(
        request,
        integration,
        tab="flows",
        template="integrations/flows_tab.html",
        context={"flows": flows},
    )


@login_required
def connections_tab(request: HttpRequest, pk: int) -> HttpResponse:
    integration = _integration(request, pk)
    connections = integration.connections.annotate(step_count=Count("steps")).order_by("name", "pk")
    return render_integration_tab(
        request,
        integration,
        tab="connections",
        template="integrations/connections_tab.html",
        context={"connections": connections},
    )


@login_required
def caches_tab(request: HttpRequest, pk: int) -> HttpResponse:
    integration = _integration(request, pk)
    # A cache a clone, merge or revert brought into being has its settings and no entries.
    by_operation = LookupCache.history.model.objects.filter(
        id=OuterRef("pk"),
        history_type="+",
        history_change_reason__startswith=OPERATION_REASON_PREFIX,
    )
    caches = list(
        integration.lookupcaches.annotate(
            entry_count=Count("entries"),
            data_bytes=Coalesce(Sum("entries__size"), 0),
            made_by_operation=Exists(by_operation),
        ).order_by("name", "pk")
    )
    return render_integration_tab(
        request,
        integration,
        tab="caches",
        template="integrations/caches_tab.html",
        # The total is the sum of the per-cache sizes already fetched: no second query.
        context={
            "caches": caches,
            "total_bytes": sum(c.data_bytes for c in caches),
            "created_empty": [c for c in caches if c.made_by_operation and not c.entry_count],
        },
    )


@login_required
def scripts_tab(request: HttpRequest, pk: int) -> HttpResponse:
    integration = _integration(request, pk)
    return render_integration_tab(
        request,
        integration,
        tab="scripts",
        template="integrations/scripts_tab.html",
        context={"scripts": integration.scripts.order_by("name", "pk")},
    )


# Integrations: create, settings, access, delete ---------------------------------------


@login_required
def integration_create(request: HttpRequest) -> HttpResponse:
    require(request.user, Action.CREATE_INTEGRATION)
    form = IntegrationCreateForm(
        request.POST or None,
        may_choose_environment=can(request.user, Action.CLONE_TO_PRODUCTION),
    )
    if request.method == "POST" and form.is_valid():
        try:
            integration = services.integration_create(user=request.user, **form.service_data())
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(
                request, f"{integration.name} created. Add its connections and flows next."
            )
            _warn_namesakes(request, integration)
            return redirect("integrations:flows", pk=integration.pk)
    return render(
        request,
        "integrations/integration_form.html",
        {"form": form},
        status=400 if form.is_bound else 200,
    )


def _warn_namesakes(request: HttpRequest, integration: Integration) -> None:
    warning = namesake_warning(request.user, integration)
    if warning:
        messages.warning(request, warning)


def _settings_context(request: HttpRequest, integration: Integration, **extra: Any) -> dict:
    user = request.user
    may_edit = can(user, Action.EDIT, integration)
    context = {
        "documentation": integration.documentation,
        "may_edit": may_edit,
        "may_manage_access": can(user, Action.MANAGE_ACCESS, integration),
        "may_delete": can(user, Action.DELETE_INTEGRATION, integration),
        "grants": integration.grants.select_related("user").order_by("user__username"),
        # Turning protection off is for administrators; turning it on, for editors.
        "may_unprotect": integration.protected and can(user, Action.UNPROTECT, integration),
        "may_protect": not integration.protected and may_edit,
    }
    if (context["may_unprotect"] or context["may_protect"]) and "protection_form" not in extra:
        context["protection_form"] = ProtectionForm(
            initial={"protected": not integration.protected}
        )
    if may_edit and "form" not in extra:
        context["form"] = IntegrationSettingsForm(
            integration=integration,
            may_change_environment=can(user, Action.CHANGE_ENVIRONMENT, integration),
        )
    if context["may_manage_access"] and "grant_formset" not in extra:
        context["grant_formset"] = GrantFormSet(
            initial=[{"user": g.user.username, "level": g.level} for g in context["grants"]],
            prefix="grants",
        )
    context.update(extra)
    return context


@login_required
def settings_tab(request: HttpRequest, pk: int) -> HttpResponse:
    integration = _integration(request, pk)
    status = 200
    extra: dict[str, Any] = {}
    if request.method == "POST":
        require(request.user, Action.EDIT, integration)
        may_env = can(request.user, Action.CHANGE_ENVIRONMENT, integration)
        form = IntegrationSettingsForm(
            request.POST, integration=integration, may_change_environment=may_env
        )
        if form.is_valid():
            data = form.service_data()
            if not may_env:
                data.pop("environment", None)
            version = integration.version
            try:
                services.integration_update(integration=integration, data=data)
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                if integration.version == version:
                    messages.info(request, "Nothing changed.")
                else:
                    messages.success(request, "Settings saved.")
                    _warn_namesakes(request, integration)
                return redirect("integrations:settings", pk=integration.pk)
        integration.refresh_from_db()
        extra["form"] = form
        status = 400
    return render_integration_tab(
        request,
        integration,
        tab="settings",
        template="integrations/settings_tab.html",
        context=_settings_context(request, integration, **extra),
        status=status,
    )


@login_required
@require_POST
def protection_update(request: HttpRequest, pk: int) -> HttpResponse:
    """Turn change control on (editors) or off (administrators, with a reason)."""
    integration = _integration(request, pk)
    form = ProtectionForm(request.POST)
    if form.is_valid():
        data = form.service_data()
        if data["protected"]:
            require(request.user, Action.EDIT, integration)
        elif integration.protected:
            require(request.user, Action.UNPROTECT, integration)
        try:
            services.integration_protection_set(integration=integration, user=request.user, **data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            if data["protected"]:
                messages.success(
                    request, f"{integration.name} is protected: changes land through pulls."
                )
            else:
                messages.warning(
                    request,
                    f"Protection of {integration.name} is off: direct edits are allowed until "
                    "it is turned on again.",
                )
            return redirect("integrations:settings", pk=integration.pk)
    return render_integration_tab(
        request,
        integration,
        tab="settings",
        template="integrations/settings_tab.html",
        context=_settings_context(request, integration, protection_form=form),
        status=400,
    )


@login_required
@require_POST
def docs_preview(request: HttpRequest, pk: int) -> HttpResponse:
    """The documentation as it will look, rendered (sanitised) while it is typed."""
    integration = _integration(request, pk, Action.EDIT)
    return render(
        request,
        "integrations/settings_tab.html#docs",
        {
            "integration": integration,
            "documentation": request.POST.get("documentation", ""),
            "form": True,
        },
    )


@login_required
@require_POST
def access_update(request: HttpRequest, pk: int) -> HttpResponse:
    integration = _integration(request, pk, Action.MANAGE_ACCESS)
    formset = GrantFormSet(request.POST, prefix="grants")
    if formset.is_valid():
        try:
            services.access_set(integration=integration, grants=formset.grants())
        except ValidationError as exc:
            formset._non_form_errors = formset.error_class(exc.messages)
        else:
            messages.success(request, "Access saved.")
            return redirect("integrations:settings", pk=integration.pk)
    return render_integration_tab(
        request,
        integration,
        tab="settings",
        template="integrations/settings_tab.html",
        context=_settings_context(request, integration, grant_formset=formset),
        status=400,
    )


@login_required
def integration_delete(request: HttpRequest, pk: int) -> HttpResponse:
    integration = _integration(request, pk, Action.DELETE_INTEGRATION)
    form = ConfirmDeleteForm(request.POST or None, integration=integration)
    if request.method == "POST" and form.is_valid():
        name = integration.name
        services.integration_delete(integration=integration)
        messages.success(request, f"{name} deleted.")
        return redirect("integrations:home")
    return render_integration_tab(
        request,
        integration,
        tab="settings",
        template="integrations/integration_delete.html",
        context={"form": form},
        status=400 if form.is_bound else 200,
    )


# Resources: connections, flows, scripts, lookup caches --------------------------------


@dataclass(frozen=True)
class ResourceUI:
    """How the pages edit one resource type: its service type key, form and tab."""

    type_key: str
    model: type
    form: type
    tab: str
    label: str
    hint: str


RESOURCE_UI: dict[str, ResourceUI] = {
    "connections": ResourceUI(
        "connection",
        Connection,
        ConnectionForm,
        "connections",
        "connection",
        "An endpoint flows read from or write to.",
    ),
    "flows": ResourceUI(
        "flow", Flow, FlowForm, "flows", "flow", "A sequence of steps that moves records."
    ),
    "scripts": ResourceUI(
        "script", Script, ScriptForm, "scripts", "script", "Code a step runs on each record."
    ),
    "caches": ResourceUI(
        "lookup_cache",
        LookupCache,
        LookupCacheForm,
        "caches",
        "lookup cache",
        "Key → value pairs that mappings translate through.",
    ),
}


def _resource_ui(kind: str) -> ResourceUI:
    try:
        return RESOURCE_UI[kind]
    except KeyError:
        raise Http404("No such kind of resource.") from None


def _after_save_url(kind: str, integration: Integration, instance: Any) -> str:
    return resource_url(RESOURCE_UI[kind].type_key, integration.pk, instance.pk)


@login_required
def resource_create(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    ui = _resource_ui(kind)
    integration = _integration(request, pk, Action.EDIT)
    form = ui.form(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            instance = services.resource_create(
                integration=integration, type_key=ui.type_key, data=form.service_data()
            )
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"{ui.label.capitalize()} {instance.name} created.")
            return redirect(_after_save_url(kind, integration, instance))
    return render_integration_tab(
        request,
        integration,
        tab=ui.tab,
        template="integrations/resource_form.html",
        context={"form": form, "ui": ui, "kind": kind, "instance": None},
        status=400 if form.is_bound else 200,
    )


def _resource(integration: Integration, ui: ResourceUI, rid: int):
    return get_object_or_404(ui.model, pk=rid, integration=integration)


@login_required
def resource_edit(request: HttpRequest, pk: int, kind: str, rid: int) -> HttpResponse:
    ui = _resource_ui(kind)
    integration = _integration(request, pk, Action.EDIT)
    instance = _resource(integration, ui, rid)
    form = ui.form(request.POST or None, instance=instance)
    if request.method == "POST" and form.is_valid():
        try:
            services.resource_update(instance=instance, data=form.service_data())
        except ValidationError as exc:
            apply_service_errors(form, exc)
            instance.refresh_from_db()
        else:
            messages.success(request, f"{ui.label.capitalize()} {instance.name} saved.")
            return redirect(_after_save_url(kind, integration, instance))
    return render_integration_tab(
        request,
        integration,
        tab=ui.tab,
        template="integrations/resource_form.html",
        context={
            "form": form,
            "ui": ui,
            "kind": kind,
            "instance": instance,
            # A resource with a page of its own (a flow, a cache) is reached from it.
            "instance_page": (
                resource_url(ui.type_key, integration.pk, instance.pk)
                if RESOURCE_TYPES[ui.type_key].page
                else ""
            ),
        },
        status=400 if form.is_bound else 200,
    )


@login_required
def resource_delete(request: HttpRequest, pk: int, kind: str, rid: int) -> HttpResponse:
    ui = _resource_ui(kind)
    integration = _integration(request, pk, Action.EDIT)
    instance = _resource(integration, ui, rid)
    error = ""
    if request.method == "POST":
        name = instance.name
        try:
            services.resource_delete(instance=instance)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            messages.success(request, f"{ui.label.capitalize()} {name} deleted.")
            return redirect(f"integrations:{ui.tab}", pk=integration.pk)
    return render_integration_tab(
        request,
        integration,
        tab=ui.tab,
        template="integrations/resource_delete.html",
        context={
            "ui": ui,
            "kind": kind,
            "instance": instance,
            "error": error,
            "consequences": _delete_consequences(instance),
            # The service refuses to delete a connection steps still use: say so up front.
            "blocked": isinstance(instance, Connection) and instance.steps.exists(),
        },
        status=400 if error else 200,
    )


def _delete_consequences(instance: Any) -> list[str]:
    if isinstance(instance, Flow):
        n = instance.steps.count()
        return [f"Its {n} step{'s' if n != 1 else ''} are deleted with it."] if n else []
    if isinstance(instance, Connection):
        used = list(instance.steps.select_related("flow")[:5])
        if used:
            names = ", ".join(f"{s.flow.name} → {s.name}" for s in used)
            return [f"It is used by steps ({names}); change or delete those steps first."]
    if isinstance(instance, LookupCache):
        n = instance.entries.count()
        notes = [f"Its {n} entr{'ies' if n != 1 else 'y'} are deleted with it."] if n else []
        lineage = str(instance.lineage_id)
        users = [
            s
            for s in FlowStep.objects.filter(integration_id=instance.integration_id)
            if any(
                isinstance(m, dict) and str(m.get("lookup_cache")) == lineage
                for m in (s.config or {}).get("mappings", [])
            )
        ]
        if users:
            notes.append(
                "Mappings in "
                + ", ".join(s.name for s in users[:5])
                + " go through it; edit them first or they will refer to a missing cache."
            )
        return notes
    return []


# Flows and their steps ----------------------------------------------------------------


@login_required
def flow_detail(request: HttpRequest, pk: int, rid: int) -> HttpResponse:
    integration = _integration(request, pk)
    flow = get_object_or_404(Flow, pk=rid, integration=integration)
    steps = list(flow.steps.select_related("connection").order_by("position", "pk"))
    # Mappings' caches and hooks' scripts by name (a deleted one says so).
    refs = names_for(referenced_ids(*(step.config for step in steps)), [integration.pk])
    rows = []
    for step in steps:
        config = step.config if isinstance(step.config, dict) else {}
        mappings = []
        for m in config.get("mappings", []):
            if not isinstance(m, dict):
                continue
            cache = str(m.get("lookup_cache") or "")
            mappings.append(
                {
                    "source": m.get("source"),
                    "target": m.get("target"),
                    "cache": refs.get(cache) if cache else None,
                    "cache_missing": bool(cache) and cache not in refs,
                }
            )
        hooks = config.get("hooks") if isinstance(config.get("hooks"), dict) else {}
        hooks = [(name, refs.get(str(script))) for name, script in sorted(hooks.items())]
        rows.append({"step": step, "mappings": mappings, "hooks": hooks})
    return render_integration_tab(
        request,
        integration,
        tab="flows",
        template="integrations/flow_detail.html",
        context={"flow": flow, "rows": rows},
    )


def _step_form_context(integration: Integration, flow: Flow, form: StepForm, step=None) -> dict:
    return {
        "flow": flow,
        "form": form,
        "step": step,
        "has_caches": integration.lookupcaches.exists(),
        "has_connections": integration.connections.exists(),
    }


@login_required
def step_create(request: HttpRequest, pk: int, rid: int) -> HttpResponse:
    integration = _integration(request, pk, Action.EDIT)
    flow = get_object_or_404(Flow, pk=rid, integration=integration)
    form = StepForm(request.POST or None, integration=integration)
    if request.method == "POST" and form.is_valid():
        last = flow.steps.order_by("-position").values_list("position", flat=True).first() or 0
        data = {**form.service_data(), "flow": flow, "position": last + 1}
        try:
            step = services.resource_create(integration=integration, type_key="step", data=data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Step {step.name} added to {flow.name}.")
            return redirect("integrations:flow", pk=integration.pk, rid=flow.pk)
    return render_integration_tab(
        request,
        integration,
        tab="flows",
        template="integrations/step_form.html",
        context=_step_form_context(integration, flow, form),
        status=400 if form.is_bound else 200,
    )


def _step(integration: Integration, flow_pk: int, step_pk: int) -> FlowStep:
    return get_object_or_404(
        FlowStep.objects.select_related("flow"),
        pk=step_pk,
        flow_id=flow_pk,
        integration=integration,
    )


@login_required
def step_edit(request: HttpRequest, pk: int, rid: int, sid: int) -> HttpResponse:
    integration = _integration(request, pk, Action.EDIT)
    step = _step(integration, rid, sid)
    form = StepForm(request.POST or None, integration=integration, instance=step)
    if request.method == "POST" and form.is_valid():
        try:
            services.resource_update(instance=step, data=form.service_data())
        except ValidationError as exc:
            apply_service_errors(form, exc)
            step.refresh_from_db()
        else:
            messages.success(request, f"Step {step.name} saved.")
            return redirect("integrations:flow", pk=integration.pk, rid=step.flow_id)
    return render_integration_tab(
        request,
        integration,
        tab="flows",
        template="integrations/step_form.html",
        context=_step_form_context(integration, step.flow, form, step),
        status=400 if form.is_bound else 200,
    )


@login_required
def step_delete(request: HttpRequest, pk: int, rid: int, sid: int) -> HttpResponse:
    integration = _integration(request, pk, Action.EDIT)
    step = _step(integration, rid, sid)
    if request.method == "POST":
        services.resource_delete(instance=step)
        messages.success(request, f"Step {step.name} deleted.")
        return redirect("integrations:flow", pk=integration.pk, rid=step.flow_id)
    return render_integration_tab(
        request,
        integration,
        tab="flows",
        template="integrations/resource_delete.html",
        context={
            "ui": {"label": "step"},
            "instance": step,
            "cancel_url": reverse("integrations:flow", args=[integration.pk, step.flow_id]),
            "delete_url": reverse(
                "integrations:step_delete", args=[integration.pk, step.flow_id, step.pk]
            ),
        },
    )


@login_required
@require_POST
def step_move(request: HttpRequest, pk: int, rid: int, sid: int) -> HttpResponse:
    integration = _integration(request, pk, Action.EDIT)
    step = _step(integration, rid, sid)
    direction = request.POST.get("direction")
    try:
        services.flow_step_move(step=step, direction=direction)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect(
        reverse("integrations:flow", args=[integration.pk, step.flow_id]) + f"#step-{step.pk}"
    )


# Lookup caches and their entries ------------------------------------------------------


ENTRY_PAGE = 50


def _cache_context(cache: LookupCache, **extra: Any) -> dict[str, Any]:
    totals = cache.entries.aggregate(n=Count("pk"), size=Coalesce(Sum("size"), 0))
    q = extra.pop("q", "")
    entries = cache.entries.order_by("key")
    if q:
        entries = entries.filter(Q(key__icontains=q))
    page = Paginator(entries, ENTRY_PAGE).get_page(extra.pop("page", None))
    context = {
        "cache": cache,
        "entry_count": totals["n"],
        "data_bytes": totals["size"],
        "page_obj": page,
        "entries": page.object_list,
        "q": q,
        "entry_form": CacheEntryForm(),
        "upload_form": CacheUploadForm(),
    }
    context.update(extra)
    return context


@login_required
def cache_detail(request: HttpRequest, pk: int, rid: int) -> HttpResponse:
    integration = _integration(request, pk)
    cache = get_object_or_404(LookupCache, pk=rid, integration=integration)
    return render_integration_tab(
        request,
        integration,
        tab="caches",
        template="integrations/cache_detail.html",
        context=_cache_context(
            cache, q=request.GET.get("q", "").strip(), page=request.GET.get("page")
        ),
    )


def _cache_for_edit(request: HttpRequest, pk: int, rid: int) -> tuple[Integration, LookupCache]:
    # Entries are data, not configuration: editable on a protected integration too.
    integration = _integration(request, pk, Action.EDIT_CACHE_ENTRIES)
    return integration, get_object_or_404(LookupCache, pk=rid, integration=integration)


def _cache_error(request, integration, cache, **extra) -> HttpResponse:
    return render_integration_tab(
        request,
        integration,
        tab="caches",
        template="integrations/cache_detail.html",
        context=_cache_context(cache, **extra),
        status=400,
    )


@login_required
@require_POST
def cache_entry_add(request: HttpRequest, pk: int, rid: int) -> HttpResponse:
    integration, cache = _cache_for_edit(request, pk, rid)
    form = CacheEntryForm(request.POST)
    if form.is_valid():
        try:
            services.cache_entries_add(cache=cache, entries=form.service_entries())
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Entry {form.cleaned_data['key']} saved.")
            return redirect("integrations:cache", pk=integration.pk, rid=cache.pk)
    return _cache_error(request, integration, cache, entry_form=form)


@login_required
@require_POST
def cache_entries_upload(request: HttpRequest, pk: int, rid: int) -> HttpResponse:
    integration, cache = _cache_for_edit(request, pk, rid)
    form = CacheUploadForm(request.POST, request.FILES)
    if form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            count = services.cache_entries_import(
                cache=cache, filename=upload.name, content=upload.read()
            )
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(
                request, f"{count} entr{'ies' if count != 1 else 'y'} imported from {upload.name}."
            )
            return redirect("integrations:cache", pk=integration.pk, rid=cache.pk)
    return _cache_error(request, integration, cache, upload_form=form)


@login_required
def cache_entries_clear(request: HttpRequest, pk: int, rid: int) -> HttpResponse:
    integration, cache = _cache_for_edit(request, pk, rid)
    if request.method == "POST":
        count = services.cache_entries_clear(cache=cache)
        messages.success(
            request, f"{count} entr{'ies' if count != 1 else 'y'} removed from {cache.name}."
        )
        return redirect("integrations:cache", pk=integration.pk, rid=cache.pk)
    return render_integration_tab(
        request,
        integration,
        tab="caches",
        template="integrations/cache_clear.html",
        context={
            "cache": cache,
            "entry_count": cache.entries.count(),
            "data_bytes": LookupCacheEntry.objects.filter(cache=cache).aggregate(
                s=Coalesce(Sum("size"), 0)
            )["s"],
        },
    )
