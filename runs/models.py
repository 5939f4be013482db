"""Run records: a run is a row before it is a task (`run_flow` takes its id).

A run belongs to an integration and names its flow by lineage id (the flow row may be
reverted away and back; the lineage stays). Per-step figures, the first errors with the
failing record (masked) and a fixed-bucket latency histogram per step are kept, so
monitoring can merge percentiles across runs without the raw timings.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from . import histogram


class RunMode(models.TextChoices):
    LIVE = "live", "Live"
    TEST = "test", "Test"


class RunTrigger(models.TextChoices):
    MANUAL = "manual", "Manual"
    SCHEDULE = "schedule", "Schedule"
    API = "api", "API"
    TEST = "test", "Test"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIAL = "partial", "Partial"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


# Declared once: which statuses are still live, which are final.
OPEN_STATUSES = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})
FINAL_STATUSES = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED, RunStatus.CANCELED}
)

# What the pages say about a status, declared here rather than in templates: the mark a
# finished run's badge carries, and how its message is shown (an error when it failed).
STATUS_MARKS: dict[str, str] = {
    RunStatus.SUCCEEDED: "✓",
    RunStatus.FAILED: "✕",
    RunStatus.PARTIAL: "!",
}


class ErrorKind(models.TextChoices):
    HTTP = "http", "HTTP"
    SCRIPT = "script", "Script"
    MAPPING = "mapping", "Mapping"
    TIMEOUT = "timeout", "Timeout"
    CONNECTION = "connection", "Connection"


class Run(models.Model):
    integration = models.ForeignKey(
        "integrations.Integration", on_delete=models.CASCADE, related_name="runs"
    )
    flow = models.ForeignKey(
        "integrations.Flow", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    flow_lineage_id = models.UUIDField(db_index=True)
    flow_name = models.CharField(max_length=200)
    mode = models.CharField(max_length=10, choices=RunMode.choices, default=RunMode.LIVE)
    trigger = models.CharField(max_length=10, choices=RunTrigger.choices, default=RunTrigger.MANUAL)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    records_in = models.PositiveIntegerField(default=0)
    records_out = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    retries = models.PositiveIntegerField(default=0)
    pages = models.PositiveIntegerField(default=0)
    # Live progress, written between pages: {"page": n, "records": n, "errors": n}
    progress = models.JSONField(default=dict, blank=True)
    cancel_requested = models.BooleanField(default=False)
    # Test runs: the records given (null = the flow's saved samples) and what imports
    # would have sent: [{"step": lineage id, "records": [...]}].
    input_records = models.JSONField(null=True, blank=True)
    output = models.JSONField(default=list, blank=True)
    message = models.TextField(blank=True)
    # The version of the integration the run executed (the document's source).
    integration_version = models.PositiveIntegerField(null=True, blank=True)
    # Scheduled runs: the cron fire time that started the run (one run per fire time).
    scheduled_for = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["integration", "-created_at"]),
            models.Index(fields=["flow_lineage_id", "-created_at"]),
            models.Index(fields=["status"]),
        ]
        constraints = [
            # One live run of a flow at a time (test runs do not send, so they may overlap).
            models.UniqueConstraint(
                fields=["integration", "flow_lineage_id"],
                condition=models.Q(mode="live", status__in=["queued", "running"]),
                name="one_open_live_run_per_flow",
            ),
            # Two ticks (or two beat processes) never start the same fire time twice.
            models.UniqueConstraint(
                fields=["integration", "flow_lineage_id", "scheduled_for"],
                condition=models.Q(scheduled_for__isnull=False),
                name="one_run_per_schedule_fire",
            ),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} of {self.flow_name}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_waiting(self) -> bool:
        """Queued: no worker has picked it up yet."""
        return self.status == RunStatus.QUEUED

    @property
    def is_failed(self) -> bool:
        return self.status == RunStatus.FAILED

    @property
    def status_mark(self) -> str:
        return STATUS_MARKS.get(self.status, "")


class RunStep(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    lineage_id = models.UUIDField()
    position = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20)
    records_in = models.PositiveIntegerField(default=0)
    records_out = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    duration_ms = models.FloatField(default=0)
    http_calls = models.PositiveIntegerField(default=0)
    http_retries = models.PositiveIntegerField(default=0)
    # Counts per bucket of runs.histogram.BUCKETS_MS.
    histogram = models.JSONField(default=list, blank=True)
    # The connection the step called at the time (lineage id), so monitoring keeps
    # response times per connection even after the flow is changed.
    connection_lineage_id = models.UUIDField(null=True, blank=True)

    class Meta:
        ordering = ["run", "position", "pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class RunError(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="error_records")
    step_lineage_id = models.UUIDField()
    step_name = models.CharField(max_length=200, blank=True)
    record_index = models.IntegerField(default=-1)
    kind = models.CharField(max_length=20, choices=ErrorKind.choices)
    message = models.TextField()
    http_status = models.PositiveIntegerField(null=True, blank=True)
    record = models.JSONField(null=True, blank=True)  # masked
    response_excerpt = models.TextField(blank=True)
    script_line = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "pk"]
        indexes = [models.Index(fields=["created_at"], name="runerror_created_at")]

    def __str__(self) -> str:
        return f"{self.kind}: {self.message[:60]}"


class FlowSample(models.Model):
    """The first N input records of a flow's last successful live run (masked): what
    test runs and the behavioural diff run when no records are given."""

    integration = models.ForeignKey(
        "integrations.Integration", on_delete=models.CASCADE, related_name="flow_samples"
    )
    flow_lineage_id = models.UUIDField()
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    records = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "flow_lineage_id"], name="one_sample_set_per_flow"
            )
        ]

    def __str__(self) -> str:
        return f"{len(self.records)} sample(s) of {self.flow_lineage_id}"


class NotificationKind(models.TextChoices):
    ALERT_FIRED = "alert_fired", "Alert fired"
    ALERT_RESOLVED = "alert_resolved", "Alert resolved"
    ERROR_ASSIGNED = "error_assigned", "Error assigned"
    ERRORS_RETRY_OFFER = "errors_retry_offer", "Errors to retry with a fix"


class Notification(models.Model):
    """One message to one user in the bell (runs/notifications.py writes them).

    `url` is a path on this site where the notification leads; following it through
    the notification marks it read. Unread means `read_at` is null.
    """

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=30, choices=NotificationKind.choices)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    url = models.CharField(max_length=500, blank=True)
    # Notifications about an integration go with it: their links would lead nowhere.
    integration = models.ForeignKey(
        "integrations.Integration",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notifications",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["recipient", "-created_at"], name="notification_inbox"),
            # The bell's count on every page: only the unread rows are in this index.
            models.Index(
                fields=["recipient"],
                condition=models.Q(read_at__isnull=True),
                name="notification_unread",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.recipient_id}: {self.title}"

    @property
    def is_unread(self) -> bool:
        return self.read_at is None


class BehaviourStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Done"
    FAILED = "failed", "Failed"


BEHAVIOUR_OPEN = frozenset({BehaviourStatus.QUEUED, BehaviourStatus.RUNNING})


class BehaviourCheck(models.Model):
    """The behavioural diff of a pull (`runs.behaviour`), pinned to the changeset hash its
    result was computed for, like an approval: a refresh or a changed resolution makes it
    stale, and the next look at the pull computes a new one."""

    revision = models.ForeignKey(
        "revisions.Revision", on_delete=models.CASCADE, related_name="behaviour_checks"
    )
    changeset_hash = models.CharField(max_length=64)
    # Records the reviewer gave (run through every touched flow); null = saved samples.
    records = models.JSONField(null=True, blank=True)
    status = models.CharField(
        max_length=10, choices=BehaviourStatus.choices, default=BehaviourStatus.QUEUED
    )
    progress = models.JSONField(default=dict, blank=True)  # {"done": n, "total": n} flows
    result = models.JSONField(default=dict, blank=True)  # runs.behaviour's shape
    message = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["revision", "-created_at"])]

    def __str__(self) -> str:
        return f"behaviour of revision {self.revision_id} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in BEHAVIOUR_OPEN

    @property
    def is_failed(self) -> bool:
        return self.status == BehaviourStatus.FAILED


# Rollups -------------------------------------------------------------------------------
# Fixed sets become columns so that any range adds up in SQL: one column per error kind,
# per HTTP status class of failed calls, and per latency bucket (runs.histogram).
ERROR_KIND_FIELDS: dict[str, str] = {kind: f"errors_{kind}" for kind in ErrorKind.values}
HTTP_CLASSES: tuple[str, ...] = ("4xx", "5xx", "other")
HTTP_CLASS_FIELDS: dict[str, str] = {cls: f"http_{cls}" for cls in HTTP_CLASSES}
BUCKET_FIELDS: tuple[str, ...] = tuple(f"b{i:02d}" for i in range(histogram.SIZE))


class FlowRollup(models.Model):
    """One flow's live runs created in one UTC period, added up (`runs.rollups` writes it).

    Two levels hold the same figures: an hour (`FlowHourRollup`) and a UTC day
    (`FlowDayRollup`), both written in the transaction that ends each run and rebuildable
    from the raw runs (`manage.py monitoring_rollup --rebuild`). Monitoring reads these,
    never the runs: days for the whole days of a range, hours for its ends.
    Error columns count the kept error records (`RunError`) by kind and, for those with
    an HTTP status, by its class; `errors` is every error, kept or not.
    """

    flow_lineage_id = models.UUIDField()
    flow_name = models.CharField(max_length=200)
    runs = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    partial = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    canceled = models.PositiveIntegerField(default=0)
    records_in = models.BigIntegerField(default=0)
    records_out = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    retries = models.BigIntegerField(default=0)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=10, blank=True)
    last_run_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        abstract = True


# Added before the concrete levels are declared, so both inherit them.
for _field in (*ERROR_KIND_FIELDS.values(), *HTTP_CLASS_FIELDS.values()):
    FlowRollup.add_to_class(_field, models.PositiveIntegerField(default=0))


class FlowHourRollup(FlowRollup):
    """A flow's live runs created in one UTC hour (see `FlowRollup`)."""

    integration = models.ForeignKey(
        "integrations.Integration", on_delete=models.CASCADE, related_name="rollups"
    )
    hour = models.DateTimeField()

    class Meta:
        ordering = ["hour", "pk"]
        indexes = [
            models.Index(fields=["hour", "integration"], name="rollup_hour_integration"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "flow_lineage_id", "hour"], name="one_rollup_per_flow_hour"
            )
        ]

    def __str__(self) -> str:
        return f"{self.flow_name} at {self.hour:%Y-%m-%d %H}:00"


