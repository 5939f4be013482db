"""The ILM operation event audit records (`audit.signals.revision_event`), sent by every
revision write once its transaction commits: a rolled-back operation leaves no event."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from audit.signals import revision_event

from .models import Revision


def send_revision_event(revision: Revision, verb: str, user: Any, **detail: Any) -> None:
    """Send `verb` about `revision` by `user` (with `detail`) on commit."""
    transaction.on_commit(
        lambda: revision_event.send(
            sender=Revision, revision=revision, verb=verb, user=user, detail=detail
        )
    )
