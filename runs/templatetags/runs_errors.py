"""Error pieces that other apps' pages show: counts that link into the Errors list, and the
revision page's "retry with the fix" offer (revisions does not import runs; its template
loads this library)."""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.urls import reverse

from integrations.permissions import Action, can

from .. import error_selectors

register = template.Library()


@register.filter
def json_text(value: Any) -> str:
    """A record as compact JSON (for one line in a list)."""
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@register.filter
def json_pretty(value: Any) -> str:
    if value is None:
        return "—"
    return json.dumps(value, ensure_ascii=False, indent=2)


@register.simple_tag
def open_errors_by_flow(integration) -> dict[str, int]:
    """{flow lineage id: open errors} of an integration, for its flow list and Runs tab."""
    return error_selectors.open_counts_by_flow(integration)


@register.simple_tag
def open_errors_by_integration(integrations) -> dict[int, int]:
    """{integration id: open errors} for the home tiles, in one query."""
    return error_selectors.open_counts_by_integration([i.pk for i in integrations])


@register.inclusion_tag("runs/_error_count.html")
def error_count(
    counts: dict, key: Any, integration_id: int, param: str = "", value: Any = ""
) -> dict[str, Any]:
    """ "N open errors" linking into the Errors list (filtered to the flow or step)."""
    n = (counts or {}).get(str(key) if not isinstance(key, int) else key, 0)
    if not n:  # shows nothing: no link to work out (most tiles and rows on a busy page)
        return {"n": 0}
    url = reverse("runs:errors", args=[integration_id])
    if param:
        url += f"?{param}={value}"
    cap = error_selectors.OPEN_COUNT_CAP
    return {"n": min(n, cap), "more": n > cap, "url": url}


@register.inclusion_tag("runs/_step_errors.html")
def flow_error_counts(flow) -> dict[str, Any]:
    """Open errors of a flow and of each of its steps (the flow page)."""
    by_step = error_selectors.open_counts_by_step(flow.integration_id, flow.lineage_id)
    return {"flow": flow, "by_step": by_step, "total": sum(by_step.values())}


@register.inclusion_tag("runs/_retry_offer.html", takes_context=True)
def retry_offer(context, revision) -> dict[str, Any]:
    """After a merge: retry the open errors of the flows it touched, and how that went."""
    offer = error_selectors.retry_offer(revision)
    request = context.get("request")
    user = getattr(request, "user", None)
    return {
        "revision": revision,
        "offer": offer,
        "may_retry": user is not None and can(user, Action.RETRY_ERRORS, revision.integration),
        "polling": any(r.is_open for r in offer["retries"]),
        "csrf_token": context.get("csrf_token"),
        "request": request,
    }


@register.simple_tag
def open_errors_by_step(flow) -> dict[str, int]:
    """{step lineage id: open errors} of one flow."""
    return error_selectors.open_counts_by_step(flow.integration_id, flow.lineage_id)


@register.inclusion_tag("runs/_errors_summary.html")
def open_errors_summary(integration) -> dict[str, Any]:
    """Open errors per flow of an integration, each linking into the Errors list (Runs tab)."""
    by_flow = error_selectors.open_counts_by_flow(integration)
    names = dict(integration.flows.values_list("lineage_id", "name"))
    rows = [
        {"lineage_id": lineage, "name": names.get(_uuid(lineage), "A deleted flow"), "n": n}
        for lineage, n in sorted(by_flow.items(), key=lambda kv: -kv[1])
    ]
    return {"integration": integration, "rows": rows, "total": sum(by_flow.values())}


def _uuid(value: str) -> Any:
    import uuid

    try:
        return uuid.UUID(value)
    except ValueError:
        return None
