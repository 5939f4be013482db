"""Integration packages: one JSON file holding an integration's canonical document.

A package is what `GET /api/v1/integrations/{id}/document` serves, wrapped with what an
import needs to know about where it came from:

    {"format": "ilm-package", "format_version": 1, "exported_at": ..., "exported_by": ...,
     "integration": {"id", "name", "environment", "lineage_id", "version"},
     "document": {"integration": {...}, "resources": {lineage_id: {...}}}}

Importing makes either a new integration (resources keep their lineage ids, and the
integration its family, so it can pull from the original later) or a pull into an
existing integration of the same family, reviewed like any pull. A package is checked
whole before anything is written; the first problem found is reported and nothing is
created. Secrets and lookup-cache data are never in a package (they are not in documents).
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.text import slugify
from rest_framework import serializers

from integrations import services as integration_services
from integrations.json_input import edge_depth, located, raw_depth_problem, value_problem
from integrations.models import Environment, Integration, User
from integrations.package_schema import FORMAT, FORMAT_VERSION, first_schema_error
from integrations.resources import INTEGRATION_FIELDS, RESOURCE_TYPES
from integrations.serializers import reject_nul
from integrations.versioning import versioned_change

from .document import document_of, tree_of, tree_of_document
from .services import pull_create, snapshot_create, sync_point_record


def package_of(integration: Integration, *, user: User | None) -> dict[str, Any]:
    """The package of an integration: its canonical document plus where it came from."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "exported_at": timezone.now().isoformat(),
        "exported_by": getattr(user, "username", None),
        "integration": {
            "id": integration.pk,
            "name": integration.name,
            "environment": integration.environment,
            "lineage_id": str(integration.lineage_id),
            "version": integration.version,
        },
        "document": document_of(integration),
    }


def package_bytes(package: dict[str, Any]) -> bytes:
    return orjson.dumps(package, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)


def package_filename(integration: Integration) -> str:
    slug = slugify(integration.name) or f"integration-{integration.pk}"
    return f"{slug}-v{integration.version}.ilm.json"


# Reading and checking -----------------------------------------------------------------


def package_parse(content: bytes) -> dict[str, Any]:
    """Parse and check an uploaded package; ValidationError names the first problem."""
    # Packages are documents, not data dumps; lookup-cache data never travels in them.
    if len(content) > settings.ILM_PACKAGE_MAX_BYTES:
        raise ValidationError(
            f"The file is larger than {settings.ILM_PACKAGE_MAX_BYTES // (1024 * 1024)} MB; "
            "a package holds an integration's document, not its data."
        )
    problem = raw_depth_problem(content, limit=edge_depth())
    if problem is not None:
        raise ValidationError(f"The package is refused: {located(problem[1], problem[0])}")
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"The file is not valid JSON: {exc}.") from None
    return package_validate(data)


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return False
    return isinstance(value, str)


def _label(lineage_id: str, body: dict[str, Any]) -> str:
    """How a message names a resource: `Flow 'Orders' (lineage id)`."""
    rt = RESOURCE_TYPES.get(body.get("type"))
    kind = rt.label if rt else "Resource"
    name = body.get("name")
    return f"{kind} {name!r} ({lineage_id})" if isinstance(name, str) else f"{kind} {lineage_id}"


def package_validate(data: Any) -> dict[str, Any]:
    """Check a package's shape and every resource in it, in order; return it unchanged.

    Raises ValidationError with one message naming the first problem.
    """
    if not isinstance(data, dict):
        raise ValidationError("The package must be a JSON object; this file holds something else.")
    # Text and gross depth everywhere; each resource field is held to a value's depth below.
    problem = value_problem(data, limit=edge_depth())
    if problem is not None:
        raise ValidationError(f"The package is refused: {located(problem[1], problem[0])}")
    if data.get("format") != FORMAT:
        raise ValidationError(f"This is not an ILM package: 'format' must be {FORMAT!r}.")
    if data.get("format_version") != FORMAT_VERSION:
        raise ValidationError(
            f"Package format version {data.get('format_version')!r} is not supported; "
            f"this site reads version {FORMAT_VERSION}."
        )
    meta = data.get("integration")
    if not isinstance(meta, dict):
        raise ValidationError(
            "'integration' must be an object describing the exported integration."
        )
    if not isinstance(meta.get("name"), str) or not meta["name"].strip():
        raise ValidationError("'integration.name' must be a non-empty text.")
    if not _is_uuid(meta.get("lineage_id")):
        raise ValidationError("'integration.lineage_id' must be a UUID.")
    document = data.get("document")
    if not isinstance(document, dict):
        raise ValidationError("'document' must be an object: the integration's canonical document.")
    own = document.get("integration")
    if not isinstance(own, dict):
        raise ValidationError("'document.integration' must be an object.")
    for key, value in own.items():
        if key not in INTEGRATION_FIELDS:
            raise ValidationError(
                f"'document.integration' has an unknown field {key!r}; "
                f"known: {', '.join(INTEGRATION_FIELDS)}."
            )
        if not isinstance(value, str):
            raise ValidationError(f"'document.integration.{key}' must be text.")
    resources = document.get("resources")
    if not isinstance(resources, dict):
        raise ValidationError("'document.resources' must be an object of lineage id → resource.")
    error = first_schema_error(data)
    if error is not None:
        raise ValidationError(_schema_message(error, data))
    seen: dict[uuid.UUID, str] = {}
    for lineage_id in resources:
        same = seen.setdefault(uuid.UUID(lineage_id), lineage_id)
        if same != lineage_id:
            raise ValidationError(
                f"Lineage id {lineage_id} appears twice (also as {same}); lineage ids are "
                "compared regardless of case, so each resource needs its own."
            )
    types = {lineage_id: body["type"] for lineage_id, body in resources.items()}
    for lineage_id, body in resources.items():
        _check_resource(lineage_id, body, resources, types)
    return data


