"""The revision engine's writes: the only entry points for snapshots, clones, pulls,
resolutions, merges, cancels and reverts. Views, the API, commands and tasks call these.

Each operation is a Revision row first; long work runs in a Celery task
(`revisions.tasks`) enqueued on commit, which calls the `*_execute` functions here. An
integration has at most one open pull, revert or clone (a database constraint); a second
one is refused with `OperationInProgress`. Every step a user would want in the audit log
sends `revision_event` on commit.

Sync points: a clone records the source's tree as the pair's merge base; a merge moves it
to what both sides hold alike afterwards (the old base where a change was left out or a
conflict kept "ours", so that change stays pending both ways); a revert restores the ones
in effect at the state it restores, so a re-pull after a revert shows exactly what is
still to bring over.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from simple_history.utils import bulk_create_with_history

from audit.context import Source, acting
from integrations.models import (
    AccessLevel,
    Environment,
    Integration,
    IntegrationAccess,
    LookupCache,
    LookupCacheEntry,
    User,
)
from integrations.permissions import forget_grants
from integrations.resources import LIST_KEYS, PARENT_FIELDS
from integrations.services import cache_data_bytes, starts_protected
from integrations.versioning import mark_changed

from . import diff as engine
from . import tasks
from .apply import apply_document, change_reason, document_problems
from .approval_state import (
    STANDING_DECISIONS,
    changeset_hash,
    is_approved,
    revert_hash,
    revert_needs_approval,
)
from .diff import Changeset
from .document import (
    blobs_of,
    body_hash,
    document_hashes,
    document_of,
    documents_of_trees,
    empty_document,
    tree_of,
    tree_of_document,
    tree_of_entries,
)
from .errors import (
    ApprovalRequired,
    InvalidState,
    NothingToRevert,
    OperationInProgress,
    RevisionError,
    StaleReview,
    UnresolvedConflicts,
)
from .events import send_revision_event
from .models import (
    Approval,
    ApprovalDecision,
    ChangeSet,
    Choice,
    Resolution,
    Revision,
    RevisionStatus,
    RevisionType,
    SyncPoint,
    Tree,
)
from .selectors import (
    busy_message,
    changes_of,
    merge_base,
    open_operation,
    resolutions_of,
    sync_state,
)

S = RevisionStatus
T = RevisionType

REVERT_SIDES = ("after", "before")


# Small shared pieces ------------------------------------------------------------------


def cache_copy_limit() -> int:
    """Bytes below which a clone copies lookup-cache entries (its setting, 5 MB)."""
    return settings.ILM_CLONE_CACHE_DATA_LIMIT_BYTES


def cache_copy_limit_text() -> str:
    """The clone limit as people read it ("5 MB")."""
    return f"{cache_copy_limit() / 1048576:g} MB"


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a merge or a revert.

    A large operation holds several documents of thousands of resources (millions of
    objects) at once; each full collection walks all of them (0.4–0.7 s apiece, three or
    four per merge of the 3,990-resource bench changeset) and finds almost nothing: the
    operation's objects are freed by reference counting (a whole bench merge leaves 64
    objects in cycles). Collection resumes afterwards, and collects those then.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _enqueue(task: Any, revision: Revision, **kwargs: Any) -> None:
    transaction.on_commit(lambda: task.delay(revision.pk, **kwargs))


def _next_number(integration_id: int) -> int:
    top = Revision.objects.filter(integration_id=integration_id).aggregate(n=Max("number"))["n"]
    return (top or 0) + 1


def _lock_integration(integration_id: int) -> Integration:
    return Integration.objects.select_for_update().get(pk=integration_id)


def _busy(integration: Integration) -> OperationInProgress:
    return OperationInProgress(busy_message(integration, open_operation(integration.pk)))


def _create_operation(integration: Integration, **fields: Any) -> Revision:
    """A new exclusive revision; the database refuses a second open one."""
    try:
        with transaction.atomic():
            _lock_integration(integration.pk)
            revision = Revision(
                integration=integration, number=_next_number(integration.pk), **fields
            )
            revision.save()
    except IntegrityError:
        raise _busy(integration) from None
    return revision


def _sync(a_id: int, b_id: int, tree: Tree | str, revision: Revision | None) -> None:
    tree_id = tree if isinstance(tree, str) else tree.pk
    now = timezone.now()
    SyncPoint.objects.bulk_create(
        [
            SyncPoint(
                integration_id=a_id,
                other_id=b_id,
                tree_id=tree_id,
                revision=revision,
                created_at=now,
            ),
            SyncPoint(
                integration_id=b_id,
                other_id=a_id,
                tree_id=tree_id,
                revision=revision,
                created_at=now,
            ),
        ]
    )


def sync_point_record(*, a: Integration, b: Integration, tree: Tree | str) -> None:
    """Record `tree` as the last state `a` and `b` agreed on (the base of their next pulls).

    For callers outside the engine that bring an integration into a family themselves
    (package import); the engine's own operations record theirs with the revision.
    """
    _sync(a.pk, b.pk, tree, None)


def _snapshot(
    integration: Integration,
    *,
    user: Any,
    description: str,
    operation: Revision | None = None,
    tree: Tree | None = None,
) -> Revision:
    tree = tree or tree_of(integration)
    now = timezone.now()
    state = sync_state(integration.pk)
    revision = Revision.objects.create(
        integration=integration,
        number=_next_number(integration.pk),
        type=T.SNAPSHOT,
        status=S.COMPLETED,
        description=description,
        created_by=user if getattr(user, "pk", None) else None,
        started_at=now,
        completed_at=now,
        tree_before=tree,
        tree_after=tree,
        operation=operation,
        sync_before=state,
        sync_after=state,
    )
    send_revision_event(revision, "snapshot", user, automatic=operation is not None)
    return revision


def _clean_description(description: str | None) -> str:
    return (description or "").strip()


# Snapshots ----------------------------------------------------------------------------


def snapshot_create(
    *, integration: Integration, user: User | None, description: str = "", automatic: bool = False
) -> Revision:
    """Store the integration's current state as a completed snapshot revision."""
    description = _clean_description(description)
    if automatic and not description:
        description = "Automatic snapshot"
    with transaction.atomic():
        locked = _lock_integration(integration.pk)
        return _snapshot(locked, user=user, description=description)


