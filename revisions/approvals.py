"""Four eyes on production: request, approve or reject a pull's merge; approvals lapse.

A pull into a production integration merges only with an approval. The requester asks
(ready → awaiting_approval); someone else with the approver role, or an administrator,
approves (the merge starts at once, in the approver's name) or rejects (back to ready, for
changes or cancel). The requester never decides on their own request, whatever their role.

An approval is pinned to `changeset_hash(revision)`: the changeset, the resolutions chosen
and the computation it was reviewed at. Refreshing the pull or changing a resolution
changes the hash; `services.approvals_lapse_stale` then marks the request or approval lapsed and
sends the pull back to ready, and `is_approved` is false until someone approves again.
Sandbox targets need no approval.

Reverts of a protected integration (change control): approvers and administrators roll
back at once; anyone else's revert opens in awaiting_approval with a pending request
pinned to `revert_hash(revision)` (the state it would revert from and the state it
restores). Approving runs it; rejecting cancels it; if the integration changed since the
request, the approval is refused and the revert must be asked for again.

Every step sends `revision_event` on commit (verbs `approval_requested`, `approved`,
`rejected`, `approval_lapsed`); the audit app records them.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from integrations.models import Integration, User
from integrations.permissions import Action, can

from . import services
from .approval_state import approval_hash, changeset_hash
from .errors import InvalidState, StaleReview, UnresolvedConflicts
from .events import send_revision_event
from .models import (
    Approval,
    ApprovalDecision,
    ChangeSet,
    Resolution,
    Revision,
    RevisionStatus,
    RevisionType,
)


def _locked(revision: Revision) -> Revision:
    """Lock the revision's row for this transaction and reload its fields from it."""
    fresh = Revision.objects.select_for_update().get(pk=revision.pk)
    for field in Revision._meta.concrete_fields:
        setattr(revision, field.attname, getattr(fresh, field.attname))
    return revision


def _require_approver(user: User, revision: Revision) -> None:
    if not can(user, Action.APPROVE, revision.integration):
        raise PermissionDenied("Only an approver or an administrator may approve or reject.")


def approval_request(*, revision: Revision, user: User, comment: str = "") -> Approval:
    """Ask for an approval to merge a reviewed pull into production (→ awaiting_approval)."""
    if not can(user, Action.REQUEST_APPROVAL, revision.integration):
        raise PermissionDenied("Your role or access does not allow: request approval.")
    if revision.type != RevisionType.PULL:
        raise InvalidState(
            "Approval is asked for pulls here; a revert of a protected integration asks "
            "for it when it is started, and snapshots and clones need none."
        )
    if not revision.integration.is_production:
        raise InvalidState(
            f"{revision.integration.name} is a sandbox: no approval is needed, merge it directly."
        )
    with transaction.atomic():
        _locked(revision)
        if revision.status == RevisionStatus.AWAITING_APPROVAL:
            raise InvalidState("An approval is already requested for this pull.")
        if revision.status != RevisionStatus.READY:
            raise InvalidState(
                f"Pull #{revision.number} is {revision.get_status_display().lower()}; "
                "approval can be asked for a pull that is ready for review."
            )
        unresolved = int((revision.summary or {}).get("unresolved") or 0)
        if unresolved:
            raise UnresolvedConflicts(
                f"Resolve the {unresolved} unresolved conflict(s) before asking for approval."
            )
        current_version = (
            Integration.objects.filter(pk=revision.integration_id)
            .values_list("version", flat=True)
            .first()
        )
        if revision.target_version is not None and current_version != revision.target_version:
            raise StaleReview(
                f"{revision.integration.name} changed since this pull was computed; refresh "
                "the pull and review it again before asking for approval."
            )
        approval = Approval.objects.create(
            revision=revision,
            requested_by=user,
            request_comment=(comment or "").strip(),
            changeset_hash=changeset_hash(revision),
        )
        revision.move_to(RevisionStatus.AWAITING_APPROVAL)
        send_revision_event(revision, "approval_requested", user, comment=approval.request_comment)
    return approval