_TYPE_WORDS = {
    "boolean": "must be true or false",
    "object": "must be a JSON object",
    "integer": "must be a whole number",
    "string": "must be text",
}


def _schema_message(error, package: dict[str, Any]) -> str:
    """One sentence for the first schema error, naming the resource and field."""
    path = list(error.absolute_path)
    where = ".".join(str(p) for p in path) or "the package"
    if path[:2] != ["document", "resources"]:
        return f"{where!r}: {error.message}."
    resources = package["document"]["resources"]
    if len(path) == 2:  # propertyNames: a key that is not a lineage id
        return f"Resource key {error.instance!r} is not a lineage id (a UUID)."
    lineage_id, body = path[2], resources[path[2]]
    if not isinstance(body, dict):
        return f"Resource {lineage_id} must be an object."
    if len(path) == 3 or path[3] == "type":
        rt = RESOURCE_TYPES.get(body.get("type")) if isinstance(body.get("type"), str) else None
        if rt is None:
            given = body.get("type")
            shown = repr(given) if isinstance(given, str) else orjson.dumps(given).decode()
            known = ", ".join(RESOURCE_TYPES)
            return f"Resource {lineage_id} has type {shown}; use one of {known}."
    label = _label(lineage_id, body)
    if len(path) == 3:
        known = set(error.schema.get("properties", {}))
        if error.validator == "required":
            missing = [f for f in error.validator_value if f not in body]
            return f"{label} lacks the field {missing[0]!r}."
        if error.validator == "additionalProperties":
            extra = sorted(set(body) - known)
            return f"{label} has a field packages do not carry: {extra[0]!r}."
        return f"{label}: {error.message}."
    name = path[3]
    value = orjson.dumps(error.instance).decode()
    rt = RESOURCE_TYPES[body["type"]]
    if name in rt.refs:
        what = RESOURCE_TYPES[rt.refs[name]].label.lower()
        return (
            f"{label}: {name!r} must be the lineage id of a {what} in this package; {value} is not."
        )
    if name == "name" and len(path) == 4:
        return f"{label} needs a non-empty name."
    if error.validator == "type" and len(path) == 4:
        return f"{label}: {name!r} {_TYPE_WORDS.get(error.validator_value, error.message)}."
    if error.validator == "enum":
        choices = ", ".join(map(str, error.validator_value))
        return f"{label}: {name!r} is {value}; use one of {choices}."
    if error.validator == "maxLength":
        return f"{label}: {name!r} is at most {error.validator_value} characters."
    return f"{label}: {'.'.join(map(str, path[3:]))!r}: {error.message}."


def _check_resource(
    lineage_id: str, body: dict[str, Any], resources: dict[str, Any], types: dict[str, str]
) -> None:
    rt = RESOURCE_TYPES[body["type"]]
    label = _label(lineage_id, body)
    unknown = sorted(set(body) - {"type", *rt.fields})
    if unknown:
        raise ValidationError(f"{label} has a field packages do not carry: {unknown[0]!r}.")
    missing = [f for f in rt.fields if f not in body]
    if missing:
        raise ValidationError(f"{label} lacks the field {missing[0]!r}.")
    if not isinstance(body["name"], str) or not body["name"].strip():
        raise ValidationError(f"{label} needs a non-empty name.")
    for ref, target_type in rt.refs.items():
        value = body[ref]
        if value is None and ref != rt.parent:
            continue
        if types.get(value) != target_type:
            what = RESOURCE_TYPES[target_type].label.lower()
            raise ValidationError(
                f"{label}: {ref!r} must be the lineage id of a {what} in this "
                f"package; {orjson.dumps(value).decode()} is not."
            )
    plain = {f: body[f] for f in rt.fields if f not in rt.refs}
    for name, value in plain.items():
        try:
            reject_nul(value)
        except serializers.ValidationError as exc:
            raise ValidationError(f"{label}: {name!r}: {exc.detail[0]}") from None
    instance = rt.model(lineage_id=lineage_id, **plain)
    for name in plain:
        field = rt.model._meta.get_field(name)
        if isinstance(field, models.JSONField) and not isinstance(plain[name], dict):
            raise ValidationError(f"{label}: {name!r} must be a JSON object.")
        if isinstance(field, models.BooleanField) and not isinstance(plain[name], bool):
            raise ValidationError(f"{label}: {name!r} must be true or false.")
        if isinstance(field, models.IntegerField) and (
            isinstance(plain[name], bool) or not isinstance(plain[name], int)
        ):
            raise ValidationError(f"{label}: {name!r} must be a whole number.")
    try:
        instance.clean_fields(exclude=["id", "integration", *rt.refs])
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise ValidationError(f"{label}: {field}: {messages[0]}") from None
    if rt.validate is not None:
        try:
            rt.validate(plain)
        except ValidationError as exc:
            raise ValidationError(f"{label}: {exc.messages[0]}") from None
    for where, ref, target_type in rt.inner_refs(plain) if rt.inner_refs else ():
        if types.get(ref) != target_type:
            what = RESOURCE_TYPES[target_type].label.lower()
            raise ValidationError(
                f"{label}: {where} refers to a {what} that is not in this package."
            )