# Clone --------------------------------------------------------------------------------


def integration_clone(
    *,
    source: Integration,
    user: User | None,
    name: str,
    environment: str = Environment.SANDBOX,
    copy_cache_data: bool = False,
) -> Integration:
    """Create a clone of `source` (new pks, same lineage ids); the copy runs in a task.

    Lookup-cache entries are copied only when asked and only while their total size is
    under `cache_copy_limit()`. Connection credentials are never copied.
    """
    name = (name or "").strip()
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = ["Give the clone a name."]
    if environment not in Environment.values:
        errors["environment"] = [f"Environment must be one of: {', '.join(Environment.values)}."]
    if errors:
        raise ValidationError(errors)
    if copy_cache_data:
        size = cache_data_bytes(source.pk)
        if size >= cache_copy_limit():
            raise ValidationError(
                {
                    "include_lookup_cache_data": [
                        f"The lookup caches of {source.name} hold {size / 1048576:.1f} MB; "
                        f"cache data is copied only under {cache_copy_limit_text()}. Clone "
                        "without it, or clear some entries first."
                    ]
                }
            )
    with transaction.atomic():
        clone = Integration(
            name=name,
            description=source.description,
            documentation=source.documentation,
            environment=environment,
            lineage_id=source.lineage_id,
            cloned_from=source,
            ignore_fields=source.ignore_fields,
            created_by=user if getattr(user, "pk", None) else None,
            protected=starts_protected(environment),
        )
        clone.full_clean(validate_constraints=False)
        clone.save()
        if getattr(user, "pk", None):
            IntegrationAccess.objects.create(integration=clone, user=user, level=AccessLevel.MANAGE)
            forget_grants(user)
        revision = _create_operation(
            clone,
            type=T.CLONE,
            status=S.QUEUED,
            source_integration=source,
            created_by=user if getattr(user, "pk", None) else None,
            description=f"Cloned from {source.name}",
            copy_cache_data=bool(copy_cache_data),
        )
        _enqueue(tasks.clone_run, revision)
    return clone


def clone_execute(revision: Revision) -> Revision:
    """Copy the source into the clone in one transaction; re-running finds it done."""
    with transaction.atomic():
        revision = Revision.objects.select_for_update().get(pk=revision.pk)
        if revision.status not in (S.QUEUED, S.RUNNING):
            return revision
        clone = _lock_integration(revision.integration_id)
        source = revision.source_integration
        if source is None:
            raise InvalidState("The integration to clone from was deleted; delete this clone.")
        doc = document_of(source)
        source_tree = tree_of_document(doc)
        apply_document(integration=clone, document=doc, revision=revision)
        copied = 0
        if revision.copy_cache_data:
            copied = _copy_cache_entries(source, clone, revision)
        _sync(clone.pk, source.pk, source_tree, revision)
        # A clone starts at version 1, the state it was cloned as: the rows its creation
        # wrote (grant, resources, cache entries) are one act, not user changes to count.
        Integration.objects.filter(pk=clone.pk).update(version=1)
        revision.move_to(
            S.COMPLETED,
            base_tree=source_tree,
            tree_after=source_tree,
            sync_before={},
            sync_after=sync_state(clone.pk),
            started_at=revision.started_at or timezone.now(),
        )
        send_revision_event(
            revision, "clone", revision.created_by, source=source.pk, cache_entries=copied
        )
    return revision


