"""Reads of revisions that views and the API share."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.db.models import Exists, OuterRef, QuerySet

from integrations.models import Integration, LookupCache, LookupCacheEntry, User
from integrations.permissions import Action, can, visible_integrations
from integrations.resources import LIST_KEYS, PARENT_FIELDS

from . import diff as engine
from .diff import Changeset
from .document import body_hash, document_hashes, document_of, documents_of_trees, tree_hash
from .models import (
    EXCLUSIVE_TYPES,
    OPEN_STATUSES,
    Approval,
    ApprovalDecision,
    ChangeSet,
    Resolution,
    Revision,
    RevisionStatus,
    RevisionType,
    SyncPoint,
    Tree,
)

# Revisions, families, changes, sync status (engine) ----------------------------------


def revisions_for(integration: Integration) -> QuerySet[Revision]:
    """An integration's revisions, newest first."""
    return (
        Revision.objects.filter(integration=integration)
        .select_related("created_by", "source_integration")
        .order_by("-number")
    )


def family_of(integration: Integration, user: User) -> QuerySet[Integration]:
    """The other integrations of its family (sharing a clone ancestor) the user can see."""
    return (
        visible_integrations(user)
        .filter(lineage_id=integration.lineage_id)
        .exclude(pk=integration.pk)
        .order_by("name", "pk")
    )


def open_operation(integration_id: int) -> Revision | None:
    """The pull, revert or clone open on the integration (at most one), if any."""
    return (
        Revision.objects.filter(
            integration_id=integration_id, status__in=OPEN_STATUSES, type__in=EXCLUSIVE_TYPES
        )
        .order_by("-number")
        .first()
    )


def operation_blocker(integration: Integration) -> str | None:
    """Why a new pull, revert or clone of the integration would be refused now, or None."""
    open_op = open_operation(integration.pk)
    if open_op is None:
        return None
    return busy_message(integration, open_op)


def busy_message(integration: Integration, open_op: Revision | None) -> str:
    """What a user is told when another operation holds the integration."""
    what = (
        f"{open_op.get_type_display().lower()} #{open_op.number} "
        f"({open_op.get_status_display().lower()})"
        if open_op
        else "another operation"
    )
    return f"{integration.name} already has an open {what}; finish or cancel it first."


def caches_left_empty(revision: Revision) -> list[LookupCache]:
    """Lookup caches a completed merge, revert or clone brought into being that are empty.

    Operations carry a cache's settings, never its entries: such a cache has no data until
    someone uploads it again, and flows that look up through it find nothing.
    """
    if revision.status != RevisionStatus.COMPLETED or revision.tree_after_id is None:
        return []
    if revision.type == RevisionType.SNAPSHOT:
        return []
    before = set(revision.tree_before.entries) if revision.tree_before_id else set()
    created = [lid for lid in revision.tree_after.entries if lid not in before]
    if not created:
        return []
    return list(
        LookupCache.objects.filter(integration_id=revision.integration_id, lineage_id__in=created)
        .exclude(Exists(LookupCacheEntry.objects.filter(cache=OuterRef("pk"))))
        .order_by("name", "pk")
    )


def sync_state(integration_id: int) -> dict[str, str]:
    """The integration's sync points in effect: {other integration id: tree hash}."""
    state: dict[str, str] = {}
    rows = SyncPoint.objects.filter(integration_id=integration_id).order_by("-pk")
    for other_id, tree_id in rows.values_list("other_id", "tree_id"):
        state.setdefault(str(other_id), tree_id)
    return state


def merge_base(target: Integration, source: Integration) -> Tree | None:
    """The tree two integrations of a family last agreed on.

    Their own last sync point; failing that (relatives that never synced directly, such as
    two clones of one integration), the source's sync point with a relative the target
    has also synced with. None: no common state is known, everything is compared as new.
    """
    point = (
        SyncPoint.objects.filter(integration=target, other=source)
        .select_related("tree")
        .order_by("-pk")
        .first()
    )
    if point is not None:
        return point.tree
    target_others = set(
        SyncPoint.objects.filter(integration=target).values_list("other_id", flat=True)
    )
    point = (
        SyncPoint.objects.filter(integration=source, other_id__in=target_others)
        .select_related("tree")
        .order_by("-pk")
        .first()
    )
    return point.tree if point is not None else None


def resolutions_of(revision: Revision) -> list[dict[str, Any]]:
    return [
        {"lineage_id": str(lid), "path": path or None, "choose": choose}
        for lid, path, choose in Resolution.objects.filter(revision_id=revision.pk)
        .order_by("chosen_at", "pk")
        .values_list("lineage_id", "path", "choose")
    ]


def changes_of(revision: Revision) -> Changeset:
    """A pull's changeset with the current resolutions filled in."""
    data = ChangeSet.objects.get(revision_id=revision.pk).data
    return engine.with_resolutions(data, resolutions_of(revision))


def changes_for_review(revision: Revision) -> Changeset:
    """A pull's changeset with the resolutions chosen so far.

    Raises ChangeSet.DoesNotExist (an ObjectDoesNotExist) while it is not computed yet.
    """
    return changes_of(revision)