class FlowDayRollup(FlowRollup):
    """A flow's live runs created in one UTC day (midnight UTC); the sum of its hours."""

    integration = models.ForeignKey(
        "integrations.Integration", on_delete=models.CASCADE, related_name="+"
    )
    day = models.DateTimeField()

    class Meta:
        ordering = ["day", "pk"]
        indexes = [models.Index(fields=["day", "integration"], name="rollup_day_integration")]
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "flow_lineage_id", "day"], name="one_rollup_per_flow_day"
            )
        ]

    def __str__(self) -> str:
        return f"{self.flow_name} on {self.day:%Y-%m-%d}"


class ConnectionLatency(models.Model):
    """The response times of one flow's calls to one connection in one UTC period: the
    counts per bucket of `runs.histogram.BUCKETS_MS` (columns b00 … b24), so a range's
    percentiles come from summing bucket counts, as Prometheus histograms do."""

    flow_lineage_id = models.UUIDField()
    connection_lineage_id = models.UUIDField()

    class Meta:
        abstract = True

    @property
    def buckets(self) -> list[int]:
        return [getattr(self, f) for f in BUCKET_FIELDS]


for _field in BUCKET_FIELDS:
    ConnectionLatency.add_to_class(_field, models.PositiveIntegerField(default=0))


