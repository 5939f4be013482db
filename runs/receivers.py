"""What the runtime does when the revision engine announces something (revisions defines
`revision_event`; runs listens, so revisions never imports runs).

After a merge of a pull that changed flows with open errors, the people who manage the
integration are told they can retry those errors with the fix (the revision page offers
the same through `runs_errors.retry_offer`).
"""

from __future__ import annotations

import logging
from typing import Any

from django.urls import reverse

from . import error_selectors

log = logging.getLogger(__name__)


def on_revision_event(
    sender: Any, revision: Any, verb: str, user: Any = None, **kwargs: Any
) -> None:
    if verb != "merge":
        return
    try:
        offer = error_selectors.retry_offer(revision)
    except Exception:  # a notification must never break the merge that announced it
        log.exception("Retry offer of revision %s could not be computed", revision.pk)
        return
    if offer["count"]:
        notify_retry_offer(revision, offer["count"], offer["flows"])


def notify_retry_offer(revision: Any, count: int, flows: int) -> None:
    """Tell the integration's managers: "Retry N open errors of the flows this change
    touched" (runs.notifications, where that module is present)."""
    try:
        from . import notifications
    except ImportError:
        return
    integration = revision.integration
    notifications.notify(
        notifications.integration_managers(integration),
        kind="retry_offer",
        title=(
            f"Pull #{revision.number} merged into {integration.name}: retry {count} open "
            f"error{'s' if count != 1 else ''} of the {flows} flow{'s' if flows != 1 else ''} "
            "it touched"
        ),
        body="The merge changed flows that have open errors; retry them with the fixed flow.",
        url=reverse("revisions:detail", args=[revision.pk]),
        integration=integration,
    )


def connect() -> None:
    from revisions.signals import revision_event

    revision_event.connect(on_revision_event, dispatch_uid="runs-retry-offer")
