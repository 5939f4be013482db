"""API shapes of revisions and their changesets (docs/api.md, "Revisions")."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from integrations.filters import MAX_ID

from .diff import Changeset
from .models import Choice, Revision, RevisionType

SUMMARY_KEYS = ("added", "modified", "deleted", "conflicts", "unresolved")


class SummarySerializer(serializers.Serializer):
    added = serializers.IntegerField()
    modified = serializers.IntegerField()
    deleted = serializers.IntegerField()
    conflicts = serializers.IntegerField()
    unresolved = serializers.IntegerField()


def summary_of(summary: dict[str, Any] | None) -> dict[str, int]:
    """The contract's five counts, every one present (the engine may store more)."""
    summary = summary or {}
    return {key: int(summary.get(key) or 0) for key in SUMMARY_KEYS}


class RevisionSerializer(serializers.ModelSerializer):
    integration = serializers.IntegerField(source="integration_id", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    source_integration = serializers.IntegerField(
        source="source_integration_id", read_only=True, allow_null=True
    )
    reverted_to = serializers.IntegerField(source="reverted_to_id", read_only=True, allow_null=True)
    summary = serializers.SerializerMethodField()

    class Meta:
        model = Revision
        fields = (
            "id",
            "integration",
            "number",
            "type",
            "status",
            "description",
            "created_by",
            "created_at",
            "started_at",
            "completed_at",
            "source_integration",
            "reverted_to",
            "revert_side",
            "error",
            "summary",
        )
        read_only_fields = fields

    @extend_schema_field(SummarySerializer(allow_null=True))
    def get_summary(self, revision: Revision) -> dict[str, int] | None:
        if revision.type != RevisionType.PULL:
            return None
        return summary_of(revision.summary)


class RevisionCreateSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=[RevisionType.SNAPSHOT, RevisionType.PULL])
    source_integration = serializers.IntegerField(required=False, allow_null=True, max_value=MAX_ID)
    description = serializers.CharField(required=False, allow_blank=True, default="")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["type"] == RevisionType.PULL and not attrs.get("source_integration"):
            raise serializers.ValidationError(
                {"source_integration": ["A pull needs the id of the integration to pull from."]}
            )
        return attrs


class ResolutionInputSerializer(serializers.Serializer):
    lineage_id = serializers.UUIDField()
    path = serializers.CharField(required=False, allow_blank=True, allow_null=True, default="")
    choose = serializers.ChoiceField(choices=Choice.choices)


class ResolutionsSerializer(serializers.Serializer):
    resolutions = ResolutionInputSerializer(many=True, allow_empty=False)


class CommentSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="")


class RevertSerializer(serializers.Serializer):
    to = serializers.ChoiceField(choices=["after", "before"], required=False, default="after")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    version = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=0,
        help_text=(
            "The integration's version the revert was previewed at (`version` of "
            "revert-preview). If the integration changed since: 409, nothing is reverted. "
            "Without it, the version at the time of this request is the one the revert "
            "checks when it runs."
        ),
    )


class FieldChangeSerializer(serializers.Serializer):
    path = serializers.CharField()
    base = serializers.JSONField(allow_null=True)
    ours = serializers.JSONField(allow_null=True)
    theirs = serializers.JSONField(allow_null=True)
    conflict = serializers.BooleanField()
    resolution = serializers.ChoiceField(choices=Choice.choices, allow_null=True)


class ResourceChangeSerializer(serializers.Serializer):
    lineage_id = serializers.CharField()
    type = serializers.CharField()
    name = serializers.CharField(allow_blank=True, allow_null=True)
    action = serializers.ChoiceField(choices=["added", "modified", "deleted"])
    included = serializers.BooleanField(required=False)
    fields = FieldChangeSerializer(many=True)


class ChangesSerializer(serializers.Serializer):
    resources = ResourceChangeSerializer(many=True)
    summary = SummarySerializer()


class RevertPreviewSerializer(ChangesSerializer):
    version = serializers.IntegerField(
        help_text="The integration's version this preview was computed at; pass it to revert."
    )


def changes_out(changes: Changeset) -> dict[str, Any]:
    """The engine's changeset in the contract's shape: every field has its `resolution`."""
    resources = []
    for resource in changes.get("resources") or []:
        row = {
            "lineage_id": str(resource.get("lineage_id")),
            "type": resource.get("type"),
            "name": resource.get("name"),
            "action": resource.get("action"),
            "fields": [
                {
                    "path": f.get("path"),
                    "base": f.get("base"),
                    "ours": f.get("ours"),
                    "theirs": f.get("theirs"),
                    "conflict": bool(f.get("conflict")),
                    "resolution": f.get("resolution"),
                }
                for f in resource.get("fields") or []
            ],
        }
        if "included" in resource:
            row["included"] = bool(resource["included"])
        resources.append(row)
    return {"resources": resources, "summary": summary_of(changes.get("summary"))}


class PullIntoSerializer(serializers.Serializer):
    targets = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        allow_empty=False,
        max_length=100,
        help_text="Ids of the family members to pull into, one pull each.",
    )
    description = serializers.CharField(required=False, allow_blank=True, max_length=4000)


class BatchPullSerializer(serializers.Serializer):
    target = serializers.IntegerField(allow_null=True, help_text="null: a target you cannot see")
    target_name = serializers.CharField()
    revision = serializers.IntegerField(allow_null=True, help_text="null: the target refused")
    status = serializers.CharField(help_text="the pull's status, or refused")
    summary = serializers.JSONField(allow_null=True)
    detail = serializers.CharField(allow_blank=True, help_text="why the target refused")
    merge_note = serializers.CharField(allow_blank=True)


class PullBatchSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    source = serializers.IntegerField(allow_null=True)
    description = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    pulls = BatchPullSerializer(many=True)