def _pending_for_decision(revision: Revision, user: User) -> Approval:
    _require_approver(user, revision)
    _locked(revision)
    if revision.status != RevisionStatus.AWAITING_APPROVAL:
        raise InvalidState(
            f"{revision.get_type_display()} #{revision.number} is "
            f"{revision.get_status_display().lower()}, not awaiting approval."
        )
    approval = (
        Approval.objects.select_for_update()
        .filter(revision_id=revision.pk, decision=ApprovalDecision.PENDING)
        .first()
    )
    if approval is None:
        raise InvalidState("There is no open approval request on this revision; ask for one first.")
    if approval.requested_by_id == user.pk:
        raise PermissionDenied("You asked for this approval; another approver must give it.")
    return approval


def approval_approve(*, revision: Revision, user: User, comment: str = "") -> Revision:
    """Approve a pending request and start the merge (or the revert) in the approver's name.

    One transaction: if the merge cannot start (changes since the request, another
    operation open, a stale review), the approval is not recorded either.
    """
    with transaction.atomic():
        approval = _pending_for_decision(revision, user)
        if approval.changeset_hash != approval_hash(revision):
            if revision.type == RevisionType.REVERT:
                raise InvalidState(
                    f"{revision.integration.name} changed since this revert was asked for; "
                    "cancel it and ask for the revert again, so the approval covers what "
                    "it would really change."
                )
            raise InvalidState(
                "The pull changed after the request (refreshed or resolutions changed); "
                "the author must ask for approval again."
            )
        approval.decision = ApprovalDecision.APPROVED
        approval.decided_by = user
        approval.decided_at = timezone.now()
        approval.decision_comment = (comment or "").strip()
        approval.save(update_fields=["decision", "decided_by", "decided_at", "decision_comment"])
        send_revision_event(revision, "approved", user, comment=approval.decision_comment)
        if revision.type == RevisionType.REVERT:
            return services.revert_approved_run(revision=revision)
        result = services.merge_start(revision=revision, user=user)
    return result if isinstance(result, Revision) else revision


def approval_reject(*, revision: Revision, user: User, comment: str = "") -> Approval:
    """Reject a pending request: a pull goes back to ready, for changes or cancel; a
    revert is canceled (nothing changed; it stays in the history)."""
    with transaction.atomic():
        approval = _pending_for_decision(revision, user)
        approval.decision = ApprovalDecision.REJECTED
        approval.decided_by = user
        approval.decided_at = timezone.now()
        approval.decision_comment = (comment or "").strip()
        approval.save(update_fields=["decision", "decided_by", "decided_at", "decision_comment"])
        if revision.type == RevisionType.REVERT:
            revision.move_to(RevisionStatus.CANCELED)
        else:
            revision.move_to(RevisionStatus.READY)
        send_revision_event(revision, "rejected", user, comment=approval.decision_comment)
    return approval


# Lapse on change, whoever makes it: refreshes save the ChangeSet, resolutions are rows.


def _changeset_saved(sender, instance: ChangeSet, raw: bool = False, **kwargs: Any) -> None:
    if not raw:
        services.approvals_lapse_stale(revision=Revision(pk=instance.revision_id))


def _resolution_changed(sender, instance: Resolution, raw: bool = False, **kwargs: Any) -> None:
    if not raw:
        services.approvals_lapse_stale(
            revision=Revision(pk=instance.revision_id), user=instance.chosen_by
        )


def connect_signals() -> None:
    post_save.connect(_changeset_saved, sender=ChangeSet, dispatch_uid="ilm-approval-changeset")
    post_save.connect(
        _resolution_changed, sender=Resolution, dispatch_uid="ilm-approval-resolution-save"
    )
    post_delete.connect(
        _resolution_changed, sender=Resolution, dispatch_uid="ilm-approval-resolution-delete"
    )
