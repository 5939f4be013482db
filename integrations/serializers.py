"""API shapes of integrations, their resources, grants and tokens (docs/api.md).

Resource serializers are built from the one registry (`integrations.resources`): each
carries `id`, `lineage_id` and its type's tracked fields; references are written and read
as primary keys of this integration's resources; secret fields are write-only. Serializers
only check shapes and types; the services own the rules and do the writes.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .json_input import located, value_problem
from .models import AccessLevel, Environment, Integration, SnapshotSchedule
from .resources import RESOURCE_TYPES, ResourceType


def reject_nul(value: Any) -> None:
    """Refuse what the site cannot keep (integrations.json_input): NUL, lone surrogates,
    huge numbers, nesting past the limit."""
    problem = value_problem(value)
    if problem is not None:
        where, message = problem
        raise serializers.ValidationError(located(message, where))


class JSONValueField(serializers.JSONField):
    """Any JSON value the database can store; `object_only` for settings-like fields."""

    def __init__(self, *, object_only: bool = False, **kwargs: Any) -> None:
        self.object_only = object_only
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if self.object_only and not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        reject_nul(value)
        return value


class IntegrationSerializer(serializers.ModelSerializer):
    cloned_from = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    lineage_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = Integration
        fields = (
            "id",
            "name",
            "description",
            "environment",
            "cloned_from",
            "version",
            "created_at",
            "updated_at",
            "lineage_id",
            "documentation",
            "snapshot_schedule",
            "protected",
        )
        read_only_fields = (
            "id",
            "cloned_from",
            "version",
            "created_at",
            "updated_at",
            "protected",
        )


def _text(**kwargs: Any) -> serializers.CharField:
    """Text kept exactly as sent: DRF strips surrounding whitespace unless told not to."""
    return serializers.CharField(trim_whitespace=False, **kwargs)


class IntegrationCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = _text(required=False, allow_blank=True, default="")
    environment = serializers.ChoiceField(
        choices=Environment.choices, required=False, default=Environment.SANDBOX
    )
    documentation = _text(required=False, allow_blank=True, default="")
    snapshot_schedule = serializers.ChoiceField(
        choices=SnapshotSchedule.choices, required=False, default=SnapshotSchedule.NONE
    )


class IntegrationUpdateSerializer(serializers.Serializer):
    # The service tidies a name only when it changes, so one sent back as read stays.
    name = _text(max_length=200, required=False)
    description = _text(required=False, allow_blank=True)
    environment = serializers.ChoiceField(choices=Environment.choices, required=False)
    documentation = _text(required=False, allow_blank=True)
    snapshot_schedule = serializers.ChoiceField(choices=SnapshotSchedule.choices, required=False)
    protected = serializers.BooleanField(
        required=False,
        help_text="Change control. Turning it off is for administrators, with a reason.",
    )
    reason = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=1000,
        help_text="Why protection is turned off (required then; kept in the history).",
    )

    def validate_reason(self, value: str) -> str:
        reject_nul(value)
        return value


class CloneSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    environment = serializers.ChoiceField(choices=Environment.choices, required=False)
    include_lookup_cache_data = serializers.BooleanField(required=False, default=False)


class PackageImportSerializer(serializers.Serializer):
    package = JSONValueField(object_only=True, help_text="A package as exported (ilm-package).")
    name = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        default="",
        help_text="Default: the package's.",
    )
    environment = serializers.ChoiceField(
        choices=Environment.choices, required=False, default=Environment.SANDBOX
    )


class PackagePullSerializer(serializers.Serializer):
    package = JSONValueField(object_only=True, help_text="A package of this integration's family.")
    description = serializers.CharField(required=False, allow_blank=True, default="")


class FamilyMemberSerializer(serializers.ModelSerializer):
    class Meta:
        model = Integration
        fields = ("id", "name", "environment")


class GrantSerializer(serializers.Serializer):
    user = serializers.CharField(max_length=150)
    level = serializers.ChoiceField(choices=AccessLevel.choices)

    def to_representation(self, instance: Any) -> dict[str, str]:
        return {"user": instance.user.username, "level": instance.level}


# `{resource_type: [field path, ...]}`, as a raw schema: it is a bare object, not a form.
IGNORE_FIELDS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}


# Resources, built from the registry ----------------------------------------------------


@extend_schema_field(OpenApiTypes.INT)
class RefField(serializers.IntegerField):
    """A reference to another resource: its primary key (null for none)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_null", True)
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def get_attribute(self, instance: Any) -> Any:
        return getattr(instance, f"{self.field_name}_id")

    def to_representation(self, value: Any) -> Any:
        return None if value is None else int(value)


def _resource_serializer(rt: ResourceType) -> type[serializers.ModelSerializer]:
    extra: dict[str, Any] = {
        "lineage_id": serializers.UUIDField(read_only=True),
    }
    for name in rt.refs:
        extra[name] = RefField()
    extra_kwargs: dict[str, dict[str, Any]] = {}
    for name in rt.fields:
        model_field = rt.model._meta.get_field(name)
        if isinstance(model_field, models.JSONField):
            extra[name] = JSONValueField(object_only=True, required=False)
        elif isinstance(model_field, models.CharField | models.TextField) and not (
            model_field.choices
        ):
            # Stored as sent (code, paths, descriptions); the services tidy names.
            extra_kwargs[name] = {"trim_whitespace": False}
    for name in rt.secret_fields:
        extra[name] = JSONValueField(object_only=True, write_only=True, required=False)
    fields: tuple[str, ...] = ("id", "lineage_id", *rt.fields, *rt.secret_fields)
    if rt.key == "lookup_cache":
        # Read-only figures of the cache's data, which no document or pull carries.
        extra["entry_count"] = serializers.IntegerField(read_only=True, default=0)
        extra["data_bytes"] = serializers.IntegerField(read_only=True, default=0)
        fields += ("entry_count", "data_bytes")
    if rt.secret_fields:
        extra["has_credentials"] = serializers.BooleanField(read_only=True)
        fields += ("has_credentials",)
    meta = type("Meta", (), {"model": rt.model, "fields": fields, "extra_kwargs": extra_kwargs})
    name = "".join(part.title() for part in rt.key.split("_")) + "Serializer"
    return type(name, (serializers.ModelSerializer,), {"Meta": meta, **extra})


RESOURCE_SERIALIZERS: dict[str, type[serializers.ModelSerializer]] = {
    key: _resource_serializer(rt) for key, rt in RESOURCE_TYPES.items()
}


class CacheEntrySerializer(serializers.Serializer):
    key = serializers.CharField(max_length=500)
    value = JSONValueField(required=False)


class CacheEntriesInputSerializer(serializers.Serializer):
    """One entry `{key, value}`, or many as `{"entries": [...]}`."""

    key = serializers.CharField(max_length=500, required=False)
    value = JSONValueField(required=False)
    entries = CacheEntrySerializer(many=True, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "entries" in attrs:
            if "key" in attrs:
                raise serializers.ValidationError("Send one entry or a list of entries, not both.")
            if not attrs["entries"]:
                raise serializers.ValidationError({"entries": ["Give at least one entry."]})
            return {"entries": [dict(e) for e in attrs["entries"]]}
        if "key" not in attrs:
            raise serializers.ValidationError(
                {"key": ['Send {key, value} or {"entries": [{key, value}, ...]}.']}
            )
        return {"entries": [{"key": attrs["key"], "value": attrs.get("value", {})}]}


class CacheEntriesAddedSerializer(serializers.Serializer):
    added = serializers.IntegerField()
