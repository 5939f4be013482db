"""Revisions of integrations: content-addressed trees, the Revision row, sync points.

Declared once here and read everywhere: revision types, statuses, their groupings (open:
one open operation per integration, a database constraint; active: the engine works and
pages poll; reviewable; final; cancellable per type) and the allowed status transitions
(`Revision.move_to`). Code reads the sets, templates the model's `is_*` properties.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone


class RevisionType(models.TextChoices):
    SNAPSHOT = "snapshot", "Snapshot"
    CLONE = "clone", "Clone"
    PULL = "pull", "Pull"
    REVERT = "revert", "Revert"


class RevisionStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    READY = "ready", "Ready for review"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    MERGING = "merging", "Merging"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


S = RevisionStatus
# The one table of allowed status moves.
TRANSITIONS: dict[str, frozenset[str]] = {
    S.QUEUED: frozenset({S.RUNNING, S.MERGING, S.COMPLETED, S.FAILED, S.CANCELED}),
    S.RUNNING: frozenset({S.READY, S.COMPLETED, S.FAILED, S.CANCELED}),
    S.READY: frozenset({S.READY, S.AWAITING_APPROVAL, S.MERGING, S.CANCELED, S.FAILED}),
    # → queued: an approved revert of a protected integration, handed to its task.
    S.AWAITING_APPROVAL: frozenset({S.READY, S.QUEUED, S.MERGING, S.CANCELED, S.FAILED}),
    S.MERGING: frozenset({S.COMPLETED, S.FAILED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELED: frozenset(),
}
FINAL_STATUSES: frozenset[str] = frozenset({S.COMPLETED, S.FAILED, S.CANCELED})
# An integration has at most one revision in these statuses (pull, revert or clone work).
OPEN_STATUSES: frozenset[str] = frozenset(
    {S.QUEUED, S.RUNNING, S.READY, S.AWAITING_APPROVAL, S.MERGING}
)
# The engine is working on these without a person: pages poll them. Ready and awaiting
# approval are open too, but wait for a reviewer, so nothing polls them.
ACTIVE_STATUSES: frozenset[str] = OPEN_STATUSES - {S.READY, S.AWAITING_APPROVAL}
# A person reviews (or approves) the revision in these.
REVIEWABLE_STATUSES: frozenset[str] = frozenset({S.READY, S.AWAITING_APPROVAL})
# Types that hold the integration while open. Snapshots complete at once.
EXCLUSIVE_TYPES: frozenset[str] = frozenset(
    {RevisionType.PULL, RevisionType.REVERT, RevisionType.CLONE}
)

# Types whose revision found one state and left another: only these revert to "before"
# (a snapshot or a clone has one state).
TWO_STATE_TYPES: frozenset[str] = frozenset({RevisionType.PULL, RevisionType.REVERT})
# What can be canceled, per type: an open pull until it merges, a revert until it runs.
CANCELLABLE_STATUSES: dict[str, frozenset[str]] = {
    RevisionType.PULL: OPEN_STATUSES - {S.MERGING},
    RevisionType.REVERT: frozenset({S.QUEUED, S.AWAITING_APPROVAL}),
}

# What the pages say about a status, declared here rather than in templates: the mark a
# finished revision's badge carries, the progress note while the engine works (by
# status, else by type), and the heading of a completed one by type.
STATUS_MARKS: dict[str, str] = {S.COMPLETED: "✓", S.FAILED: "✕"}
PROGRESS_NOTES: dict[str, str] = {
    S.MERGING: "Applying the reviewed changes in one transaction. "
    "A snapshot was taken before anything changed.",
    S.QUEUED: "Waiting for a worker to pick it up.",
}
PROGRESS_NOTES_BY_TYPE: dict[str, str] = {
    RevisionType.PULL: "Comparing the two integrations with their last sync point.",
    RevisionType.REVERT: "Restoring the earlier state. A snapshot was taken first.",
}
DONE_TITLES: dict[str, str] = {
    RevisionType.PULL: "Merged",
    RevisionType.REVERT: "Reverted",
    RevisionType.CLONE: "Cloned",
    RevisionType.SNAPSHOT: "Snapshot saved",
}


class InvalidTransition(Exception):
    pass


class Blob(models.Model):
    """A resource body stored once, keyed by the sha256 of its canonical JSON."""

    hash = models.CharField(max_length=64, primary_key=True)
    body = models.JSONField()

    def __str__(self) -> str:
        return self.hash[:12]


class Tree(models.Model):
    """An integration's state: its own fields plus `{lineage_id: blob hash}`, by hash."""

    hash = models.CharField(max_length=64, primary_key=True)
    integration_fields = models.JSONField(default=dict)
    entries = models.JSONField(default=dict)

    def __str__(self) -> str:
        return self.hash[:12]