class ConnectionHourLatency(ConnectionLatency):
    """Response times per connection in one UTC hour (see `ConnectionLatency`)."""

    integration = models.ForeignKey(
        "integrations.Integration", on_delete=models.CASCADE, related_name="+"
    )
    hour = models.DateTimeField()

    class Meta:
        ordering = ["hour", "pk"]
        indexes = [models.Index(fields=["hour", "integration"], name="latency_hour_integration")]
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "flow_lineage_id", "connection_lineage_id", "hour"],
                name="one_latency_per_flow_connection_hour",
            )
        ]

    def __str__(self) -> str:
        return f"{self.connection_lineage_id} at {self.hour:%Y-%m-%d %H}:00"


class ConnectionDayLatency(ConnectionLatency):
    """Response times per connection in one UTC day (midnight UTC); the sum of its hours."""

    integration = models.ForeignKey(
        "integrations.Integration", on_delete=models.CASCADE, related_name="+"
    )
    day = models.DateTimeField()

    class Meta:
        ordering = ["day", "pk"]
        indexes = [models.Index(fields=["day", "integration"], name="latency_day_integration")]
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "flow_lineage_id", "connection_lineage_id", "day"],
                name="one_latency_per_flow_connection_day",
            )
        ]

    def __str__(self) -> str:
        return f"{self.connection_lineage_id} on {self.day:%Y-%m-%d}"