# Importing ----------------------------------------------------------------------------


def _create_resources(integration: Integration, document: dict[str, Any]) -> int:
    """Create the document's resources in an empty integration, keeping lineage ids."""
    made: dict[str, models.Model] = {}
    resources = document["resources"]
    for rt in RESOURCE_TYPES.values():  # dependency order: referenced types come first
        mine = sorted(
            ((lid, body) for lid, body in resources.items() if body["type"] == rt.key),
            key=lambda item: (item[1].get("position", 0), item[1]["name"], item[0]),
        )
        for lineage_id, body in mine:
            instance = rt.model(
                integration=integration,
                lineage_id=lineage_id,
                **{f: body[f] for f in rt.fields if f not in rt.refs},
            )
            for ref in rt.refs:
                setattr(instance, ref, made[body[ref]] if body[ref] else None)
            instance.full_clean(validate_constraints=False)
            instance.save()
            made[lineage_id] = instance
    return len(made)


def _original_of(meta: dict[str, Any]) -> Integration | None:
    """The exported integration itself, when it lives on this site."""
    pk = meta.get("id")
    if not isinstance(pk, int) or isinstance(pk, bool):
        return None
    return Integration.objects.filter(pk=pk, lineage_id=meta["lineage_id"]).first()


def _new_from_package(
    package: dict[str, Any],
    *,
    user: User,
    name: str,
    environment: str,
    description: str | None = None,
    cloned_from: Integration | None = None,
) -> Integration:
    document = package["document"]
    own = document["integration"]
    with versioned_change():  # one change: the version goes up once, not per resource
        integration = integration_services.integration_create(
            name=name,
            user=user,
            description=own.get("description", "") if description is None else description,
            environment=environment,
            documentation=own.get("documentation", ""),
        )
        integration.lineage_id = package["integration"]["lineage_id"]
        integration.cloned_from = cloned_from
        integration.save(update_fields=["lineage_id", "cloned_from"])
        _create_resources(integration, document)
    integration.refresh_from_db()
    return integration


def package_import(
    *,
    package: dict[str, Any],
    user: User,
    name: str = "",
    environment: str = Environment.SANDBOX,
) -> Integration:
    """Import a package as a new integration of the exported integration's family.

    Resources keep their lineage ids and the integration its family; when the exported
    integration lives on this site, the import counts as a copy of it taken at export
    time (their sync point), so either can pull from the other later. Returns the new
    integration, with a first snapshot of what was imported.
    """
    package_validate(package)

    meta = package["integration"]
    with transaction.atomic():
        original = _original_of(meta)
        integration = _new_from_package(
            package,
            user=user,
            name=(name or "").strip() or meta["name"],
            environment=environment,
            cloned_from=original,
        )
        if original is not None:
            sync_point_record(a=integration, b=original, tree=tree_of_document(package["document"]))
        snapshot_create(
            integration=integration,
            user=user,
            description=f"Imported from the package of {meta['name']}",
        )
    return integration


def package_pull(
    *, package: dict[str, Any], target: Integration, user: User, description: str = ""
):
    """Import a package as a pull into an integration of its family, reviewed as any pull.

    The package becomes a sandbox integration (the pull's source) whose sync point with
    the target is the target's current state, so the pull shows every difference between
    the package and the target and conflicts with nothing; the reviewer picks what to
    bring over. Returns the pull revision (queued, computed on commit).
    """
    package_validate(package)

    meta = package["integration"]
    if str(target.lineage_id) != meta["lineage_id"]:
        raise ValidationError(
            f"The package holds {meta['name']!r}, which is not of the family of "
            f"{target.name!r}; import it as a new integration instead."
        )
    with transaction.atomic():
        staged = _new_from_package(
            package,
            user=user,
            name=f"{meta['name']} (package import)",
            environment=Environment.SANDBOX,
            cloned_from=target,
        )
        sync_point_record(a=staged, b=target, tree=tree_of(target))
        revision = pull_create(
            target=target,
            source=staged,
            user=user,
            description=description or f"Import of the package of {meta['name']}",
        )
    return revision
