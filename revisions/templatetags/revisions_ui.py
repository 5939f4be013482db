"""Template helpers of the revision pages, and the sync badge other pages include."""

from __future__ import annotations

from django import template
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from integrations.permissions import Action, can, shown_name

from .. import selectors
from ..context_processors import PANEL_LIMIT, approval_queue_head
from ..models import ACTIVE_STATUSES
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
    sync = selectors.sync_status(integration)
    if sync:
        sync = {**sync, "source_name": shown_name(user, sync["source"])}
    return {"sync": sync, "integration": integration, "link": link}


@register.simple_tag(takes_context=True)
def integration_sync_badge(context, integration) -> SafeString:
    """The sync badge on the integration pages, or nothing when there is nothing to say."""
    badge = sync_badge_context(integration, user=context.get("user"))
    if not badge.get("sync"):
        return mark_safe("")
    return mark_safe(render_to_string("revisions/_sync_badge.html", badge))


@register.filter
def plural_s(count) -> str:
    return "" if count == 1 else "s"


@register.inclusion_tag("revisions/_approval_panel.html", takes_context=True)
def approval_panel(context, limit: int = PANEL_LIMIT) -> dict:
    """The approver's queue on the home page: nothing for users who cannot approve."""
    user = context.get("user")
    if user is None or not can(user, Action.APPROVE):
        return {"show": False}
    request = context.get("request")
    if request is not None and limit == PANEL_LIMIT:
        # the rows and the count the navigation read for this page
        items, waiting = approval_queue_head(request)
    else:
        queue = selectors.approval_queue(user).select_related("integration", "created_by")
        items, waiting = list(queue[: limit + 1]), selectors.approval_queue_count(user)
    return {
        "show": True,
        "items": items[:limit],
        "more": len(items) > limit,
        "waiting_on_you": waiting,
    }


@register.simple_tag(takes_context=True)
def home_approval_panel(context) -> SafeString:
    """The approver's queue on the home page, or nothing for users who cannot approve."""
    data = approval_panel(context)
    if not data.get("show"):
        return mark_safe("")
    return mark_safe(render_to_string("revisions/_approval_panel.html", data))


@register.filter
def counts_words(summary) -> list[dict[str, str]]:
    """A changeset summary in words ("3 changed, 1 conflict (resolved)")."""
    return _counts_words(summary)
