"""Pulls into many: one source, several targets of its family, in one go (docs/api.md,
"Behaviour of a pull, and pulls into many"). The "Pull into…" page, the batch page and the
API call these.

A batch is a row first; each target gets an ordinary pull (`services.pull_create`, computed
by its own task), so each has its own review, resolutions and approval. A target that
refuses (not visible, no right to pull into it, not of the family, an operation open) is
recorded on its item with the reason, and the others go on. "Merge all clean" takes each
pull with no unresolved conflict through its target's rule: a sandbox merges, a production
target gets an approval request (each pinned to its own changeset); a pull that cannot is
noted on its row, and the others go on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from integrations.models import Integration, User
from integrations.permissions import HIDDEN_INTEGRATION_NAME, Action, can, can_see

from . import services
from .document import body_hash
from .errors import RevisionError
from .models import PullBatch, PullBatchItem, Revision, RevisionStatus

MAX_TARGETS = 100
# What "Merge all clean" notes on a row it took forward.
NOTE_MERGING = "Merge started."
NOTE_ASKED = "Waiting for approval (production): asked."


def _clean_targets(targets: Any) -> list[int]:
    if not isinstance(targets, (list, tuple)) or not targets:
        raise ValidationError({"targets": ["Choose at least one integration to pull into."]})
    ids: list[int] = []
    for t in targets:
        if isinstance(t, bool) or not isinstance(t, (int, str)) or not str(t).isdecimal():
            raise ValidationError({"targets": [f"{t!r} is not an integration id."]})
        if int(t) not in ids:
            ids.append(int(t))
    if len(ids) > MAX_TARGETS:
        raise ValidationError({"targets": [f"At most {MAX_TARGETS} targets in one go."]})
    return ids


def _refusal(user: User, source: Integration, target: Integration | None) -> str:
    """Why `user` cannot open a pull from `source` into `target`, or ""."""
    if target is None or not can_see(user, target):
        return "No such integration, or you cannot see it."
    if target.pk == source.pk:
        return "An integration cannot pull from itself."
    if target.lineage_id != source.lineage_id:
        return f"{target.name} is not of the same family as {source.name}."
    if not can(user, Action.PULL, target):
        return f"Your role or access does not allow pulling into {target.name}."
    return ""


def pull_batch_create(
    *, source: Integration, targets: Iterable[Any], user: User, description: str = ""
) -> PullBatch:
    """Open one pull from `source` into each target (ids); refusals are kept per target.

    Bad input (no targets, not ids): ValidationError and nothing is written.
    """
    ids = _clean_targets(list(targets) if not isinstance(targets, (list, tuple)) else targets)
    description = (description or "").strip() or f"Pull from {source.name}"
    found = Integration.objects.in_bulk(ids)
    with transaction.atomic():
        batch = PullBatch.objects.create(
            source=source,
            source_name=source.name,
            description=description,
            created_by=user if getattr(user, "pk", None) else None,
        )
        items = []
        for position, pk in enumerate(ids):
            target = found.get(pk)
            reason = _refusal(user, source, target)
            visible = target is not None and can_see(user, target)
            name = target.name if visible else f"Integration {pk}"
            revision = None
            if not reason:
                try:
                    revision = services.pull_create(
                        target=target, source=source, user=user, description=description
                    )
                except (RevisionError, ValidationError) as exc:
                    reason = _message(exc)
            items.append(
                PullBatchItem(
                    batch=batch,
                    target=target if visible else None,
                    target_name=name[:200],
                    revision=revision,
                    refused=reason,
                    position=position,
                )
            )
        PullBatchItem.objects.bulk_create(items)
    return batch


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)


# Reading ------------------------------------------------------------------------------


@dataclass
class BatchRow:
    item: PullBatchItem
    status: str  # the pull's status, or "refused"
    summary: dict[str, Any] | None

    @property
    def clean(self) -> bool:
        """Ready, and nothing left to decide."""
        return (
            self.status == RevisionStatus.READY
            and self.summary is not None
            and not self.summary.get("unresolved")
        )

    @property
    def merged(self) -> bool:
        """The pull went through: a note about how it would merge no longer applies."""
        return self.status == RevisionStatus.COMPLETED


def pull_batch_rows(batch: PullBatch) -> list[BatchRow]:
    """The batch's targets with each pull as it is now."""
    rows = []
    for item in batch.items.select_related("revision", "target").order_by("position", "pk"):
        rev = item.revision
        if rev is None:
            rows.append(BatchRow(item, "refused" if item.refused else "canceled", None))
        else:
            rows.append(BatchRow(item, rev.status, rev.summary or None))
    return rows


