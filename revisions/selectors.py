"""Reads of revisions that views and the API share."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, QuerySet

from integrations.models import User
from integrations.permissions import Action, can, visible_integrations

from .models import Approval, ApprovalDecision, Revision, RevisionStatus

# Approval queue (api helper): keep these two functions last in this file.


def approval_queue(user: User) -> QuerySet[Revision]:
    """Pulls awaiting approval that this user may decide on, oldest request first.

    The user's own requests are listed too (marked in the page), since they are waiting
    for someone else; `approval_queue_count` leaves them out.
    """
    if not can(user, Action.APPROVE):
        return Revision.objects.none()
    return Revision.objects.filter(
        status=RevisionStatus.AWAITING_APPROVAL,
        integration__in=visible_integrations(user),
    ).order_by("created_at", "pk")


def approval_queue_count(user: User) -> int:
    """How many requests wait for this user's decision (the nav badge): not their own."""
    own = Approval.objects.filter(
        revision=OuterRef("pk"), decision=ApprovalDecision.PENDING, requested_by=user
    )
    return approval_queue(user).exclude(Exists(own)).count()