def _copy_cache_entries(source: Integration, clone: Integration, revision: Revision) -> int:
    size = cache_data_bytes(source.pk)
    if size >= cache_copy_limit():
        raise ValidationError(
            f"The lookup caches of {source.name} grew to {size / 1048576:.1f} MB; cache data "
            f"is copied only under {cache_copy_limit_text()}. Clone again without cache data."
        )
    caches = {
        c.lineage_id: c
        for c in LookupCache.objects.filter(integration=clone).only("pk", "lineage_id")
    }
    entries = [
        LookupCacheEntry(cache=caches[e.cache.lineage_id], key=e.key, value=e.value, size=e.size)
        for e in LookupCacheEntry.objects.filter(cache__integration=source).select_related("cache")
        if e.cache.lineage_id in caches
    ]
    if entries:
        bulk_create_with_history(
            entries,
            LookupCacheEntry,
            batch_size=1000,
            default_change_reason=change_reason(revision),
        )
        mark_changed(clone.pk)
    return len(entries)


# Pulls --------------------------------------------------------------------------------


def _check_family(target: Integration, source: Integration) -> None:
    if source.pk == target.pk:
        raise ValidationError(
            {"source_integration": ["An integration cannot pull from itself; pick a relative."]}
        )
    if source.lineage_id != target.lineage_id:
        raise ValidationError(
            {
                "source_integration": [
                    f"{source.name} is not of the same family as {target.name} (neither is a "
                    "clone of the other and they share no ancestor)."
                ]
            }
        )


def pull_create(
    *, target: Integration, source: Integration, user: User | None, description: str = ""
) -> Revision:
    """Open a pull of `source`'s changes into `target` (queued; computed by a task)."""
    _check_family(target, source)
    with transaction.atomic():
        revision = _create_operation(
            target,
            type=T.PULL,
            status=S.QUEUED,
            source_integration=source,
            created_by=user if getattr(user, "pk", None) else None,
            description=_clean_description(description),
        )
        _enqueue(tasks.pull_compute, revision)
    return revision


def _three_way_now(
    target: Integration, source: Integration
) -> tuple[Changeset, Tree | None, Tree, Tree]:
    """The changeset of pulling `source` into `target` now, and its base, ours, theirs."""
    ours = document_of(target)
    theirs = document_of(source)
    ours_tree = tree_of_document(ours)
    theirs_tree = tree_of_document(theirs)
    base_tree = merge_base(target, source)
    (base,) = documents_of_trees(base_tree)
    changes = engine.three_way(
        base,
        ours,
        theirs,
        ignore=target.ignore_fields or {},
        keys=LIST_KEYS,
        parents=PARENT_FIELDS,
        hashes=(base_tree.entries if base_tree else {}, ours_tree.entries, theirs_tree.entries),
    )
    return changes, base_tree, ours_tree, theirs_tree


def pull_changes(*, target: Integration, source: Integration) -> Changeset:
    """What a pull of `source` into `target` would show now, without opening one."""
    _check_family(target, source)
    return _three_way_now(target, source)[0]


def _compute(revision: Revision) -> Changeset:
    """Compute (or recompute) a pull's changeset; keeps the resolutions that still apply."""
    source = revision.source_integration
    if source is None:
        raise InvalidState("The integration to pull from was deleted; cancel this pull.")
    target = _lock_integration(revision.integration_id)
    _check_family(target, source)
    changes, base_tree, ours_tree, theirs_tree = _three_way_now(target, source)
    # Resolutions that no longer decide anything in the new changeset are dropped.
    for res in list(revision.resolutions.all()):
        if not engine.resolution_applies(changes, str(res.lineage_id), res.path or None):
            res.delete()
    ChangeSet.objects.update_or_create(
        revision=revision, defaults={"data": changes, "computed_at": timezone.now()}
    )
    resolved = engine.with_resolutions(changes, resolutions_of(revision))
    revision.refresh_from_db(fields=["status"])
    fields = {
        "base_tree": base_tree,
        "source_tree": theirs_tree,
        "tree_before": ours_tree,
        "target_version": target.version,
        "summary": resolved["summary"],
        "error": "",
    }
    return fields


def pull_execute(revision: Revision) -> Revision:
    """Compute a queued pull's changeset (status → ready). Nothing is written to the target."""
    with transaction.atomic():
        revision = Revision.objects.select_for_update().get(pk=revision.pk)
        if revision.status not in (S.QUEUED, S.RUNNING):
            return revision
        fields = _compute(revision)
        if revision.status == S.QUEUED:
            revision.move_to(S.RUNNING, started_at=timezone.now())
        revision.move_to(S.READY, **fields)
        send_revision_event(
            revision, "pull", revision.created_by, source=revision.source_integration_id
        )
    return revision