class Revision(models.Model):
    integration = models.ForeignKey(
        "integrations.Integration", on_delete=models.CASCADE, related_name="revisions"
    )
    number = models.PositiveIntegerField()
    type = models.CharField(max_length=20, choices=RevisionType.choices)
    status = models.CharField(
        max_length=20, choices=RevisionStatus.choices, default=RevisionStatus.QUEUED
    )
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # pull: where the changes come from; clone: the integration it was cloned from.
    source_integration = models.ForeignKey(
        "integrations.Integration",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # revert: the revision restored, and which side of it ("after" / "before").
    reverted_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revert_side = models.CharField(max_length=10, blank=True)
    error = models.TextField(blank=True)
    # pull: {added, modified, deleted, conflicts, unresolved, by_type: {...}}
    summary = models.JSONField(default=dict, blank=True)
    # State before and after the revision (a snapshot's tree is both).
    tree_before = models.ForeignKey(
        Tree, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    tree_after = models.ForeignKey(
        Tree, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # pull: the three trees the changeset was computed from, and the target's version then;
    # revert: the version it was previewed at (it applies only while that is still true).
    base_tree = models.ForeignKey(
        Tree, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    source_tree = models.ForeignKey(
        Tree, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    target_version = models.PositiveIntegerField(null=True, blank=True)
    # Snapshots taken automatically around a merge or revert point at their operation.
    operation = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="auto_snapshots"
    )
    # clone: copy the lookup-cache entries too (checked against ILM_CLONE_CACHE_DATA_LIMIT_BYTES).
    copy_cache_data = models.BooleanField(default=False)
    # The integration's sync points ({other integration id: tree hash}) when the revision
    # started and when it completed: a revert restores the ones of the state it restores.
    sync_before = models.JSONField(default=dict, blank=True)
    sync_after = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["integration", "number"], name="revision_number"),
            models.UniqueConstraint(
                fields=["integration"],
                condition=Q(status__in=sorted(OPEN_STATUSES), type__in=sorted(EXCLUSIVE_TYPES)),
                name="one_open_operation_per_integration",
                violation_error_message="Another operation is already open on this integration.",
            ),
        ]
        indexes = [
            models.Index(fields=["integration", "-created_at"]),
            models.Index(fields=["status", "type"]),
        ]

    def __str__(self) -> str:
        return f"#{self.number} {self.get_type_display()} ({self.get_status_display()})"

    def get_absolute_url(self) -> str:
        return reverse("revisions:detail", args=[self.pk])

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_active(self) -> bool:
        """The engine is working on it: its pages poll."""
        return self.status in ACTIVE_STATUSES

    @property
    def is_reviewable(self) -> bool:
        return self.status in REVIEWABLE_STATUSES

    @property
    def is_cancellable(self) -> bool:
        return self.status in CANCELLABLE_STATUSES.get(self.type, frozenset())

    @property
    def has_two_states(self) -> bool:
        return self.type in TWO_STATE_TYPES

    @property
    def is_failed(self) -> bool:
        return self.status == RevisionStatus.FAILED

    @property
    def is_comparable(self) -> bool:
        """Completed with a recorded state: it can be picked to compare with another."""
        return self.status == RevisionStatus.COMPLETED and self.tree_after_id is not None

    @property
    def status_mark(self) -> str:
        return STATUS_MARKS.get(self.status, "")

    @property
    def progress_note(self) -> str:
        """What the engine is doing with it, for the page that polls while it works."""
        return PROGRESS_NOTES.get(
            self.status, PROGRESS_NOTES_BY_TYPE.get(self.type, "Working on it.")
        )

    @property
    def done_title(self) -> str:
        return DONE_TITLES.get(self.type, DONE_TITLES[RevisionType.SNAPSHOT])

    def can_move_to(self, status: str) -> bool:
        return status in TRANSITIONS[self.status]

    def move_to(self, status: str, **fields) -> None:
        """Change status along the declared transitions (saves status and given fields)."""
        if not self.can_move_to(status):
            raise InvalidTransition(
                f"Revision #{self.number} cannot go from {self.status} to {status}."
            )
        self.status = status
        if status in FINAL_STATUSES and self.completed_at is None:
            fields.setdefault("completed_at", timezone.now())
        for key, value in fields.items():
            setattr(self, key, value)
        self.save(update_fields=["status", *fields])


class ChangeSet(models.Model):
    """A pull's computed three-way changeset (kept apart: lists never load it)."""

    revision = models.OneToOneField(Revision, on_delete=models.CASCADE, related_name="changeset")
    # {"resources": [{lineage_id, type, name, action, fields: [{path, base, ours, theirs,
    #   conflict}]}]} as produced by revisions.diff.
    data = models.JSONField(default=dict)
    computed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"changes of revision {self.revision_id}"


class Choice(models.TextChoices):
    OURS = "ours", "Keep ours"
    THEIRS = "theirs", "Take theirs"


class Resolution(models.Model):
    """A reviewer's choice for one conflicting path, or (path "") for a whole resource."""

    revision = models.ForeignKey(Revision, on_delete=models.CASCADE, related_name="resolutions")
    lineage_id = models.UUIDField()
    path = models.CharField(max_length=500, blank=True)
    choose = models.CharField(max_length=10, choices=Choice.choices)
    chosen_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    chosen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["revision", "lineage_id", "path"], name="one_resolution_per_path"
            )
        ]

    def __str__(self) -> str:
        return f"{self.lineage_id} {self.path or '*'} → {self.choose}"


