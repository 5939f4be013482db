"""What every page's navigation shows of the revision engine: the approvals waiting."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from integrations.permissions import Action, can

from . import selectors

# Requests the home page's approval panel lists.
PANEL_LIMIT = 5


def approval_queue_head(request: HttpRequest) -> tuple[list[Any], int]:
    """The first PANEL_LIMIT + 1 requests of the user's approval queue, and how many of
    all wait for their decision (not their own), read once per request: the nav badge and
    the home page's panel show both, and a short queue (the usual case) is counted from
    the rows already read instead of a second query."""
    memo = getattr(request, "_ilm_approval_head", None)
    if memo is None:
        user = request.user
        queue = selectors.approval_queue(user).select_related("integration", "created_by")
        items = list(queue[: PANEL_LIMIT + 1])
        if len(items) <= PANEL_LIMIT:
            waiting = sum(1 for r in items if not r.is_own)
        else:
            waiting = selectors.approval_queue_count(user)
        memo = request._ilm_approval_head = (items, waiting)
    return memo


def approvals(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not can(user, Action.APPROVE):
        return {}
    # Counted only when a template shows it (htmx fragments without the nav cost nothing).
    return {"nav_approval_count": lambda: approval_queue_head(request)[1]}