def pull_refresh(*, revision: Revision, user: User | None) -> Revision:
    """Recompute a pull ready for review against both sides now; keeps valid resolutions."""
    with transaction.atomic():
        locked = Revision.objects.select_for_update().get(pk=revision.pk)
        if locked.type != T.PULL or locked.status not in (S.READY, S.AWAITING_APPROVAL):
            raise InvalidState(
                f"{_label(locked)} is {locked.get_status_display().lower()}; only a pull "
                "ready for review can be refreshed."
            )
        fields = _compute(locked)
        locked.move_to(S.READY, **fields)
        send_revision_event(locked, "pull", user, refreshed=True)
    _copy_state(locked, revision)
    return revision


def _copy_state(fresh: Revision, stale: Revision) -> None:
    for f in fresh._meta.concrete_fields:
        setattr(stale, f.attname, getattr(fresh, f.attname))


def _label(revision: Revision) -> str:
    return f"{revision.get_type_display()} #{revision.number}"


# Resolutions --------------------------------------------------------------------------


def _validate_resolution(
    changes: Mapping[str, Any], lineage_id: Any, path: str | None, choose: Any
) -> tuple[str, str]:
    if choose not in Choice.values:
        raise ValidationError({"choose": ['Choose "ours" or "theirs".']})
    lid = str(lineage_id or "").strip().lower()
    res = next((r for r in changes["resources"] if r["lineage_id"] == lid), None)
    if res is None:
        raise ValidationError(
            {"lineage_id": [f"{lineage_id} is not among this pull's changed resources."]}
        )
    path = (path or "").strip()
    if path and not engine.is_whole_resource_conflict(res):
        fields = engine.fields_under(res, path)
        if not fields:
            raise ValidationError({"path": [f"{res['name']} has no change at {path!r}."]})
        if not any(f["conflict"] for f in fields):
            raise ValidationError(
                {
                    "path": [
                        f"{path} of {res['name']} is not a conflict; only conflicts take a choice."
                    ]
                }
            )
    if engine.is_whole_resource_conflict(res):
        path = ""  # one side deleted what the other changed: decided for the whole resource
    return lid, path


def _resolve_locked(revision: Revision) -> Revision:
    locked = Revision.objects.select_for_update().get(pk=revision.pk)
    if locked.type != T.PULL or locked.status != S.READY:
        raise InvalidState(
            f"{_label(locked)} is {locked.get_status_display().lower()}; conflicts are "
            "resolved while a pull is ready for review."
        )
    return locked


