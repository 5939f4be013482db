"""Make an integration's resources equal a document, all of it or nothing.

`apply_document` runs inside one `versioned_change()` (an atomic block; the version goes up
once) with the integration row locked. With `expected_version`, an integration that
changed since the caller's review is refused before anything is written. Resources are
created and updated in dependency order (connections and caches before the steps that use
them, flows before their steps) and deleted in the reverse order, each through a save or
delete so django-simple-history records it with a change reason naming the revision.

Lookup caches: the document carries their settings only. A cache created here starts
empty; an existing cache keeps its entries; a deleted cache takes its entries with it.
Connection credentials are not in documents: a created connection has none, an existing
one keeps its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import JSONField
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from audit.bulk import copies, copy_value, write_history
from integrations.models import OPERATION_REASON_PREFIX, Integration
from integrations.resources import (
    INTEGRATION_FIELDS,
    RESOURCE_TYPES,
    ResourceType,
)
from integrations.versioning import mark_changed, versioned_change

from .document import document_of
from .errors import StaleReview


def change_reason(revision: Any) -> str:
    """What history rows written for a revision say about where they came from."""
    if revision is None:
        return f"{OPERATION_REASON_PREFIX}operation"
    return (
        f"{OPERATION_REASON_PREFIX}{revision.get_type_display().lower()} #{revision.number} "
        f"(revision {revision.pk})"
    )


def document_problems(document: Mapping[str, Any]) -> list[str]:
    """Why a document cannot be applied: unknown types, references to missing resources."""
    problems: list[str] = []
    resources = document.get("resources") or {}
    for lid, body in resources.items():
        rt = RESOURCE_TYPES.get(body.get("type", ""))
        label = f"{body.get('type', 'resource')} {body.get('name') or lid}"
        if rt is None:
            problems.append(f"{label}: unknown resource type {body.get('type')!r}.")
            continue
        for field, target_type in rt.refs.items():
            ref = body.get(field)
            if ref is None:
                if field == rt.parent:
                    problems.append(f"{rt.label} {body.get('name')!r} has no {field}.")
                continue
            target = resources.get(str(ref))
            if target is None or target.get("type") != target_type:
                what = RESOURCE_TYPES[target_type].label.lower()
                problems.append(
                    f"{rt.label} {body.get('name')!r} uses a {what} that would not exist "
                    f"({ref}); include that {what} or leave the {rt.label.lower()} out."
                )
        for where, ref, target_type in rt.inner_refs(body) if rt.inner_refs else ():
            target = resources.get(ref)
            if target is None or target.get("type") != target_type:
                what = RESOURCE_TYPES[target_type].label.lower()
                problems.append(
                    f"{rt.label} {body.get('name')!r}, {where}, uses a {what} that would not "
                    f"exist ({ref}); include that {what} or leave the {rt.label.lower()} out."
                )
    return problems


def _create_many(model: type, objs: list[Any], reason: str) -> list[Any]:
    # Bulk inserts with their history rows and audit events, so nothing is silent (on
    # PostgreSQL both written with COPY by audit.bulk; elsewhere simple-history's path,
    # audited by audit.history). Signals are not sent: the caller marks the integration
    # changed.
    if not copies(objs):
        return bulk_create_with_history(objs, model, batch_size=500, default_change_reason=reason)
    created = model.objects.bulk_create(objs, batch_size=500)
    write_history(model, created, reason=reason)
    return created


def _update_many(model: type, objs: list[Any], before: list[dict[str, Any]], reason: str) -> None:
    # `before[i]`: the fields the update of objs[i] changes, with their old values (the
    # audit's old → new). On PostgreSQL the rows' new values go in with one COPY into a
    # temporary table and one UPDATE … FROM it: a multi-row VALUES list of thousands of
    # parameters cost more to build and parse than the update itself (make bench, fig 2),
    # and Django's bulk_update builds a CASE per field per row. History rows and audit
    # events are written from what apply knows changed, with COPY (audit.bulk).
    if not copies(objs):
        by_fields: dict[tuple[str, ...], list[Any]] = {}
        for obj, old in zip(objs, before, strict=True):
            by_fields.setdefault(tuple(old), []).append(obj)
        for fields, group in by_fields.items():
            bulk_update_with_history(
                group, model, fields=list(fields), batch_size=100, default_change_reason=reason
            )
        return
    changed = {name for old in before for name in old}
    # Every row gets the union of the changed fields: a field a row does not change is
    # written with the value it has (the instance was read under the integration's lock).
    fields = [f.name for f in model._meta.concrete_fields if f.name in changed]
    _update_rows(model, objs, fields)
    write_history(model, objs, reason=reason, before=before)


def _update_rows(model: type, objs: list[Any], fields: list[str]) -> None:
    meta = model._meta
    columns = [meta.pk, *(meta.get_field(name) for name in fields)]
    quote = connection.ops.quote_name
    names = ", ".join(quote(c.column) for c in columns)
    sets = ", ".join(f"{quote(c.column)} = v.{quote(c.column)}" for c in columns[1:])
    values = [(c, copy_value(c)) for c in columns]
    with connection.cursor() as cursor:
        # Its columns typed as the table's; dropped at once (and by the commit at the latest).
        cursor.execute(
            f"CREATE TEMPORARY TABLE ilm_apply_rows ON COMMIT DROP AS "
            f"SELECT {names} FROM {quote(meta.db_table)} WITH NO DATA"
        )
        with cursor.copy(f"COPY ilm_apply_rows ({names}) FROM STDIN") as copy:
            for obj in objs:
                copy.write_row([value(getattr(obj, c.attname)) for c, value in values])
        cursor.execute(
            f"UPDATE {quote(meta.db_table)} AS t SET {sets} FROM ilm_apply_rows AS v "
            f"WHERE t.{quote(meta.pk.column)} = v.{quote(meta.pk.column)}"
        )
        cursor.execute("DROP TABLE ilm_apply_rows")


def _json_fields(rt: ResourceType) -> tuple[str, ...]:
    return tuple(f for f in rt.fields if isinstance(rt.model._meta.get_field(f), JSONField))


def _old_value(rt: ResourceType, instance: Any, before: Mapping[str, Any], field: str) -> Any:
    """What `field` held before the update, as the audit shows it: a reference as its id
    (flow_id; shown by name), anything else as the current document has it (the row's
    JSON columns are not read again: they are about to be replaced)."""
    if field in rt.refs:
        return getattr(instance, f"{field}_id")
    return before.get(field)


def _delete(instance: Any, reason: str) -> None:
    instance._change_reason = reason
    instance.delete()


def _set_fields(
    rt: ResourceType,
    instance: Any,
    body: Mapping[str, Any],
    instances: dict[str, dict[str, Any]],
) -> None:
    for field in rt.fields:
        value = body.get(field)
        if field in rt.refs:
            target = rt.refs[field]
            if value is None:
                setattr(instance, field, None)
            else:
                obj = instances[target].get(str(value))
                if obj is None:
                    raise ValidationError(
                        f"{rt.label} {body.get('name')!r} refers to a "
                        f"{RESOURCE_TYPES[target].label.lower()} that does not exist."
                    )
                # The loaded object, not its pk: clean() reads it without a query.
                setattr(instance, field, obj)
        elif value is None and field not in body:
            continue
        else:
            setattr(instance, field, value)


def _check(
    rt: ResourceType, instance: Any, body: Mapping[str, Any], fields: tuple[str, ...] | None
) -> None:
    # Field values are checked per row: all of a new row's, and the fields an update
    # changes (the others hold what was checked when they were written). What the models'
    # clean() adds needs the database once per row (references in the same integration,
    # mapping caches that exist); `document_problems` checked all of it for the whole
    # document up front, so only the type's own `validate` (a step's config shape) is
    # added here, whenever a value it reads changes.
    try:
        if fields is None:
            instance.clean_fields(exclude=["integration", *rt.refs])
        else:
            checked = set(fields) - set(rt.refs)
            instance.clean_fields(
                exclude=[f.name for f in instance._meta.fields if f.name not in checked]
            )
        if rt.validate is not None and (fields is None or any(f not in rt.refs for f in fields)):
            rt.validate({f: getattr(instance, f) for f in rt.fields if f not in rt.refs})
    except ValidationError as exc:
        details = "; ".join(
            f"{field}: {' '.join(msgs)}" if field != "__all__" else " ".join(msgs)
            for field, msgs in exc.message_dict.items()
        )
        raise ValidationError(f"{rt.label} {body.get('name')!r} is not valid: {details}") from exc


def apply_document(
    *,
    integration: Integration,
    document: Mapping[str, Any],
    revision: Any = None,
    expected_version: int | None = None,
    current: Mapping[str, Any] | None = None,
) -> dict[str, int]:
    """Make `integration` equal `document`; returns counts of created/updated/deleted.

    Refuses (StaleReview) when `expected_version` is given and the integration's version
    differs, and (ValidationError) when the document refers to resources it lacks. Any
    error leaves the database as it was. `current` is the integration's document as the
    caller already read it under the same lock (saves reading it again).
    """
    problems = document_problems(document)
    if problems:
        raise ValidationError(problems)
    reason = change_reason(revision)
    counts = {"created": 0, "updated": 0, "deleted": 0}
    with versioned_change():
        locked = Integration.objects.select_for_update().get(pk=integration.pk)
        if expected_version is not None and locked.version != expected_version:
            raise StaleReview(
                f"{locked.name} changed since these changes were computed (version "
                f"{expected_version}, now {locked.version}); refresh the pull and review again."
            )
        if current is None:
            current = document_of(locked)
        target = document.get("resources") or {}

        own = document.get("integration") or {}
        changed = [f for f in INTEGRATION_FIELDS if f in own and own[f] != getattr(locked, f)]
        if changed:
            for f in changed:
                setattr(locked, f, own[f])
            locked._change_reason = reason
            locked.save(update_fields=[*changed, "updated_at"])
            counts["updated"] += 1

        existing = current.get("resources") or {}
        # Only what changes, and what it refers to, is loaded as model instances: a merge
        # of ten resources into an integration of thousands loads a few dozen rows.
        changed = {lid: body for lid, body in target.items() if existing.get(lid) != body}
        removed = {
            lid: body
            for lid, body in existing.items()
            if target.get(lid, {}).get("type") != body.get("type")
        }
        needed: dict[str, set[str]] = {rt.key: set() for rt in RESOURCE_TYPES.values()}
        for lid, body in changed.items():
            rt = RESOURCE_TYPES[body["type"]]
            needed[rt.key].add(lid)
            for field, ref_type in rt.refs.items():
                if body.get(field) is not None:
                    needed[ref_type].add(str(body[field]))
        for lid, body in removed.items():
            needed[body["type"]].add(lid)
        instances: dict[str, dict[str, Any]] = {}
        for rt in RESOURCE_TYPES.values():
            instances[rt.key] = {}
            # A row that stays has its JSON columns (a step's config) replaced from the
            # document or left unread: they are not loaded. A deleted row is loaded
            # whole, for its last history row.
            gone = {lid for lid, body in removed.items() if body.get("type") == rt.key}
            stays = sorted(needed[rt.key] - gone)
            for lids, deferred in ((stays, _json_fields(rt)), (sorted(gone), ())):
                for i in range(0, len(lids), 2000):
                    rows = rt.model.objects.filter(
                        integration=locked, lineage_id__in=lids[i : i + 2000]
                    ).defer(*deferred)
                    instances[rt.key].update((str(o.lineage_id), o) for o in rows)

        for rt in RESOURCE_TYPES.values():
            created: list[Any] = []
            # Updated rows, with the values the fields they change held before (the
            # audit's old → new); most change one or two fields.
            updated: list[Any] = []
            olds: list[dict[str, Any]] = []
            for lid, body in changed.items():
                if body.get("type") != rt.key:
                    continue
                instance = instances[rt.key].get(lid)
                if instance is None or lid in removed:
                    instance = rt.model(integration=locked, lineage_id=lid)
                    created.append(instance)
                    fields = None
                else:
                    before = existing[lid]
                    fields = tuple(f for f in rt.fields if before.get(f) != body.get(f))
                    fields = fields or rt.fields
                    updated.append(instance)
                    olds.append({f: _old_value(rt, instance, before, f) for f in fields})
                _set_fields(rt, instance, body, instances)
                _check(rt, instance, body, fields)
                instances[rt.key][lid] = instance
            if created:
                for obj in _create_many(rt.model, created, reason):
                    instances[rt.key][str(obj.lineage_id)] = obj
                counts["created"] += len(created)
            if updated:
                _update_many(rt.model, updated, olds, reason)
                counts["updated"] += len(updated)
            if created or updated:
                mark_changed(locked.pk)

        for rt in reversed(list(RESOURCE_TYPES.values())):
            for lid, body in removed.items():
                if body.get("type") == rt.key:
                    _delete(instances[rt.key][lid], reason)
                    counts["deleted"] += 1
    integration.refresh_from_db()
    return counts