class ErrorGroup(models.Model):
    """The kept error records of one flow's live runs created in one UTC period, grouped
    by step and message (the Monitoring page's "payload issues"): how many, first and
    last seen, the latest run as an example. `digest` (sha256 of the step's lineage id
    and the message) is what groups; the other texts are the greatest seen, as a
    GROUP BY with Max would show them."""

    flow_lineage_id = models.UUIDField()
    flow_name = models.CharField(max_length=200, blank=True)
    step_lineage_id = models.UUIDField()
    step_name = models.CharField(max_length=200, blank=True)
    digest = models.CharField(max_length=64)
    message = models.TextField()
    kind = models.CharField(max_length=20)
    http_status = models.PositiveIntegerField(null=True, blank=True)
    count = models.PositiveIntegerField(default=0)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    example_run_id = models.BigIntegerField()

    class Meta:
        abstract = True


class ErrorGroupHour(ErrorGroup):
    """Error groups of the runs created in one UTC hour (see `ErrorGroup`)."""

    integration = models.ForeignKey(
        "integrations.Integration", on_delete=models.CASCADE, related_name="+"
    )
    hour = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["hour", "integration"], name="errorgroup_hour_integration")]
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "flow_lineage_id", "hour", "digest"],
                name="one_error_group_per_flow_hour",
            )
        ]

    def __str__(self) -> str:
        return f"{self.count} × {self.message[:60]} at {self.hour:%Y-%m-%d %H}:00"


class ErrorGroupDay(ErrorGroup):
    """Error groups of the runs created in one UTC day; the sum of its hours."""

    integration = models.ForeignKey(
        "integrations.Integration", on_delete=models.CASCADE, related_name="+"
    )
    day = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["day", "integration"], name="errorgroup_day_integration")]
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "flow_lineage_id", "day", "digest"],
                name="one_error_group_per_flow_day",
            )
        ]

    def __str__(self) -> str:
        return f"{self.count} × {self.message[:60]} on {self.day:%Y-%m-%d}"


