"""Template helpers of the integration pages.

What the revision engine adds to them (the sync badge, the approver's panel on the home
page) is in `revisions_ui`: the domain's pages load it, the domain's code never imports it.
"""

from __future__ import annotations

import json
from typing import Any

import markdown as markdown_lib
import nh3
from django import template
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from integrations.permissions import HIDDEN_INTEGRATION_NAME, can_see
from integrations.schedules import describe_schedule

register = template.Library()

_MD_EXTENSIONS = ["tables", "fenced_code", "sane_lists"]


@register.filter
def markdown(text: str | None) -> SafeString:
    """Markdown rendered to HTML and sanitised: scripts, handlers and styles are dropped."""
    html = markdown_lib.markdown(text or "", extensions=_MD_EXTENSIONS, output_format="html")
    # nh3's defaults keep formatting tags and drop scripts, event handlers and styles;
    # links get rel="noopener noreferrer".
    return mark_safe(nh3.clean(html))


@register.filter
def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


@register.filter
def short_json(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


@register.simple_tag(takes_context=True)
def clone_source(context, integration, css: str = "") -> SafeString:
    """A clone's source: a link with its name, or words saying the user cannot see it."""
    source = integration.cloned_from
    user = context.get("user")
    if source is None or user is None or not can_see(user, source):
        return format_html('<span class="muted">{}</span>', HIDDEN_INTEGRATION_NAME)
    url = reverse("integrations:detail", args=[source.pk])
    return format_html('<a class="{}" href="{}">{}</a>', css, url, source.name)


@register.filter
def schedule(value: str | None) -> SafeString:
    """A cron schedule as code with its meaning beside it: "*/30 * * * *: every 30 minutes"
    (integrations.schedules.describe_schedule, the one cron-words helper)."""
    if not value:
        return mark_safe("")
    words = describe_schedule(value)
    if not words:
        return format_html('<code class="cron">{}</code>', value or "")
    return format_html(
        '<code class="cron">{}</code><span class="cron-words">: {}</span>', value, words
    )