def resolutions_set(
    *, revision: Revision, user: User | None, resolutions: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """Record reviewers' choices [{lineage_id, path?, choose}], all or none; → new summary.

    Per conflict "ours" keeps the target's value and "theirs" takes the source's. Without
    a path, "ours" leaves the whole resource out of the merge and "theirs" takes it in.
    """
    resolutions = list(resolutions or [])
    if not resolutions:
        raise ValidationError({"resolutions": ["Give at least one resolution."]})
    with transaction.atomic():
        locked = _resolve_locked(revision)
        changes = ChangeSet.objects.get(revision_id=locked.pk).data
        chosen = []
        for i, r in enumerate(resolutions, start=1):
            if not isinstance(r, Mapping):
                raise ValidationError({"resolutions": [f"Resolution {i} must be an object."]})
            try:
                lid, path = _validate_resolution(
                    changes, r.get("lineage_id"), r.get("path"), r.get("choose")
                )
            except ValidationError as exc:
                raise ValidationError(
                    {"resolutions": [f"Resolution {i}: {' '.join(exc.messages)}"]}
                ) from None
            chosen.append((lid, path, r["choose"]))
        _store_resolutions(locked, chosen, user)
        summary = engine.with_resolutions(changes, resolutions_of(locked))["summary"]
        locked.refresh_from_db(fields=["status"])
        locked.summary = summary
        locked.save(update_fields=["summary"])
    _copy_state(locked, revision)
    return summary


def _store_resolutions(
    revision: Revision, chosen: list[tuple[str, str, str]], user: User | None
) -> None:
    """Insert or replace the choices in bulk (a CI run may resolve thousands at once).

    Bulk writes send no signals, so the approvals' lapse check runs once afterwards.
    """
    now = timezone.now()
    wanted = {(lid, path): choose for lid, path, choose in chosen}
    existing = {
        (str(r.lineage_id), r.path): r
        for r in Resolution.objects.filter(revision=revision).select_for_update()
    }
    created, updated = [], []
    for (lid, path), choose in wanted.items():
        row = existing.get((lid, path))
        if row is None:
            created.append(
                Resolution(
                    revision=revision,
                    lineage_id=lid,
                    path=path,
                    choose=choose,
                    chosen_by=_user(user),
                    chosen_at=now,
                )
            )
        else:
            row.choose, row.chosen_by, row.chosen_at = choose, _user(user), now
            updated.append(row)
    Resolution.objects.bulk_create(created, batch_size=500)
    Resolution.objects.bulk_update(updated, ["choose", "chosen_by", "chosen_at"], batch_size=500)
    approvals_lapse_stale(revision=revision, user=_user(user))


def resolution_set(
    *, revision: Revision, user: User | None, lineage_id: Any, path: str | None, choose: str
) -> dict[str, Any]:
    """Record one choice (see `resolutions_set`); returns the new summary."""
    return resolutions_set(
        revision=revision,
        user=user,
        resolutions=[{"lineage_id": lineage_id, "path": path, "choose": choose}],
    )


def _user(user: Any) -> Any:
    return user if getattr(user, "pk", None) else None


def approvals_lapse_stale(*, revision: Revision, user: User | None = None) -> int:
    """Lapse the standing request or approval whose changeset hash no longer holds.

    A pull awaiting approval goes back to ready: it must be asked for (and approved)
    again. Returns how many lapsed. Called on every change of a pull's changeset or
    resolutions (signals below), and callable by the engine after a refresh.
    """
    standing = list(
        Approval.objects.filter(revision_id=revision.pk, decision__in=STANDING_DECISIONS).only(
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
        send_revision_event(revision, "approval_lapsed", user, approvals=[a.pk for a in stale])
    return len(stale)


# Merge --------------------------------------------------------------------------------


@_no_cycle_collection()
def merge_start(*, revision: Revision, user: User | None) -> Revision:
    """Start merging a reviewed pull (→ merging; the merge runs in a task).

    Refused while conflicts are unresolved, when the target changed since the pull was
    computed, and for production targets without an approval.
    """
    with transaction.atomic():
        locked = Revision.objects.select_for_update().get(pk=revision.pk)
        if locked.type != T.PULL:
            raise InvalidState(f"{_label(locked)} is not a pull; only pulls are merged.")
        if locked.status not in (S.READY, S.AWAITING_APPROVAL):
            raise InvalidState(
                f"{_label(locked)} is {locked.get_status_display().lower()}; only a pull "
                "ready for review can be merged."
            )
        changes = changes_of(locked)
        unresolved = changes["summary"]["unresolved"]
        if unresolved:
            noun = "conflict" if unresolved == 1 else "conflicts"
            raise UnresolvedConflicts(
                f"Resolve the {unresolved} unresolved {noun} (keep ours or take theirs) first."
            )
        target = locked.integration
        if target.version != locked.target_version:
            raise _stale(target, locked)
        if not is_approved(locked):
            raise ApprovalRequired(
                f"{target.name} is a production integration: ask an approver to approve this "
                "pull before it merges."
            )
        merged = engine.apply_changes(document_of(target), changes)
        problems = document_problems(merged)
        if problems:
            raise ValidationError(problems)
        locked.move_to(S.MERGING, error="")
        _enqueue(tasks.merge_run, locked, user_id=getattr(user, "pk", None))
    _copy_state(locked, revision)
    return revision


def _agreed(base: Any, merged: Any, source: Any) -> Any:
    """What target and source hold alike after a merge, and the old base where they differ.

    The new merge base of the pair. Where the merged target equals the source's reviewed
    state, that state is agreed; a change left out of the merge, or a conflict kept
    "ours", leaves both sides different there, so the base keeps its old value and the
    change stays pending in each direction: a forward pull offers it again, and a pull
    the other way does not take it for a change of its own to undo. Values are compared
    as deep as the three-way diff walks them (dict keys, list items of equal lists).
    """
    if merged == source:
        return source
    if base in (source, merged):
        # Everywhere the two differ, base equals one of them: the base stays as it was.
        return base
    if all(isinstance(v, dict) for v in (base, merged, source)):
        out = {}
        for key in base.keys() | merged.keys() | source.keys():
            value = _agreed(
                base.get(key, engine.MISSING),
                merged.get(key, engine.MISSING),
                source.get(key, engine.MISSING),
            )
            if value is not engine.MISSING:
                out[key] = value
        return out
    if all(isinstance(v, list) for v in (base, merged, source)) and len(base) == len(merged) == len(
        source
    ):
        return [_agreed(b, m, s) for b, m, s in zip(base, merged, source, strict=True)]
    return base


def _hashes_after(
    before: Mapping[str, Any], before_hashes: Mapping[str, str], after: Mapping[str, Any]
) -> dict[str, str]:
    """Body hashes of `after`, a document made from `before` by `apply_changes`: a body it
    did not change is the same object as before (only what changes is copied), whose hash
    is known already."""
    old = before["resources"]
    return {
        lid: before_hashes[lid] if old.get(lid) is body else body_hash(body)
        for lid, body in after["resources"].items()
    }


def _agreed_tree(
    base_tree: Tree | None,
    merged: Mapping[str, Any],
    merged_hashes: Mapping[str, str],
    source_tree: Tree,
) -> Tree:
    """The sync point a merge records: `_agreed` resource by resource, as a stored tree.

    Resources are compared by their body hashes first (`merged_hashes`: the merged
    document's): where the merged body is the source's, or the base's is one of the two,
    the answer is that hash, with no body read. Only resources that differ on all three
    sides (a change taken in part) are loaded and walked by `_agreed`.
    """
    base = base_tree.entries if base_tree is not None else {}
    source = source_tree.entries
    entries: dict[str, str] = {}
    walked: list[str] = []
    for lid in base.keys() | merged_hashes.keys() | source.keys():
        b, m, s = base.get(lid), merged_hashes.get(lid), source.get(lid)
        if m == s or b in (m, s):
            agreed = s if m == s else b
            if agreed is not None:  # None: absent from that side
                entries[lid] = agreed
        else:
            walked.append(lid)
    stored = blobs_of({h for lid in walked for h in (base.get(lid), source.get(lid)) if h})
    bodies = {h: merged["resources"][lid] for lid, h in merged_hashes.items()}
    for lid in walked:
        body = _agreed(
            stored[base[lid]] if lid in base else engine.MISSING,
            merged["resources"].get(lid, engine.MISSING),
            stored[source[lid]] if lid in source else engine.MISSING,
        )
        if body is not engine.MISSING:
            entries[lid] = body_hash(body)
            bodies[entries[lid]] = body
    own = _agreed(
        base_tree.integration_fields if base_tree is not None else empty_document()["integration"],
        merged["integration"],
        source_tree.integration_fields,
    )
    return tree_of_entries(own, entries, bodies)


def _stale(target: Integration, revision: Revision) -> RevisionError:
    return StaleReview(
        f"{target.name} changed since this pull was computed; refresh the pull and review "
        "the changes again."
    )


@_no_cycle_collection()
def merge_execute(revision: Revision, *, user: Any = None) -> Revision:
    """Apply a merging pull in one transaction: snapshot, apply, snapshot, sync point.

    Re-running finds a completed merge done; a merge interrupted before its commit left
    nothing behind and is done whole.
    """
    with transaction.atomic():
        revision = Revision.objects.select_for_update().get(pk=revision.pk)
        if revision.status != S.MERGING:
            return revision
        user = user or revision.created_by
        target = _lock_integration(revision.integration_id)
        if target.version != revision.target_version:
            raise _stale(target, revision)
        changes = changes_of(revision)
        if changes["summary"]["unresolved"]:
            raise UnresolvedConflicts("Conflicts are unresolved; resolve them and merge again.")
        sync_before = sync_state(target.pk)
        current = document_of(target)
        current_hashes = document_hashes(current)
        before = _snapshot(
            target,
            user=user,
            description=f"Before merging pull #{revision.number}",
            operation=revision,
            tree=tree_of_document(current, hashes=current_hashes),
        )
        merged = engine.apply_changes(current, changes)
        merged_hashes = _hashes_after(current, current_hashes, merged)
        apply_document(
            integration=target,
            document=merged,
            revision=revision,
            expected_version=revision.target_version,
            current=current,
        )
        after_tree = tree_of_document(merged, hashes=merged_hashes)
        if revision.source_integration_id and revision.source_tree_id:
            _sync(
                target.pk,
                revision.source_integration_id,
                _agreed_tree(revision.base_tree, merged, merged_hashes, revision.source_tree),
                revision,
            )
        _snapshot(
            target,
            user=user,
            description=f"After merging pull #{revision.number}",
            operation=revision,
            tree=after_tree,
        )
        revision.move_to(
            S.COMPLETED,
            tree_before=before.tree_after,
            tree_after=after_tree,
            sync_before=sync_before,
            sync_after=sync_state(target.pk),
        )
        send_revision_event(revision, "merge", user, source=revision.source_integration_id)
    return revision


# Cancel -------------------------------------------------------------------------------


def revision_cancel(*, revision: Revision, user: User | None) -> Revision:
    """Cancel an open pull (not once it is merging) or a revert not yet running."""
    with transaction.atomic():
        locked = Revision.objects.select_for_update().get(pk=revision.pk)
        if not locked.is_cancellable:
            raise InvalidState(
                f"{_label(locked)} is {locked.get_status_display().lower()} and cannot be "
                "canceled; only an open pull that is not merging can."
            )
        locked.move_to(S.CANCELED)
        send_revision_event(locked, "cancel", user)
    _copy_state(locked, revision)
    return revision


# Revert -------------------------------------------------------------------------------


def revert_target(revision: Revision, side: str) -> Tree:
    """The tree a revert to `side` of `revision` restores; the one place the sides' rules
    live (the page shows the ValidationError on its form, the API answers 400 with it)."""
    if side not in REVERT_SIDES:
        raise ValidationError({"to": ["Use 'after' or 'before'."]})
    if side == "before" and not revision.has_two_states:
        raise ValidationError(
            {"to": ["'before' is for pulls and reverts; a snapshot or clone has one state."]}
        )
    if revision.status != S.COMPLETED:
        raise InvalidState(
            f"{_label(revision)} is {revision.get_status_display().lower()}; only completed "
            "revisions can be restored."
        )
    tree = revision.tree_after if side == "after" else revision.tree_before
    if tree is None:
        raise ValidationError(
            {"to": [f"{_label(revision)} has no recorded state {side} it to restore."]}
        )
    return tree


def revert_preview(*, revision: Revision, side: str = "after") -> Changeset:
    """The changes reverting to the state after (or before) `revision` would make."""
    tree = revert_target(revision, side)
    current = document_of(revision.integration)
    (target,) = documents_of_trees(tree)
    return engine.diff(
        current,
        target,
        keys=LIST_KEYS,
        parents=PARENT_FIELDS,
        hashes=(document_hashes(current), tree.entries),
    )


def _revert_stale(integration: Integration, previewed: int, now: int) -> StaleReview:
    return StaleReview(
        f"{integration.name} changed since this revert was previewed (version {previewed}, "
        f"now {now}); nothing was reverted. Preview the revert again to see what it would "
        "change now."
    )


@_no_cycle_collection()
def revert_start(
    *,
    revision: Revision,
    user: User | None,
    side: str = "after",
    description: str = "",
    version: int | None = None,
) -> Revision:
    """Open a revert of the integration to the state after (or before) `revision`.

    On a protected integration only approvers and administrators revert at once; anyone
    else's revert waits in `awaiting_approval` for an approver (revisions.approvals).

    `version` is the integration's version the caller previewed the revert at (None: the
    version now). A preview that is already stale is refused (StaleReview); the revert
    runs only if the integration is still at that version when the task applies it, so
    it never discards a change made after it was asked for.
    """
    revert_target(revision, side)
    integration = revision.integration
    integration.refresh_from_db(fields=["version"])
    if version is not None and version != integration.version:
        raise _revert_stale(integration, version, integration.version)
    previewed_at = integration.version
    preview = revert_preview(revision=revision, side=side)
    if engine.is_empty(preview):
        raise NothingToRevert(
            f"{integration.name} is already in the state {side} {_label(revision).lower()}; "
            "there is nothing to revert."
        )
    description = _clean_description(description) or (
        f"Revert to {side} {_label(revision).lower()}"
    )
    waits = revert_needs_approval(integration, user)
    with transaction.atomic():
        new = _create_operation(
            integration,
            type=T.REVERT,
            status=S.AWAITING_APPROVAL if waits else S.QUEUED,
            reverted_to=revision,
            revert_side=side,
            created_by=_user(user),
            description=description,
            summary=preview["summary"],
            target_version=previewed_at,
        )
        if waits:
            revert_approval_open(revision=new, user=user)
        else:
            _enqueue(tasks.revert_run, new)
    return new


def revert_approval_open(*, revision: Revision, user: User | None) -> Approval:
    """The pending request of a revert that waits for an approver (in revert_start's
    transaction: the revert and its request exist together or not at all)."""
    approval = Approval.objects.create(
        revision=revision,
        requested_by=user if getattr(user, "pk", None) else None,
        request_comment=revision.description,
        changeset_hash=revert_hash(revision),
    )
    send_revision_event(revision, "approval_requested", user, comment=approval.request_comment)
    return approval


def revert_approved_run(*, revision: Revision) -> Revision:
    """Hand an approved revert to its task (awaiting_approval → queued)."""
    revision.move_to(S.QUEUED)
    _enqueue(tasks.revert_run, revision)
    return revision


@_no_cycle_collection()
def revert_execute(revision: Revision) -> Revision:
    """Bring the integration back to the restored tree in one transaction.

    Refused (StaleReview, the revert fails and nothing is written) when the integration
    changed since the revert was previewed: those changes were never shown to its author.
    """
    with transaction.atomic():
        revision = Revision.objects.select_for_update().get(pk=revision.pk)
        if revision.status not in (S.QUEUED, S.RUNNING):
            return revision
        restored = revision.reverted_to
        if restored is None:
            raise InvalidState("The revision to restore was deleted; nothing was changed.")
        tree = revert_target(restored, revision.revert_side or "after")
        integration = _lock_integration(revision.integration_id)
        if revision.target_version is not None and integration.version != revision.target_version:
            raise _revert_stale(integration, revision.target_version, integration.version)
        user = revision.created_by
        sync_before = sync_state(integration.pk)
        current = document_of(integration)
        before = _snapshot(
            integration,
            user=user,
            description=f"Before revert #{revision.number}",
            operation=revision,
            tree=tree_of_document(current),
        )
        (doc,) = documents_of_trees(tree)
        apply_document(integration=integration, document=doc, revision=revision, current=current)
        wanted = restored.sync_after if revision.revert_side != "before" else restored.sync_before
        for other_id, tree_id in (wanted or {}).items():
            if (
                sync_before.get(other_id) != tree_id
                and Integration.objects.filter(pk=other_id).exists()
            ):
                _sync(integration.pk, int(other_id), tree_id, revision)
        after_tree = tree
        _snapshot(
            integration,
            user=user,
            description=f"After revert #{revision.number}",
            operation=revision,
            tree=after_tree,
        )
        if revision.status == S.QUEUED:
            revision.move_to(S.RUNNING, started_at=timezone.now())
        revision.move_to(
            S.COMPLETED,
            tree_before=before.tree_after,
            tree_after=after_tree,
            sync_before=sync_before,
            sync_after=sync_state(integration.pk),
        )
        send_revision_event(
            revision, "revert", user, reverted_to=restored.pk, side=revision.revert_side
        )
    return revision


# Task plumbing ------------------------------------------------------------------------


def revision_start(revision_id: int) -> Revision | None:
    """Mark a queued revision running (committed at once, so pages show progress)."""
    with transaction.atomic():
        revision = Revision.objects.select_for_update().filter(pk=revision_id).first()
        if revision is not None and revision.status == S.QUEUED:
            revision.move_to(S.RUNNING, started_at=timezone.now())
    return revision


def revision_fail(revision_id: int, error: str, *, user: Any = None) -> Revision | None:
    """Record that an operation failed, with a message a user can act on."""
    with transaction.atomic():
        revision = Revision.objects.select_for_update().filter(pk=revision_id).first()
        if revision is None or revision.is_final:
            return revision
        revision.move_to(S.FAILED, error=error[:5000])
        send_revision_event(revision, "fail", user or revision.created_by, error=error[:500])
    return revision


def run_operation(revision_id: int, kind: str, *, user_id: int | None = None) -> Revision | None:
    """What each task does: load by id, run the operation as its user, record failure."""
    revision = Revision.objects.filter(pk=revision_id).select_related("created_by").first()
    if revision is None or revision.is_final:
        return revision
    user = User.objects.filter(pk=user_id).first() if user_id else revision.created_by
    with acting(user, Source.ILM, revision_id=revision.pk):
        try:
            if kind == "merge":
                return merge_execute(revision, user=user)
            if revision.status == S.QUEUED:
                revision_start(revision.pk)
            if kind == "pull":
                return pull_execute(revision)
            if kind == "clone":
                return clone_execute(revision)
            if kind == "revert":
                return revert_execute(revision)
            raise ValueError(f"Unknown operation {kind!r}.")
        except (RevisionError, ValidationError, engine.ChangesetError) as exc:
            return revision_fail(revision.pk, _message(exc), user=user)
        except Exception as exc:
            revision_fail(
                revision.pk,
                f"The {kind} failed unexpectedly ({type(exc).__name__}: {exc}). Nothing was "
                "changed; try again, and tell an administrator if it keeps failing.",
                user=user,
            )
            raise


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)


# Scheduled snapshots ------------------------------------------------------------------

SCHEDULE_PERIODS = {"daily": 1, "weekly": 7}


def scheduled_snapshots_run(*, now: Any = None) -> list[Revision]:
    """Snapshot each integration whose schedule is due and that changed since its last one."""
    from datetime import timedelta

    now = now or timezone.now()
    made: list[Revision] = []
    for integration in Integration.objects.filter(snapshot_schedule__in=list(SCHEDULE_PERIODS)):
        last = (
            Revision.objects.filter(integration=integration, type=T.SNAPSHOT, status=S.COMPLETED)
            .order_by("-number")
            .first()
        )
        period = timedelta(days=SCHEDULE_PERIODS[integration.snapshot_schedule])
        if last is not None and last.created_at > now - period + timedelta(minutes=5):
            continue
        doc = document_of(integration)
        if last is not None and last.tree_after_id == _tree_hash_of(doc):
            continue
        with transaction.atomic(), acting(None, Source.SYSTEM):
            locked = _lock_integration(integration.pk)
            made.append(
                _snapshot(
                    locked,
                    user=None,
                    description=f"Scheduled {integration.snapshot_schedule} snapshot",
                    tree=tree_of_document(doc),
                )
            )
    return made


def _tree_hash_of(doc: Mapping[str, Any]) -> str:
    from .document import tree_hash

    return tree_hash(dict(doc["integration"]), document_hashes(doc))
