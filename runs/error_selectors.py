"""Reads of error management that the Errors page, the API, the CSV, the counts on flow
pages, Runs tab and home tiles, and the revision page's "retry with the fix" share."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.db.models import (
    BooleanField,
    Count,
    ExpressionWrapper,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)

from integrations.models import Integration
from revisions.models import Blob, Revision, RevisionStatus, RevisionType

from .models import ErrorRetry, ErrorState, FlowError


def errors_of(integration: Integration) -> QuerySet[FlowError]:
    """An integration's errors, most recently seen first (filter with ErrorFilter)."""
    return (
        FlowError.objects.filter(integration=integration)
        .select_related("assignee", "resolved_by_user")
        .defer("retry_data")
        .annotate(
            has_retry_data=ExpressionWrapper(
                Q(retry_data__isnull=False), output_field=BooleanField()
            )
        )
        .order_by("-last_seen", "-pk")
    )


# The home tiles count open errors up to this many and then say "10,000+": counting an
# integration's million open errors read them all (0.7 s on every home page view).
OPEN_COUNT_CAP = 10_000


class _CountOf(Subquery):
    """COUNT(*) of a (sliced) subquery's rows."""

    template = "(SELECT COUNT(*) FROM (%(subquery)s) _rows)"
    output_field = IntegerField()


def open_counts_by_integration(integration_ids: Iterable[int]) -> dict[int, int]:
    """Open errors per integration (the home tiles), in one query; each count stops at
    OPEN_COUNT_CAP + 1, which the tiles show as "more than OPEN_COUNT_CAP"."""
    capped = (
        FlowError.objects.filter(integration_id=OuterRef("pk"), state=ErrorState.OPEN)
        .order_by()
        .values("pk")[: OPEN_COUNT_CAP + 1]
    )
    return {
        pk: n
        for pk, n in Integration.objects.filter(pk__in=list(integration_ids))
        .annotate(n=_CountOf(capped))
        .values_list("pk", "n")
        if n
    }


def open_counts_by_flow(integration: Integration | int) -> dict[str, int]:
    """Open errors per flow lineage id of an integration."""
    pk = integration if isinstance(integration, int) else integration.pk
    return {
        str(lineage): n
        for lineage, n in FlowError.objects.filter(integration_id=pk, state=ErrorState.OPEN)
        .order_by()
        .values("flow_lineage_id")
        .annotate(n=Count("pk"))
        .values_list("flow_lineage_id", "n")
    }


def open_counts_by_step(integration: Integration | int, flow_lineage_id: Any) -> dict[str, int]:
    """Open errors per step lineage id of one flow."""
    pk = integration if isinstance(integration, int) else integration.pk
    return {
        str(lineage): n
        for lineage, n in FlowError.objects.filter(
            integration_id=pk, flow_lineage_id=flow_lineage_id, state=ErrorState.OPEN
        )
        .order_by()
        .values("step_lineage_id")
        .annotate(n=Count("pk"))
        .values_list("step_lineage_id", "n")
    }


def retries_of(integration: Integration, n: int = 20) -> QuerySet[ErrorRetry]:
    """The latest retries of an integration (the Retries tab)."""
    return (
        ErrorRetry.objects.filter(integration=integration)
        .select_related("created_by", "revision")
        .order_by("-created_at", "-pk")[:n]
    )


# Retry with the fix --------------------------------------------------------------------


def flows_touched(revision: Revision) -> set[uuid.UUID]:
    """The flows a completed pull (merge) changed: flows and steps added or modified, and
    flows whose steps use a connection, script or lookup cache the merge changed."""
    if (
        revision.type != RevisionType.PULL
        or revision.status != RevisionStatus.COMPLETED
        or revision.tree_before_id is None
        or revision.tree_after_id is None
    ):
        return set()
    before = revision.tree_before.entries or {}
    after = revision.tree_after.entries or {}
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    if not changed:
        return set()
    bodies = dict(Blob.objects.filter(hash__in=set(after.values())).values_list("hash", "body"))
    old = dict(
        Blob.objects.filter(hash__in={before[k] for k in changed if k in before}).values_list(
            "hash", "body"
        )
    )
    flows: set[uuid.UUID] = set()
    used_by: dict[str, set[str]] = {}
    for digest in after.values():
        body = bodies.get(digest) or {}
        if body.get("type") == "step" and body.get("flow"):
            flow = str(body["flow"])
            config = body.get("config") or {}
            refs = {str(body.get("connection") or "")}
            refs |= {str(v) for v in (config.get("hooks") or {}).values()}
            refs |= {
                str(m.get("lookup_cache"))
                for m in config.get("mappings") or []
                if isinstance(m, dict) and m.get("lookup_cache")
            }
            for ref in refs - {""}:
                used_by.setdefault(ref, set()).add(flow)
    for key in changed:
        body = bodies.get(after.get(key, "")) or old.get(before.get(key, "")) or {}
        kind = body.get("type")
        if kind == "flow":
            flows.add(key)
        elif kind == "step" and body.get("flow"):
            flows.add(str(body["flow"]))
        flows |= used_by.get(str(key), set())
    out: set[uuid.UUID] = set()
    for flow in flows:
        try:
            out.add(uuid.UUID(str(flow)))
        except ValueError:
            continue
    return out


def _retryable(revision: Revision) -> QuerySet[FlowError]:
    """The integration's open errors that could be retried at all."""
    return FlowError.objects.filter(
        integration_id=revision.integration_id, state=ErrorState.OPEN, retry_data__isnull=False
    )


def _flows_with_retryable_errors(revision: Revision) -> set[uuid.UUID]:
    """flows_touched, worked out only when there is something to offer: it reads every
    body of the merged state (0.7–2.6 s after a 4,000-resource merge), while most merges
    land where no error is open."""
    if not _retryable(revision).exists():
        return set()
    return flows_touched(revision)


def _offered(revision: Revision, flows: set[uuid.UUID]) -> QuerySet[FlowError]:
    return _retryable(revision).filter(flow_lineage_id__in=flows)


def retry_offer(revision: Revision) -> dict[str, Any]:
    """What the revision page offers after a merge: the open, retryable errors of the flows
    it touched, and the retries already made with it ({"errors", "count", "retries"})."""
    retries = list(
        ErrorRetry.objects.filter(revision=revision).select_related("created_by").order_by("-pk")
    )
    flows = _flows_with_retryable_errors(revision)
    if not flows:
        return {"flows": 0, "ids": [], "count": 0, "retries": retries}
    ids = list(_offered(revision, flows).order_by("pk").values_list("pk", flat=True))
    return {"flows": len(flows), "ids": ids, "count": len(ids), "retries": retries}


def retry_offer_count(revision: Revision) -> tuple[int, int]:
    """(flows touched, open retryable errors of them): the offer's size, in one COUNT."""
    flows = _flows_with_retryable_errors(revision)
    return (len(flows), _offered(revision, flows).count()) if flows else (0, 0)
