"""Run pieces that other apps' pages show: a flow's runs panel and the home tiles' health.

Template tags, so the integration pages show runs without the integrations app importing
runs (imports run one way: integrations ← … ← runs).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import template
from django.utils import timezone

from .. import selectors
from ..models import FlowSample

register = template.Library()


@register.inclusion_tag("runs/_flow_panel.html")
def flow_runs_panel(flow, perms_ilm: Iterable[str]) -> dict[str, Any]:
    """Run now, Test run, the schedule's next start and the last runs of a flow."""
    perms = set(perms_ilm or ())
    samples = (
        FlowSample.objects.filter(
            integration_id=flow.integration_id, flow_lineage_id=flow.lineage_id
        )
        .values_list("records", flat=True)
        .first()
    )
    return {
        "flow": flow,
        "last_runs": selectors.last_runs(flow, n=5),
        "next_run_at": selectors.next_run_at(flow, timezone.now()),
        "may_run": "run" in perms,
        "may_test": "test_run" in perms,
        "sample_count": len(samples or []),
    }


@register.simple_tag
def runs_health(integrations: Iterable[Any]) -> dict[int, dict[str, Any]]:
    """Health of every tile at once: {integration id: {last_status, errors_24h, ...}}."""
    return selectors.integration_health([i.pk for i in integrations], timezone.now())


@register.inclusion_tag("runs/_tile_health.html")
def tile_health(health: dict[int, dict[str, Any]], integration) -> dict[str, Any]:
    return {"h": (health or {}).get(integration.pk), "integration": integration}