def sync_status(integration: Integration) -> dict[str, Any] | None:
    """How the integration stands against the one it was cloned from.

    {"state": "up_to_date" | "local_changes" | "behind" | "diverged", "source": Integration},
    or None for an integration that is not a clone (or whose source is gone).
    """
    source = integration.cloned_from
    if source is None:
        return None
    base_tree = merge_base(integration, source)
    if base_tree is None:
        return None
    # Every change raises a version and every sync adds a sync point: a state computed for
    # these versions and this base stays true, so pages listing many clones stay cheap.
    versions = dict(
        Integration.objects.filter(pk__in=[integration.pk, source.pk]).values_list("pk", "version")
    )
    key = "ilm:sync:" + body_hash(
        [
            integration.pk,
            versions.get(integration.pk),
            source.pk,
            versions.get(source.pk),
            base_tree.hash,
            integration.ignore_fields or {},
        ]
    )
    state = cache.get(key)
    if state is None:
        state = _sync_state(integration, source, base_tree)
        cache.set(key, state, 24 * 3600)
    return {"state": state, "source": source}


def _sync_state(integration: Integration, source: Integration, base_tree: Any) -> str:
    ours = document_of(integration)
    theirs = document_of(source)
    ours_hashes, theirs_hashes = document_hashes(ours), document_hashes(theirs)
    (base,) = documents_of_trees(base_tree)
    local = tree_hash(ours["integration"], ours_hashes) != base_tree.hash and not engine.is_empty(
        engine.diff(base, ours, keys=LIST_KEYS, hashes=(base_tree.entries, ours_hashes))
    )
    behind = tree_hash(theirs["integration"], theirs_hashes) != base_tree.hash and not (
        engine.is_empty(
            engine.three_way(
                base,
                ours,
                theirs,
                ignore=integration.ignore_fields or {},
                keys=LIST_KEYS,
                hashes=(base_tree.entries, ours_hashes, theirs_hashes),
            )
        )
    )
    return {
        (False, False): "up_to_date",
        (True, False): "local_changes",
        (False, True): "behind",
        (True, True): "diverged",
    }[(local, behind)]


# Compare any two states ---------------------------------------------------------------


def current_tree_hash(integration: Integration) -> str:
    """The hash the integration's tree would have if it were stored now.

    Kept in the cache per version (every change raises it, as for `sync_status`): the
    Revisions tab asks on every view, and reading the whole document was most of its time
    (make bench, fig 7). The key is the version `integration` was read at; when the
    integration moved on since, what was read now is not kept under it.
    """
    at = integration.version
    key = f"ilm:tree-hash:{integration.pk}:{at}"
    found = cache.get(key)
    if found is not None:
        return found
    doc = document_of(integration)
    found = tree_hash(doc["integration"], document_hashes(doc))
    if Integration.objects.filter(pk=integration.pk, version=at).exists():
        cache.set(key, found, 24 * 3600)
    return found


def state_of(revision: Revision) -> Any:
    """The tree a revision left the integration in (None: it has no state to show)."""
    if revision.status != RevisionStatus.COMPLETED:
        return None
    return revision.tree_after


def compare_states(
    integration: Integration, older: Revision, newer: Revision | None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The changes from `older`'s state to `newer`'s (None: the integration now), with the
    two documents. Raises LookupError when a revision has no stored state."""
    left_tree = state_of(older)
    right_tree = state_of(newer) if newer is not None else None
    if left_tree is None or (newer is not None and right_tree is None):
        raise LookupError("Only completed revisions have a state to compare.")
    if newer is None:
        (left,) = documents_of_trees(left_tree)
        right = document_of(integration)
        hashes = (left_tree.entries, document_hashes(right))
    else:
        left, right = documents_of_trees(left_tree, right_tree)
        hashes = (left_tree.entries, right_tree.entries)
    changes = engine.diff(left, right, keys=LIST_KEYS, parents=PARENT_FIELDS, hashes=hashes)
    return changes, left, right


# Approval queue --------------------------------------------------------------------------


def approval_queue(user: User) -> QuerySet[Revision]:
    """Pulls awaiting approval that this user may decide on, oldest request first.

    The user's own requests are listed too, since they are waiting for someone else, but
    annotated `is_own` so pages show them as "yours, waiting for another approver" and
    never as something to act on; `approval_queue_count` leaves them out.
    """
    if not can(user, Action.APPROVE):
        return Revision.objects.none()
    own = Approval.objects.filter(
        revision=OuterRef("pk"), decision=ApprovalDecision.PENDING, requested_by=user
    )
    return (
        Revision.objects.filter(
            status=RevisionStatus.AWAITING_APPROVAL,
            integration__in=visible_integrations(user),
        )
        .annotate(is_own=Exists(own))
        .order_by("created_at", "pk")
    )


def approval_queue_count(user: User) -> int:
    """How many requests wait for this user's decision (the nav badge): not their own."""
    if not can(user, Action.APPROVE):
        return 0
    return approval_queue(user).filter(is_own=False).count()
