"""Whether an approval stands: what it is pinned to, and whether a revision may go ahead.

Reads only, below both the engine's services (a merge checks `is_approved`, a revert
`revert_needs_approval`) and the four-eyes actions of `revisions.approvals` (which start
the engine's operations), so neither of those imports the other back.
"""

from __future__ import annotations

import hashlib

import orjson

from integrations.models import Integration, User
from integrations.permissions import Action, can

from .document import document_hashes, document_of, tree_hash
from .models import (
    Approval,
    ApprovalDecision,
    ChangeSet,
    Resolution,
    Revision,
    RevisionType,
)

# Decisions that still stand: a pending request or a given approval. Lapsed and rejected
# rows stay as history.
STANDING_DECISIONS = (ApprovalDecision.PENDING, ApprovalDecision.APPROVED)


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


def needs_approval(revision: Revision) -> bool:
    """Pulls into production integrations need an approval before they merge."""
    return revision.type == RevisionType.PULL and revision.integration.is_production


def current_approval(revision: Revision) -> Approval | None:
    """The standing (pending or approved) request of a pull, if any."""
    return (
        Approval.objects.filter(revision_id=revision.pk, decision__in=STANDING_DECISIONS)
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
