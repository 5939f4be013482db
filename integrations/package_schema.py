"""The package format as one JSON Schema: what documents it is what validates it.

Built from the resource registry (`integrations.resources`) and the models' fields, so a
field added to a resource type is in the schema without being listed again. Served at
`/api/v1/package-schema` (signed-in users) and used by `packages.package_validate`,
which turns the first schema error into a message naming the resource and field.
Rules a schema cannot say (a reference points at a resource of the right type in the
same package, lineage ids unique regardless of case) are checked after it, in
`packages.py`.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.db import models
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError

from .resources import INTEGRATION_FIELDS, RESOURCE_TYPES

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
FORMAT = "ilm-package"
FORMAT_VERSION = 1


def _field_schema(field: models.Field) -> dict[str, Any]:
    if isinstance(field, models.JSONField):
        return {"type": "object"}
    if isinstance(field, models.BooleanField):
        return {"type": "boolean"}
    if isinstance(field, models.IntegerField):
        schema: dict[str, Any] = {"type": "integer"}
        if isinstance(field, models.PositiveIntegerField):
            schema["minimum"] = 0
        return schema
    schema = {"type": "string"}
    if field.choices:
        schema["enum"] = [value for value, _ in field.flatchoices]
    if getattr(field, "max_length", None):
        schema["maxLength"] = field.max_length
    return schema


def _resource_schema(key: str) -> dict[str, Any]:
    rt = RESOURCE_TYPES[key]
    properties: dict[str, Any] = {"type": {"const": key}}
    for name in rt.fields:
        if name in rt.refs:
            target = RESOURCE_TYPES[rt.refs[name]].label.lower()
            ref: dict[str, Any] = {"type": "string", "pattern": UUID_PATTERN}
            if name != rt.parent:
                ref = {"type": ["string", "null"], "pattern": UUID_PATTERN}
            properties[name] = {**ref, "description": f"Lineage id of a {target} in this package."}
            continue
        properties[name] = _field_schema(rt.model._meta.get_field(name))
    properties["name"] = {**properties["name"], "pattern": r"\S"}
    return {
        "title": rt.label,
        "type": "object",
        "properties": properties,
        "required": ["type", *rt.fields],
        "additionalProperties": False,
    }


@cache
def package_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of an ILM package, version 1."""
    resource_keys = list(RESOURCE_TYPES)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "/api/v1/package-schema",
        "title": "ILM package",
        "description": (
            "An integration's canonical document with where it came from. Secrets and "
            "lookup-cache data are never in a package. Resources are keyed by lineage id "
            "(a UUID, unique regardless of case); references between resources are "
            "lineage ids of resources in the same package. Text may not hold NUL or lone "
            "UTF-16 surrogates; JSON values nest at most ILM_JSON_MAX_DEPTH (64) levels; "
            "a package file is at most ILM_PACKAGE_MAX_BYTES (20 MB)."
        ),
        "type": "object",
        "required": ["format", "format_version", "integration", "document"],
        "properties": {
            "format": {"const": FORMAT},
            "format_version": {"const": FORMAT_VERSION},
            "exported_at": {"type": ["string", "null"]},
            "exported_by": {"type": ["string", "null"]},
            "integration": {
                "type": "object",
                "required": ["name", "lineage_id"],
                "properties": {
                    "id": {"type": ["integer", "null"]},
                    "name": {"type": "string", "pattern": r"\S"},
                    "environment": {"type": "string"},
                    "lineage_id": {"type": "string", "pattern": UUID_PATTERN},
                    "version": {"type": ["integer", "null"]},
                },
            },
            "document": {
                "type": "object",
                "required": ["integration", "resources"],
                "properties": {
                    "integration": {
                        "type": "object",
                        "properties": {name: {"type": "string"} for name in INTEGRATION_FIELDS},
                        "additionalProperties": False,
                    },
                    "resources": {
                        "type": "object",
                        "propertyNames": {"pattern": UUID_PATTERN},
                        "additionalProperties": {"$ref": "#/$defs/resource"},
                    },
                },
            },
        },
        "$defs": {
            "resource": {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"enum": resource_keys}},
                # Chosen by `type`; "if" keeps the error about the type's own fields.
                "allOf": [
                    {
                        "if": {"properties": {"type": {"const": key}}, "required": ["type"]},
                        "then": {"$ref": f"#/$defs/{key}"},
                    }
                    for key in resource_keys
                ],
            },
            **{key: _resource_schema(key) for key in resource_keys},
        },
    }


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(package_schema())


def first_schema_error(package: Any) -> SchemaError | None:
    """The schema error nearest the start of the package (in document order), if any."""
    errors = list(_validator().iter_errors(package))
    if not errors:
        return None

    def order(error: SchemaError):
        # Resources in the package's own order; a resource's type before its fields.
        path = list(error.absolute_path)
        rank = []
        node = package
        for part in path:
            if isinstance(node, dict):
                keys = list(node)
                rank.append(keys.index(part) if part in keys else len(keys))
            else:
                rank.append(part if isinstance(part, int) else 0)
            node = node[part] if isinstance(node, dict | list) else None
        return (rank, error.validator != "enum")

    return min(errors, key=order)
