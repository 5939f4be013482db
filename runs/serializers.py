"""API shapes of runs (docs/api.md, "Flow runs (the runtime)")."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from integrations.serializers import JSONValueField

from .models import ErrorRetry, FlowError, ResolvedBy, Run, RunError, RunMode
from .selectors import step_figures


class RunStartSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=RunMode.choices, default=RunMode.LIVE)
    records = serializers.ListField(
        child=JSONValueField(object_only=True),
        required=False,
        allow_empty=False,
        max_length=10_000,
        help_text="Test runs: the records to run (default: the flow's saved samples).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # A live run reads its records from the export; pasted records are for test runs.
        if attrs.get("mode") == RunMode.LIVE and "records" in attrs:
            raise serializers.ValidationError(
                {"records": ["Records are given to test runs only; a live run reads its own."]}
            )
        return attrs


class HttpFiguresSerializer(serializers.Serializer):
    calls = serializers.IntegerField()
    retries = serializers.IntegerField()
    p50_ms = serializers.FloatField(allow_null=True)
    p95_ms = serializers.FloatField(allow_null=True)


class RunStepSerializer(serializers.Serializer):
    lineage_id = serializers.UUIDField()
    name = serializers.CharField()
    kind = serializers.CharField()
    records_in = serializers.IntegerField()
    records_out = serializers.IntegerField()
    errors = serializers.IntegerField()
    duration_ms = serializers.FloatField()
    http = HttpFiguresSerializer()


class RunOutputSerializer(serializers.Serializer):
    step = serializers.UUIDField(help_text="The import step's lineage id.")
    records = serializers.ListField(child=JSONValueField(), help_text="What it would send.")


class ProgressSerializer(serializers.Serializer):
    page = serializers.IntegerField(required=False)
    records = serializers.IntegerField(required=False)
    errors = serializers.IntegerField(required=False)


class RunSerializer(serializers.ModelSerializer):
    flow = serializers.IntegerField(source="flow_id", allow_null=True, read_only=True)
    integration = serializers.IntegerField(source="integration_id", read_only=True)
    created_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    steps = serializers.SerializerMethodField()
    output = serializers.SerializerMethodField()
    progress = ProgressSerializer(read_only=True)

    class Meta:
        model = Run
        fields = (
            "id",
            "flow",
            "flow_lineage_id",
            "flow_name",
            "integration",
            "mode",
            "trigger",
            "status",
            "created_by",
            "created_at",
            "started_at",
            "ended_at",
            "records_in",
            "records_out",
            "errors",
            "retries",
            "pages",
            "progress",
            "cancel_requested",
            "scheduled_for",
            "message",
            "steps",
            "output",
        )
        read_only_fields = fields

    @extend_schema_field(RunStepSerializer(many=True))
    def get_steps(self, run: Run) -> list[dict[str, Any]]:
        return [step_figures(s) for s in run.steps.all()]

    @extend_schema_field(RunOutputSerializer(many=True, allow_null=True))
    def get_output(self, run: Run) -> list[dict[str, Any]] | None:
        # Test runs only: what the import steps would have sent.
        return run.output if run.mode == RunMode.TEST else None


class RunErrorSerializer(serializers.ModelSerializer):
    step = serializers.UUIDField(source="step_lineage_id", read_only=True)
    record = serializers.SerializerMethodField()

    class Meta:
        model = RunError
        fields = (
            "id",
            "step",
            "step_name",
            "record_index",
            "kind",
            "message",
            "http_status",
            "record",
            "response_excerpt",
            "script_line",
            "created_at",
        )
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.ANY)
    def get_record(self, error: RunError) -> Any:
        return error.record


class BehaviourStartSerializer(serializers.Serializer):
    records = serializers.ListField(
        child=JSONValueField(object_only=True),
        required=False,
        allow_empty=False,
        max_length=10_000,
        help_text="Records to run through every flow the pull touches (default: each flow's "
        "saved samples).",
    )


class BehaviourSerializer(serializers.Serializer):
    """A pull's behaviour check (docs/api.md, "Behaviour of a pull"); `flows` as runs.behaviour."""

    id = serializers.IntegerField(allow_null=True)
    revision = serializers.IntegerField()
    status = serializers.CharField(
        help_text="queued, running, succeeded, failed; not_run when the pull was never tested"
    )
    stale = serializers.BooleanField(
        help_text="Computed for an earlier changeset (a refresh or a resolution since)"
    )
    changeset_hash = serializers.CharField(allow_blank=True)
    records_given = serializers.BooleanField()
    progress = serializers.JSONField()
    flows = serializers.JSONField()
    totals = serializers.JSONField()
    unresolved_as_theirs = serializers.IntegerField()
    message = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)