class SyncPoint(models.Model):
    """The merge base of two integrations of a family, from a clone or merge onward.

    Rows are only added: the one in effect for a pair is the newest. A revert adds a
    row restoring the sync point that was in effect at the restored state.
    """

    integration = models.ForeignKey(
        "integrations.Integration", on_delete=models.CASCADE, related_name="sync_points"
    )
    other = models.ForeignKey(
        "integrations.Integration", on_delete=models.CASCADE, related_name="+"
    )
    tree = models.ForeignKey(Tree, on_delete=models.PROTECT, related_name="+")
    revision = models.ForeignKey(
        Revision, null=True, blank=True, on_delete=models.SET_NULL, related_name="sync_points"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["integration", "other", "-created_at"])]

    def __str__(self) -> str:
        return f"sync {self.integration_id}↔{self.other_id} at {self.tree_id[:12]}"


class ApprovalDecision(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    LAPSED = "lapsed", "Lapsed"


class Approval(models.Model):
    """A request to merge a pull into production, and an approver's decision on it.

    Pinned to the hash of the resolved changeset: a refresh or a changed resolution after
    the decision makes it lapse.
    """

    revision = models.ForeignKey(Revision, on_delete=models.CASCADE, related_name="approvals")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    request_comment = models.TextField(blank=True)
    changeset_hash = models.CharField(max_length=64)
    decision = models.CharField(
        max_length=10, choices=ApprovalDecision.choices, default=ApprovalDecision.PENDING
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_comment = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]

    def __str__(self) -> str:
        return f"approval of revision {self.revision_id}: {self.decision}"


class PullBatch(models.Model):
    """Pulls from one integration into several of its family opened in one go ("Pull
    into…"). Each target gets its own pull (its own review, resolutions and approval);
    a target that refused is recorded on its item with the reason."""

    source = models.ForeignKey(
        "integrations.Integration", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    source_name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"pulls from {self.source_name} ({self.pk})"

    def get_absolute_url(self) -> str:
        return reverse("revisions:batch", args=[self.pk])


class PullBatchItem(models.Model):
    """One target of a batch: the pull opened into it, or why it refused."""

    batch = models.ForeignKey(PullBatch, on_delete=models.CASCADE, related_name="items")
    target = models.ForeignKey(
        "integrations.Integration", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    target_name = models.CharField(max_length=200)
    revision = models.ForeignKey(
        Revision, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    refused = models.TextField(blank=True)  # why no pull was opened
    # What "Merge all clean" last did with this pull (merging, approval asked, or why not).
    merge_note = models.TextField(blank=True)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["batch", "position", "pk"]

    def __str__(self) -> str:
        return f"{self.target_name} in batch {self.batch_id}"