def pull_batch_data(batch: PullBatch, user: User) -> dict[str, Any]:
    """The API's shape: {id, source, pulls: [{target, revision, status, summary, ...}]}.
    A target `user` cannot see is named as such, without its id or pull."""
    pulls = []
    for row in pull_batch_rows(batch):
        item = row.item
        if item.target is not None and not can_see(user, item.target):
            pulls.append(
                {
                    "target": None,
                    "target_name": HIDDEN_INTEGRATION_NAME,
                    "revision": None,
                    "status": row.status,
                    "summary": None,
                    "detail": "",
                    "merge_note": "",
                }
            )
            continue
        pulls.append(
            {
                "target": item.target_id,
                "target_name": item.target_name,
                "revision": item.revision_id,
                "status": row.status,
                "summary": row.summary,
                "detail": item.refused,
                "merge_note": item.merge_note,
            }
        )
    return {
        "id": batch.pk,
        "source": batch.source_id,
        "description": batch.description,
        "created_at": batch.created_at,
        "pulls": pulls,
    }


def sync_against(target: Integration, source: Integration) -> str | None:
    """How `target` stands against `source` (up_to_date, local_changes, behind, diverged),
    or None when they never synced. Cached per versions and base, like `sync_status`."""
    from .selectors import _sync_state

    base_tree = services.merge_base(target, source)
    if base_tree is None:
        return None
    key = "ilm:sync-pair:" + body_hash(
        [
            target.pk,
            target.version,
            source.pk,
            source.version,
            base_tree.hash,
            target.ignore_fields or {},
        ]
    )
    state = cache.get(key)
    if state is None:
        state = _sync_state(target, source, base_tree)
        cache.set(key, state, 24 * 3600)
    return state


# Merge all clean ------------------------------------------------------------------------


def _merge_one(revision: Revision, user: User) -> str:
    from .approval_state import needs_approval
    from .approvals import approval_request

    target = revision.integration
    if needs_approval(revision):
        approval_request(revision=revision, user=user, comment="Asked from a pull batch.")
        return NOTE_ASKED
    if not can(user, Action.MERGE, target):
        raise PermissionDenied(f"Your role or access does not allow merging into {target.name}.")
    services.merge_start(revision=revision, user=user)
    return NOTE_MERGING


def pull_batch_merge_clean(*, batch: PullBatch, user: User) -> dict[str, int]:
    """Merge each clean pull of the batch through its target's approval rule.

    Sandbox targets merge; production targets get an approval request. A pull with
    conflicts left, one not ready, or a target that refuses (stale review, no right) is
    noted on its row and left as it is; the others go on. Returns how many pulls this
    call took forward: {"merging": n, "asked": n} (asked: an approval request).
    """
    taken = {"merging": 0, "asked": 0}
    for row in pull_batch_rows(batch):
        item = row.item
        revision = item.revision
        if revision is None:
            continue
        note = item.merge_note  # a pull already merged, canceled or failed keeps its note
        if row.status == RevisionStatus.AWAITING_APPROVAL:
            note = item.merge_note or "Waiting for approval."
        elif row.status in (RevisionStatus.QUEUED, RevisionStatus.RUNNING):
            note = "Still being computed; try again when it is ready."
        elif row.status == RevisionStatus.READY and not row.clean:
            unresolved = (row.summary or {}).get("unresolved", 0)
            note = f"{unresolved} conflict{'s' if unresolved != 1 else ''} to resolve first."
        elif row.status == RevisionStatus.READY:
            try:
                with transaction.atomic():
                    note = _merge_one(revision, user)
                taken["asked" if note == NOTE_ASKED else "merging"] += 1
            except (RevisionError, ValidationError, PermissionDenied) as exc:
                note = f"Not merged: {_message(exc)}"
        if note != item.merge_note:
            item.merge_note = note[:2000]
            item.save(update_fields=["merge_note"])
    return taken
