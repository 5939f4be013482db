"""Four eyes on production: request, approve or reject a pull's merge; approvals lapse.

A pull into a production integration merges only with an approval. The requester asks
(ready → awaiting_approval); someone else with the approver role, or an administrator,
approves (the merge starts at once, in the approver's name) or rejects (back to ready, for
changes or cancel). The requester never decides on their own request, whatever their role.

An approval is pinned to `changeset_hash(revision)`: the changeset, the resolutions chosen
and the computation it was reviewed at. Refreshing the pull or changing a resolution
changes the hash; `approvals_lapse_stale` then marks the request or approval lapsed and
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

import hashlib
from typing import Any

import orjson
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from audit.signals import revision_event
from integrations.models import Integration, User
from integrations.permissions import Action, can

from .errors import InvalidState, StaleReview, UnresolvedConflicts
from .models import (
    Approval,
    ApprovalDecision,
    ChangeSet,
    Resolution,
    Revision,
    RevisionStatus,
    RevisionType,
)

# Decisions that still stand: a pending request or a given approval. Lapsed and rejected
# rows stay as history.
_STANDING = (ApprovalDecision.PENDING, ApprovalDecision.APPROVED)


def changeset_hash(revision: Revision) -> str:
    """sha256 of the resolved changeset: changes, resolutions and the computation's version.

    The computation is named by the target version it was computed against and the time
    it was computed, so a refresh voids an approval even when it finds the same changes.
    """
    changeset = ChangeSet.objects.filter(revision_id=revision.pk).first()
    resolutions = sorted(
        (str(lineage_id), path, choose)
        for lineage_id, path, choose in Resolution.objects.filter(
            revision_id=revision.pk
        ).values_list("lineage_id", "path", "choose")
    )
    state = {
        "revision": revision.pk,
        "target_version": revision.target_version,
        "source_tree": revision.source_tree_id,
        "base_tree": revision.base_tree_id,
        "computed_at": changeset.computed_at.isoformat() if changeset else None,
        "changes": changeset.data if changeset else None,
        "resolutions": resolutions,
    }
    return hashlib.sha256(orjson.dumps(state, option=orjson.OPT_SORT_KEYS)).hexdigest()


def revert_hash(revision: Revision) -> str:
    """sha256 of what a revert would do: the integration's current tree and the restored one."""
    from .document import document_hashes, document_of, tree_hash

    doc = document_of(revision.integration)
    restored = revision.reverted_to
    side = revision.revert_side or "after"
    state = {
        "revision": revision.pk,
        "reverted_to": revision.reverted_to_id,
        "side": side,
        "current": tree_hash(dict(doc["integration"]), document_hashes(doc)),
        "restores": (
            (restored.tree_after_id if side == "after" else restored.tree_before_id)
            if restored is not None
            else None
        ),
    }
    return hashlib.sha256(orjson.dumps(state, option=orjson.OPT_SORT_KEYS)).hexdigest()


def approval_hash(revision: Revision) -> str:
    """What an approval of this revision is pinned to (a pull's changeset, a revert's states)."""
    if revision.type == RevisionType.REVERT:
        return revert_hash(revision)
    return changeset_hash(revision)


def revert_needs_approval(integration: Integration, user: User | None) -> bool:
    """A revert of a protected integration waits for an approver unless one asks for it."""
    return integration.protected and not (
        user is not None and can(user, Action.APPROVE, integration)
    )


def revert_approval_open(*, revision: Revision, user: User | None) -> Approval:
    """The pending request of a revert that waits for an approver (in revert_start's
    transaction: the revert and its request exist together or not at all)."""
    approval = Approval.objects.create(
        revision=revision,
        requested_by=user if getattr(user, "pk", None) else None,
        request_comment=revision.description,
        changeset_hash=revert_hash(revision),
    )
    _send(revision, "approval_requested", user, comment=approval.request_comment)
    return approval


def needs_approval(revision: Revision) -> bool:
    """Pulls into production integrations need an approval before they merge."""
    return revision.type == RevisionType.PULL and revision.integration.is_production


def current_approval(revision: Revision) -> Approval | None:
    """The standing (pending or approved) request of a pull, if any."""
    return (
        Approval.objects.filter(revision_id=revision.pk, decision__in=_STANDING)
        .select_related("requested_by", "decided_by")
        .first()
    )


def is_approved(revision: Revision) -> bool:
    """May this pull merge as far as four eyes go? Sandbox targets: always."""
    if not needs_approval(revision):
        return True
    approval = current_approval(revision)
    return (
        approval is not None
        and approval.decision == ApprovalDecision.APPROVED
        and approval.changeset_hash == changeset_hash(revision)
    )


def _send(revision: Revision, verb: str, user: User | None, **detail: Any) -> None:
    transaction.on_commit(
        lambda: revision_event.send(
            sender=Revision, revision=revision, verb=verb, user=user, detail=detail
        )
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
        _send(revision, "approval_requested", user, comment=approval.request_comment)
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
        _send(revision, "approved", user, comment=approval.decision_comment)
        from .services import merge_start, revert_approved_run  # the engine imports us too

        if revision.type == RevisionType.REVERT:
            return revert_approved_run(revision=revision)
        result = merge_start(revision=revision, user=user)
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
        _send(revision, "rejected", user, comment=approval.decision_comment)
    return approval


def approvals_lapse_stale(*, revision: Revision, user: User | None = None) -> int:
    """Lapse the standing request or approval whose changeset hash no longer holds.

    A pull awaiting approval goes back to ready: it must be asked for (and approved)
    again. Returns how many lapsed. Called on every change of a pull's changeset or
    resolutions (signals below), and callable by the engine after a refresh.
    """
    standing = list(
        Approval.objects.filter(revision_id=revision.pk, decision__in=_STANDING).only(
            "pk", "changeset_hash", "decision"
        )
    )
    if not standing:
        return 0
    with transaction.atomic():
        revision = Revision.objects.select_for_update().filter(pk=revision.pk).first()
        if revision is None:  # the pull itself is being deleted
            return 0
        current = changeset_hash(revision)
        stale = [a for a in standing if a.changeset_hash != current]
        if not stale:
            return 0
        now = timezone.now()
        for approval in stale:
            approval.decision = ApprovalDecision.LAPSED
            approval.decided_at = now
            approval.save(update_fields=["decision", "decided_at"])
        if revision.status == RevisionStatus.AWAITING_APPROVAL:
            revision.move_to(RevisionStatus.READY)
        _send(revision, "approval_lapsed", user, approvals=[a.pk for a in stale])
    return len(stale)


# Lapse on change, whoever makes it: refreshes save the ChangeSet, resolutions are rows.


def _changeset_saved(sender, instance: ChangeSet, raw: bool = False, **kwargs: Any) -> None:
    if not raw:
        approvals_lapse_stale(revision=Revision(pk=instance.revision_id))


def _resolution_changed(sender, instance: Resolution, raw: bool = False, **kwargs: Any) -> None:
    if not raw:
        approvals_lapse_stale(revision=Revision(pk=instance.revision_id), user=instance.chosen_by)


def connect_signals() -> None:
    post_save.connect(_changeset_saved, sender=ChangeSet, dispatch_uid="ilm-approval-changeset")
    post_save.connect(
        _resolution_changed, sender=Resolution, dispatch_uid="ilm-approval-resolution-save"
    )
    post_delete.connect(
        _resolution_changed, sender=Resolution, dispatch_uid="ilm-approval-resolution-delete"
    )
