"""Whether a request asks for a fragment of a page: the one rule every app's views read.

One URL serves a page and its htmx fragments (docs/architecture.md). An htmx request
gets the fragment its target names, unless it is boosted (a navigation: the whole page)
or a history restore (htmx re-fetching a page it kept no snapshot of: the whole page,
or the browser's back button shows a bare fragment). Responses that steer htmx use
django_htmx.http (HttpResponseClientRedirect, trigger_client_event,
HttpResponseStopPolling, HttpResponseClientRefresh), never hand-set HX-* headers.
"""

from __future__ import annotations

from django.http import HttpRequest


def fragment_target(request: HttpRequest) -> str | None:
    """The id of the element a fragment request swaps; None when the whole page is due
    (not htmx, boosted, a history restore, or htmx without a target)."""
    htmx = getattr(request, "htmx", None)
    if not htmx or htmx.boosted or htmx.history_restore_request:
        return None
    return htmx.target or ""


def is_fragment(request: HttpRequest, target: str | None = None) -> bool:
    """Whether to answer with a fragment: for any target, or for `target` only."""
    wanted = fragment_target(request)
    return wanted is not None and (target is None or wanted == target)
