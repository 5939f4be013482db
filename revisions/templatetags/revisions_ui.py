"""Template helpers of the revision pages, and the sync badge other pages include."""

from __future__ import annotations

from django import template

from ..review import ACTIVE_STATUSES
from ..review import counts_words as _counts_words

register = template.Library()


@register.filter
def working(revision) -> bool:
    """The engine is busy with it: the page polls its status."""
    return getattr(revision, "status", revision) in ACTIVE_STATUSES


@register.inclusion_tag("revisions/_sync_badge.html", takes_context=True)
def sync_badge(context, integration, link: bool = True) -> dict:
    """How an integration stands against the one it was cloned from (its sync point).

    The source is named only to users who may see it.
    """
    return sync_badge_context(integration, user=context.get("user"), link=link)


def sync_badge_context(integration, *, user, link: bool = True) -> dict:
    from integrations.permissions import shown_name

    from .. import selectors

    sync = selectors.sync_status(integration)
    if sync:
        sync = {**sync, "source_name": shown_name(user, sync["source"])}
    return {"sync": sync, "integration": integration, "link": link}


@register.filter
def plural_s(count) -> str:
    return "" if count == 1 else "s"


@register.inclusion_tag("revisions/_approval_panel.html", takes_context=True)
def approval_panel(context, limit: int = 5) -> dict:
    """The approver's queue on the home page: nothing for users who cannot approve."""
    from integrations.permissions import Action, can

    from .. import selectors

    user = context.get("user")
    if user is None or not can(user, Action.APPROVE):
        return {"show": False}
    queue = selectors.approval_queue(user).select_related("integration", "created_by")
    items = list(queue[: limit + 1])
    return {
        "show": True,
        "items": items[:limit],
        "more": len(items) > limit,
        "waiting_on_you": selectors.approval_queue_count(user),
    }


@register.filter
def counts_words(summary) -> list[dict[str, str]]:
    """A changeset summary in words ("3 changed, 1 conflict (resolved)")."""
    return _counts_words(summary)
