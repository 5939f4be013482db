"""What every page's navigation shows of the revision engine: the approvals waiting."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.http import HttpRequest

from integrations.models import Integration, IntegrationAccess
from integrations.permissions import Action, can

from . import selectors
from .models import Approval, Revision

# Requests the home page's approval panel lists.
PANEL_LIMIT = 5

# The approval queue's head is read on every page an approver opens, and changes seldom.
# It is kept in the cache under a generation that every write it depends on replaces:
# the requests (Revision: status, description, summary), their approvals (whose they are),
# the integrations (names) and grants (what the user sees), the users (roles, names).
GENERATION_KEY = "ilm:approvals:generation"
HEAD_TIMEOUT_S = 3600
_HEAD_DEPENDS_ON = (Revision, Approval, Integration, IntegrationAccess)


def _generation() -> str:
    found = cache.get(GENERATION_KEY)
    if found is None:
        cache.add(GENERATION_KEY, uuid4().hex, None)
        found = cache.get(GENERATION_KEY)
    return found


def _new_generation() -> None:
    cache.set(GENERATION_KEY, uuid4().hex, None)


def _queue_changed(**kwargs: Any) -> None:
    # Now, so the writer's own transaction reads afresh; and again after the commit, since
    # another request may have read the rows as they were and kept them under the
    # generation set now (a read always takes the generation before the rows).
    _new_generation()
    transaction.on_commit(_new_generation)


def connect_signals() -> None:
    for model in (*_HEAD_DEPENDS_ON, get_user_model()):
        for signal in (post_save, post_delete):
            signal.connect(
                _queue_changed,
                sender=model,
                dispatch_uid=f"ilm-approval-head-{model._meta.label_lower}-{signal is post_save}",
            )


def _read_head(user: Any) -> tuple[list[Any], int]:
    queue = selectors.approval_queue(user).select_related("integration", "created_by")
    items = list(queue[: PANEL_LIMIT + 1])
    if len(items) <= PANEL_LIMIT:
        waiting = sum(1 for r in items if not r.is_own)
    else:
        waiting = selectors.approval_queue_count(user)
    return items, waiting


def approval_queue_head(request: HttpRequest) -> tuple[list[Any], int]:
    """The first PANEL_LIMIT + 1 requests of the user's approval queue, and how many of
    all wait for their decision (not their own), read once per request: the nav badge and
    the home page's panel show both, and a short queue (the usual case) is counted from
    the rows already read instead of a second query. Kept in the cache until a write it
    depends on (see GENERATION_KEY)."""
    memo = getattr(request, "_ilm_approval_head", None)
    if memo is None:
        user = request.user
        key = (
            f"ilm:approvals:head:{_generation()}:{user.pk}:{user.role}:"
            f"{int(user.is_superuser)}:{int(user.is_active)}"
        )
        memo = cache.get(key)
        if memo is None:
            memo = _read_head(user)
            cache.set(key, memo, HEAD_TIMEOUT_S)
        request._ilm_approval_head = memo
    return memo


def approvals(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not can(user, Action.APPROVE):
        return {}
    # Counted only when a template shows it (htmx fragments without the nav cost nothing).
    return {"nav_approval_count": lambda: approval_queue_head(request)[1]}
