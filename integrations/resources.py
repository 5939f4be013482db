"""The one declaration of what revisions track.

For each resource type: its model, the fields a document carries, which of those are
references to other resources (written as lineage ids), and its parent. Documents,
diff, apply, clone, the API and the audit all read this registry; nothing lists the
fields again. Secrets (connection credentials) and lookup-cache data are not fields here,
so no document ever holds them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse

from . import models as m
from .schedules import describe_schedule


@dataclass(frozen=True)
class ResourceType:
    key: str
    model: type[models.Model]
    label: str
    plural: str
    fields: tuple[str, ...]
    # field -> resource type key it refers to; stored as lineage id in documents.
    refs: dict[str, str] = field(default_factory=dict)
    parent: str | None = None  # field naming the parent resource (steps live in flows)
    secret_fields: tuple[str, ...] = ()
    # Lists whose elements have an identity: {field path: identity field}. Diff and merge
    # walk them element by element (two people adding different mappings do not
    # conflict); everything else shows the element by that identity. `config.hooks` is
    # an object by hook name already, so it is walked key by key without a declaration.
    list_keys: dict[str, str] = field(default_factory=dict)
    # Fields holding program text: their changes are shown line by line (review, audit).
    code_fields: tuple[str, ...] = ()
    # Field -> words for its value, shown beside it in a review (a schedule's meaning).
    described_fields: dict[str, Callable[[str], str]] = field(default_factory=dict)
    # Checks of a body's values beyond the model's field checks that need no database
    # (apply and package import run it per body; the model's clean() runs the full one).
    # Raises ValidationError naming the field.
    validate: Callable[[Mapping[str, Any]], None] | None = None
    # References inside a field's value (a step's mapping naming a lookup cache): yields
    # (where, lineage id, referred type) for a body; apply and package import check that
    # each refers to a resource that is there.
    inner_refs: Callable[[Mapping[str, Any]], Iterator[tuple[str, str, str]]] | None = None
    # Where people see it: the URL name of the integration tab listing it, and of its own
    # page where it has one (both take the integration's pk; the page then its pk).
    tab: str | None = None
    page: str | None = None

    @property
    def parent_type(self) -> str | None:
        """Key of the type this one lives in (a step's flow): what its parent field refers to."""
        return self.refs[self.parent] if self.parent else None

    def queryset(self, integration_id: int) -> models.QuerySet:
        qs = self.model.objects.filter(integration_id=integration_id)
        if self.refs:
            qs = qs.select_related(*self.refs)
        return qs


# Dependency order: a type only refers to types before it. Apply creates in this order
# and deletes in the reverse one.
RESOURCE_TYPES: dict[str, ResourceType] = {
    rt.key: rt
    for rt in (
        ResourceType(
            "connection",
            m.Connection,
            "Connection",
            "Connections",
            ("name", "kind", "config"),
            secret_fields=("credentials",),
            tab="integrations:connections",
        ),
        ResourceType(
            "lookup_cache",
            m.LookupCache,
            "Lookup cache",
            "Lookup caches",
            ("name", "key_path", "settings"),
            tab="integrations:caches",
            page="integrations:cache",
        ),
        ResourceType(
            "script",
            m.Script,
            "Script",
            "Scripts",
            ("name", "function", "code"),
            code_fields=("code",),
            tab="integrations:scripts",
        ),
        ResourceType(
            "flow",
            m.Flow,
            "Flow",
            "Flows",
            ("name", "description", "enabled", "schedule"),
            described_fields={"schedule": describe_schedule},
            tab="integrations:flows",
            page="integrations:flow",
        ),
        ResourceType(
            "step",
            m.FlowStep,
            "Flow step",
            "Flow steps",
            ("name", "flow", "position", "kind", "connection", "config"),
            refs={"flow": "flow", "connection": "connection"},
            parent="flow",
            list_keys={"config.mappings": "target"},
            validate=lambda values: validate_step_config_field(values.get("config")),
            inner_refs=lambda values: step_cache_refs(values.get("config")),
        ),
    )
}

TYPE_BY_MODEL: dict[type[models.Model], ResourceType] = {
    rt.model: rt for rt in RESOURCE_TYPES.values()
}

# The integration's own fields that revisions carry. Name and environment are not:
# a sandbox clone keeps its own name and environment through every pull.
INTEGRATION_FIELDS: tuple[str, ...] = ("description", "documentation")

# Fields that are names, whose surrounding whitespace never means anything: services strip
# a new value of these. Every other text (code, descriptions, paths) is kept as sent.
NAME_FIELDS: frozenset[str] = frozenset({"name", "function"})

# Fields never shown in any diff, history view or audit value.
SECRET_FIELDS: frozenset[str] = frozenset(
    f for rt in RESOURCE_TYPES.values() for f in rt.secret_fields
)


def hide_secrets(value: Any, *, mask: str | None = None) -> Any:
    """A copy of `value` with every secret key (SECRET_FIELDS) hidden, at any depth.

    The one rule for secrets in shown values: `mask` None drops the key (a diff shows no
    such field), a mask string keeps the key with that in place of its value (the audit
    log says a secret was there).
    """
    if isinstance(value, dict):
        if mask is None:
            return {k: hide_secrets(v) for k, v in value.items() if k not in SECRET_FIELDS}
        return {
            k: (mask if k in SECRET_FIELDS else hide_secrets(v, mask=mask))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [hide_secrets(v, mask=mask) for v in value]
    return value


# {resource type: {list path: identity field}}, as the diff engine takes it.
LIST_KEYS: dict[str, dict[str, str]] = {
    rt.key: dict(rt.list_keys) for rt in RESOURCE_TYPES.values() if rt.list_keys
}

# {resource type: field naming its parent}, as the diff engine takes it.
PARENT_FIELDS: dict[str, str] = {rt.key: rt.parent for rt in RESOURCE_TYPES.values() if rt.parent}

# {nested resource type: the type it lives in} (steps live in flows): reviews and snapshot
# contents show each nested resource under its parent.
PARENT_TYPES: dict[str, str] = {
    rt.key: rt.parent_type for rt in RESOURCE_TYPES.values() if rt.parent_type
}


def resource_url(type_key: str, integration_id: int, pk: int) -> str:
    """Where a resource is shown: its own page, else the tab that lists it."""
    rt = RESOURCE_TYPES[type_key]
    if rt.page:
        return reverse(rt.page, args=[integration_id, pk])
    if rt.tab:
        return reverse(rt.tab, args=[integration_id])
    raise ValueError(f"A {rt.label.lower()} has no page of its own.")


def is_code_field(type_key: str, field_name: str) -> bool:
    """Whether a field holds program text (a line diff shows its changes)."""
    rt = RESOURCE_TYPES.get(type_key)
    return rt is not None and field_name in rt.code_fields


def is_described_field(type_key: str, field_name: str) -> bool:
    """Whether a field's value is shown with words beside it (a flow's schedule)."""
    rt = RESOURCE_TYPES.get(type_key)
    return rt is not None and field_name in rt.described_fields


def field_meaning(type_key: str, field_name: str, value: Any) -> str:
    """Words for a field's value where its type declares them ("" otherwise)."""
    rt = RESOURCE_TYPES.get(type_key)
    describe = rt.described_fields.get(field_name) if rt is not None else None
    return describe(value) if describe is not None and isinstance(value, str) else ""


def resource_type_for(instance_or_model: Any) -> ResourceType | None:
    model = instance_or_model if isinstance(instance_or_model, type) else type(instance_or_model)
    return TYPE_BY_MODEL.get(model)


MAPPING_KEYS = frozenset({"source", "target", "lookup_cache"})


def validate_step_config(config: Any, *, integration_id: int | None) -> None:
    """A step's config is an object; its `mappings` a list of {source, target, lookup_cache?}.

    A mapping's lookup cache is written as the lineage id of a cache of the same
    integration.
    """
    if not isinstance(config, dict):
        raise ValidationError("Config must be a JSON object.")
    mappings = config.get("mappings", [])
    if not isinstance(mappings, list):
        raise ValidationError("mappings must be a list.")
    cache_ids: set[str] | None = None
    for i, mapping in enumerate(mappings, start=1):
        if not isinstance(mapping, dict):
            raise ValidationError(f"Mapping {i} must be an object with source and target.")
        unknown = sorted(set(mapping) - MAPPING_KEYS)
        if unknown:
            raise ValidationError(
                f"Mapping {i} has unknown field(s) {', '.join(map(repr, unknown))}; "
                "a mapping has source, target and lookup_cache."
            )
        for key in ("source", "target"):
            if not isinstance(mapping.get(key), str) or not mapping[key].strip():
                raise ValidationError(f"Mapping {i} needs a non-empty {key!r}.")
        cache = mapping.get("lookup_cache")
        if cache in (None, ""):
            continue
        try:
            uuid.UUID(str(cache))
        except ValueError:
            raise ValidationError(f"Mapping {i}: lookup_cache must be a lookup cache id.") from None
        if integration_id is not None:
            if cache_ids is None:
                cache_ids = {
                    str(x)
                    for x in m.LookupCache.objects.filter(
                        integration_id=integration_id
                    ).values_list("lineage_id", flat=True)
                }
            if str(cache) not in cache_ids:
                raise ValidationError(
                    f"Mapping {i} refers to a lookup cache that is not in this integration."
                )


def validate_step_config_field(config: Any) -> None:
    """`validate_step_config` without the database, its refusal on the `config` field."""
    try:
        validate_step_config(config, integration_id=None)
    except ValidationError as exc:
        raise ValidationError({"config": exc.messages}) from None


def step_cache_refs(config: Any) -> Iterator[tuple[str, str, str]]:
    """The lookup caches a step's config names: ("mapping i", lineage id, "lookup_cache")."""
    if not isinstance(config, dict):
        return
    for i, mapping in enumerate(config.get("mappings") or [], start=1):
        cache = mapping.get("lookup_cache") if isinstance(mapping, dict) else None
        if cache not in (None, ""):
            yield f"mapping {i}", str(cache), "lookup_cache"


def validate_ignore_fields(value: Any) -> dict[str, list[str]]:
    """Ignore-fields are {resource_type: [field path, ...]} over the declared types."""
    if not isinstance(value, dict):
        raise ValidationError("Ignore-fields must be an object of resource type → paths.")
    clean: dict[str, list[str]] = {}
    for key, paths in value.items():
        if key not in RESOURCE_TYPES and key != "integration":
            raise ValidationError(
                f"Unknown resource type {key!r}; use one of "
                + ", ".join(["integration", *RESOURCE_TYPES])
                + "."
            )
        if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
            raise ValidationError(f"Ignore-fields for {key!r} must be a list of field paths.")
        clean[key] = sorted(set(paths))
    return clean