class ErrorState(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"


class ResolvedBy(models.TextChoices):
    USER = "user", "A user"
    RETRY = "retry", "Retry"
    AUTO = "auto", "Auto"


class ErrorRetryStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIAL = "partial", "Partial"
    FAILED = "failed", "Failed"


RETRY_OPEN_STATUSES = frozenset({ErrorRetryStatus.QUEUED, ErrorRetryStatus.RUNNING})


class ErrorRetry(models.Model):
    """A retry of chosen errors: a row before it is a task (`retry_errors` takes its id).

    `error_ids` are the errors it retries; `edits` ({error id: record}, encrypted: they are
    records as sent) replace their retry data. `revision` is set for "retry with the fix":
    the merge whose result the retry tries (its results are shown on that revision)."""

    integration = models.ForeignKey(
        "integrations.Integration", on_delete=models.CASCADE, related_name="error_retries"
    )
    revision = models.ForeignKey(
        "revisions.Revision",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="error_retries",
    )
    status = models.CharField(
        max_length=10, choices=ErrorRetryStatus.choices, default=ErrorRetryStatus.QUEUED
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    error_ids = models.JSONField(default=list)
    edits = models.TextField(blank=True)  # Fernet token of {error id: record}
    total = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # Errors that could not be retried (no retry data kept, step gone): counted apart.
    skipped = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["integration", "-created_at"])]

    def __str__(self) -> str:
        return f"Retry {self.pk} of {self.total} error(s)"

    @property
    def is_open(self) -> bool:
        return self.status in RETRY_OPEN_STATUSES

    @property
    def is_waiting(self) -> bool:
        """Queued: no worker has picked it up yet."""
        return self.status == ErrorRetryStatus.QUEUED

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.skipped