def behaviour_data(revision_id: int, check: Any, *, stale: bool) -> dict[str, Any]:
    """The API's answer for a check (or None: never tested)."""
    result = (check.result if check is not None else None) or {}
    return {
        "id": check.pk if check is not None else None,
        "revision": revision_id,
        "status": check.status if check is not None else "not_run",
        "stale": stale,
        "changeset_hash": check.changeset_hash if check is not None else "",
        "records_given": check is not None and check.records is not None,
        "progress": check.progress if check is not None else {},
        "flows": result.get("flows", []),
        "totals": result.get("totals", {}),
        "unresolved_as_theirs": result.get("unresolved_as_theirs", 0),
        "message": check.message if check is not None else "",
        "created_at": check.created_at if check is not None else None,
        "ended_at": check.ended_at if check is not None else None,
    }


class FlowErrorSerializer(serializers.ModelSerializer):
    run = serializers.IntegerField(source="run_id", read_only=True, allow_null=True)
    flow = serializers.UUIDField(source="flow_lineage_id", read_only=True)
    step = serializers.UUIDField(source="step_lineage_id", read_only=True)
    record = serializers.SerializerMethodField()
    resolved_by = serializers.SerializerMethodField()
    assignee = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    comment = serializers.CharField(source="resolve_comment", read_only=True)
    retry_data_kept = serializers.SerializerMethodField()

    class Meta:
        model = FlowError
        fields = (
            "id",
            "run",
            "flow",
            "flow_name",
            "step",
            "step_name",
            "kind",
            "message",
            "http_status",
            "response_excerpt",
            "record",
            "state",
            "resolved_by",
            "resolved_at",
            "comment",
            "assignee",
            "first_seen",
            "last_seen",
            "occurrences",
            "retries",
            "retry_data_kept",
        )
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.ANY)
    def get_record(self, error: FlowError) -> Any:
        return error.record

    @extend_schema_field(OpenApiTypes.STR)
    def get_resolved_by(self, error: FlowError) -> str | None:
        """A username, `retry` or `auto`; null while open."""
        if not error.resolved_by:
            return None
        if error.resolved_by == ResolvedBy.USER:
            return error.resolved_by_user.get_username() if error.resolved_by_user else "user"
        return error.resolved_by

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_retry_data_kept(self, error: FlowError) -> bool:
        # The list defers the token and annotates whether it is there.
        kept = getattr(error, "has_retry_data", None)
        return bool(kept) if kept is not None else error.retry_data is not None


class ErrorRetryRequestSerializer(serializers.Serializer):
    ids = serializers.ListField(child=serializers.IntegerField(min_value=1), max_length=10_000)
    records = serializers.DictField(
        child=JSONValueField(object_only=True),
        required=False,
        help_text="{error id: edited record}: sent instead of the error's retry data.",
    )


class ErrorResolveRequestSerializer(serializers.Serializer):
    ids = serializers.ListField(child=serializers.IntegerField(min_value=1), max_length=10_000)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=5000)


class ErrorAssignSerializer(serializers.Serializer):
    assignee = serializers.CharField(allow_null=True, help_text="A username, or null.")


class ErrorRetrySerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    revision = serializers.IntegerField(source="revision_id", read_only=True, allow_null=True)

    class Meta:
        model = ErrorRetry
        fields = (
            "id",
            "status",
            "revision",
            "created_by",
            "created_at",
            "started_at",
            "ended_at",
            "total",
            "succeeded",
            "failed",
            "skipped",
            "message",
        )
        read_only_fields = fields