class FlowError(models.Model):
    """One failed record (or batch) of one step, folded across runs: the same step, record
    and message seen again adds an occurrence to the open error instead of a new row.

    `record` is the failing record masked (what people see); `retry_data` is the record as
    it entered the failing step, encrypted, unmasked (what a retry sends on from that step;
    dropped for all but the most recent ILM_ERROR_RETRY_DATA_PER_STEP errors of a step)."""

    integration = models.ForeignKey(
        "integrations.Integration", on_delete=models.CASCADE, related_name="flow_errors"
    )
    run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="flow_errors"
    )
    flow_lineage_id = models.UUIDField()
    flow_name = models.CharField(max_length=200, blank=True)
    step_lineage_id = models.UUIDField()
    step_name = models.CharField(max_length=200, blank=True)
    # sha256 of step, message and masked record: what folds duplicates.
    fingerprint = models.CharField(max_length=64)
    record_index = models.IntegerField(default=-1)
    kind = models.CharField(max_length=20, choices=ErrorKind.choices)
    message = models.TextField()
    http_status = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)
    record = models.JSONField(null=True, blank=True)  # masked
    retry_data = models.TextField(null=True, blank=True)  # Fernet token of the record
    # Which record this is at its step (runs.errors.record_key: a keyed hash of the record
    # as it entered the step); "" when not known (a whole page or batch). Auto-resolve.
    record_key = models.CharField(max_length=64, blank=True, default="", db_default="")
    state = models.CharField(max_length=10, choices=ErrorState.choices, default=ErrorState.OPEN)
    resolved_by = models.CharField(max_length=10, choices=ResolvedBy.choices, blank=True)
    resolved_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolve_comment = models.TextField(blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_errors",
    )
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    occurrences = models.PositiveIntegerField(default=1)
    retries = models.PositiveIntegerField(default=0)
    last_retry = models.ForeignKey(
        ErrorRetry, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-last_seen", "-pk"]
        indexes = [
            # The list: one integration's errors of one state, newest first; and per step
            # or flow (the integration leads every index: the list always filters by it,
            # and a count of one step's errors then reads only that step's entries).
            models.Index(
                fields=["integration", "state", "-last_seen", "-id"], name="flowerror_list"
            ),
            models.Index(
                fields=["integration", "step_lineage_id", "state", "-last_seen", "-id"],
                name="flowerror_step",
            ),
            models.Index(
                fields=["integration", "flow_lineage_id", "state", "-last_seen", "-id"],
                name="flowerror_flow",
            ),
            # Retention: the most recent errors of each step of each integration (a clone's
            # steps keep their lineage ids, so the integration is part of "a step").
            models.Index(
                fields=["integration", "step_lineage_id", "-last_seen", "-id"],
                name="flowerror_recent",
            ),
            # Auto-resolve: the open errors of a record at a step.
            models.Index(
                fields=["integration", "step_lineage_id", "record_key"],
                condition=models.Q(state="open") & ~models.Q(record_key=""),
                name="flowerror_open_record",
            ),
        ]
        constraints = [
            # One open error per fingerprint: folding is safe under concurrent runs.
            models.UniqueConstraint(
                fields=["integration", "fingerprint"],
                condition=models.Q(state="open"),
                name="one_open_error_per_fingerprint",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.message[:60]}"

    @property
    def is_open(self) -> bool:
        return self.state == ErrorState.OPEN

    @property
    def retryable(self) -> bool:
        return self.retry_data is not None


# Alerts --------------------------------------------------------------------------------
# What each kind means, its parameters and their bounds are declared once, in runs/alerts.py.


class AlertKind(models.TextChoices):
    SUCCESS_RATE = "success_rate", "Success rate below X % over the last N runs"
    FAILED_IN_A_ROW = "failed_in_a_row", "N failed runs in a row"
    SLOW_P95 = "slow_p95", "p95 response time above T ms over 1 h"
    NO_SUCCESS = "no_success", "No successful run for H hours"


class AlertState(models.TextChoices):
    OK = "ok", "OK"
    FIRING = "firing", "Firing"


class AlertRule(models.Model):
    """A rule watching one integration's live runs, or one flow's (`runs.alerts` evaluates
    it). It fires once when its condition starts to hold and resolves once when it
    clears; `notified` says whether the managers were told of the current firing (a rule
    that fired while muted tells them when the mute ends, if it still fires)."""

    integration = models.ForeignKey(
        "integrations.Integration", on_delete=models.CASCADE, related_name="alert_rules"
    )
    # None: every flow of the integration, taken together.
    flow_lineage_id = models.UUIDField(null=True, blank=True)
    flow_name = models.CharField(max_length=200, blank=True)  # shown if the flow goes away
    kind = models.CharField(max_length=20, choices=AlertKind.choices)
    threshold = models.FloatField(null=True, blank=True)  # X (%) or T (ms)
    runs = models.PositiveIntegerField(null=True, blank=True)  # N
    hours = models.PositiveIntegerField(null=True, blank=True)  # H
    state = models.CharField(max_length=10, choices=AlertState.choices, default=AlertState.OK)
    reason = models.TextField(blank=True)  # the figures at the last fire or resolve
    fired_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    notified = models.BooleanField(default=False)
    muted_until = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        indexes = [
            models.Index(fields=["integration", "flow_lineage_id"], name="alertrule_watch"),
            models.Index(
                fields=["integration"],
                condition=models.Q(state="firing"),
                name="alertrule_firing",
            ),
        ]

    def __str__(self) -> str:
        return f"Alert rule {self.pk} ({self.kind}) on {self.integration_id}"

    @property
    def is_firing(self) -> bool:
        return self.state == AlertState.FIRING

    def muted_at(self, moment) -> bool:
        return self.muted_until is not None and self.muted_until > moment


class AlertEventKind(models.TextChoices):
    FIRED = "fired", "Fired"
    RESOLVED = "resolved", "Resolved"


class AlertEvent(models.Model):
    """One fire or resolve of a rule: the history the Alerts tab shows (only ever added)."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=10, choices=AlertEventKind.choices)
    at = models.DateTimeField()
    reason = models.TextField(blank=True)
    # It happened while the rule was muted: nobody was told then.
    muted = models.BooleanField(default=False)

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["rule", "-at"], name="alertevent_rule")]

    def __str__(self) -> str:
        return f"{self.kind} at {self.at:%Y-%m-%d %H:%M}"
