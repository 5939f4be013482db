"""History rows and audit events of a bulk write, at the speed of PostgreSQL's COPY.

The revision engine's apply writes thousands of rows at once and knows, for every row it
updates, which fields it changed and what they held before. `write_history` takes that
knowledge and writes, in the caller's transaction:

- one history row per row (what simple-history's `bulk_history_create` writes, with the
  same columns, user and change reason), with COPY instead of a multi-row INSERT;
- one audit event per row that changed (field-level old → new, secrets masked, references
  shown by name, as `audit.capture` builds them for a history row), diffing only the
  fields the write changed, instead of reading each row's previous history row back and
  comparing every field; the events are chained by `audit.chain.append` (COPY as well).

Other databases take simple-history's own path (`bulk_history_create`, audited by
`audit.history.AuditedHistoryManager`): same rows, same events.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, models
from django.utils import timezone

from integrations.resources import SECRET_FIELDS

from .capture import (
    _ACTIONS,
    _audited_fields,
    _change,
    _event_base,
    _integration_id,
    _Names,
    _resource_name,
    _shown,
    resource_type_key,
)
from .chain import append
from .context import current
from .models import Event

# How a secret key appears in orjson's compact output; a value holding none needs no mask.
_SECRET_KEYS = tuple(f'"{name}":'.encode() for name in SECRET_FIELDS)
_EMPTY = (None, "", [], {})


def write_history(
    model: type[models.Model],
    objs: Sequence[models.Model],
    *,
    reason: str,
    before: Sequence[Mapping[str, Any]] | None = None,
) -> None:
    """History rows and audit events for `objs`, rows of `model` just written in bulk.

    `before=None`: the rows were inserted. Otherwise they were updated, and `before[i]`
    holds, for `objs[i]`, the fields the update changed (by field name) with the values
    they had before it (references as ids). A field listed whose value did not change
    is left out of the event; a row with no change left gets a history row but no event,
    as a save that changed nothing does.
    """
    if not objs:
        return
    history = model.history.model
    kind = "+" if before is None else "~"
    if not copies(objs):
        history.objects.bulk_history_create(
            objs, batch_size=500, update=kind == "~", default_change_reason=reason
        )
        return
    user = history.get_default_history_user(objs[0])
    user_id = getattr(user, "pk", None)
    now = timezone.now()
    _copy_history(history, objs, kind=kind, at=now, reason=reason, user_id=user_id)
    append(_events(model, objs, before, kind=kind, at=now, user_id=user_id))


# What simple-history reads per row, where a caller set it, instead of the defaults.
_PER_ROW = ("_history_user", "_history_date", "_change_reason")


def copies(objs: Sequence[models.Model]) -> bool:
    """Whether `write_history` writes these rows itself, with COPY: on PostgreSQL, while
    simple-history is on and no row carries its own history user, date or change reason
    (simple-history's path takes those, and is taken then)."""
    return (
        connection.vendor == "postgresql"
        and getattr(settings, "SIMPLE_HISTORY_ENABLED", True)
        and not any(hasattr(obj, name) for obj in objs for name in _PER_ROW)
    )


def _copy_history(
    history: type[models.Model],
    objs: Sequence[models.Model],
    *,
    kind: str,
    at: Any,
    reason: str,
    user_id: int | None,
) -> None:
    quote = connection.ops.quote_name
    meta = history._meta
    tracked = list(history.tracked_fields)
    bookkeeping = ("history_date", "history_change_reason", "history_type", "history_user")
    columns = [f.column for f in tracked] + [meta.get_field(n).column for n in bookkeeping]
    extra_values = [at, reason, kind, user_id]
    prep = [copy_value(f) for f in tracked]
    sql = f"COPY {quote(meta.db_table)} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.copy(sql) as copy:
        for obj in objs:
            copy.write_row(
                [fn(getattr(obj, f.attname)) for f, fn in zip(tracked, prep, strict=True)]
                + extra_values
            )


def copy_value(field: models.Field) -> Callable[[Any], Any]:
    """How a value of `field` goes into COPY (psycopg's write_row): JSON as orjson text,
    the rest as it is."""
    if isinstance(field, models.JSONField):

        def json_text(value: Any) -> Any:
            if value is None:
                return None
            try:
                return orjson.dumps(value).decode()
            except TypeError:
                return field.get_db_prep_save(value, connection)

        return json_text
    # Plain values (str, int, bool, datetime, UUID, None): PostgreSQL parses them by the
    # column's type, as it does for Django's own parameters.
    return lambda value: value


def _native(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str, dict, list))


def _field_change(model, name: str, attname: str, old: Any, new: Any, names: _Names):
    """A field's old → new: as it comes from a document (JSON-native), checked for secrets
    with its whole event (`_masked`); anything else takes capture's own walk."""
    old = _shown(model, name, attname, old, names)
    new = _shown(model, name, attname, new, names)
    if name not in SECRET_FIELDS and _native(old) and _native(new):
        return {"field": name, "old": old, "new": new}
    return _change(name, old, new)


def _masked(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An event's changes with secrets masked. One orjson pass over the event (in C) finds
    whether a secret key, or a value JSON cannot hold, is anywhere in it; only then are its
    values walked by capture's rule (`_change`, which leaves what it made as it was)."""
    try:
        raw = orjson.dumps(changes)
    except TypeError:
        raw = None
    if raw is not None and not any(key in raw for key in _SECRET_KEYS):
        return changes
    return [_change(c["field"], c["old"], c["new"]) for c in changes]


def _known_names(obj: models.Model, fields, names: _Names) -> None:
    """Names of what `obj` refers to that the write has loaded already: no query for them
    (as `_Names` would put them: "name (#id)")."""
    cache = obj._state.fields_cache
    integration = cache.get("integration")
    if integration is not None and integration.pk:
        names.integrations.setdefault(integration.pk, integration.name)
    for name, attname in fields:
        if name == attname:
            continue
        related = cache.get(name)
        if related is not None and related.pk and getattr(related, "name", None):
            names.refs.setdefault((type(related), related.pk), f"{related.name} (#{related.pk})")


def _events(
    model: type[models.Model],
    objs: Sequence[models.Model],
    before: Sequence[Mapping[str, Any]] | None,
    *,
    kind: str,
    at: Any,
    user_id: int | None,
) -> list[Event]:
    ctx = current()
    names = _Names()
    base = _event_base(ctx, user_id, names)
    fields = _audited_fields(model)
    resource_type = resource_type_key(model)
    action = _ACTIONS[kind]
    events = []
    for i, obj in enumerate(objs):
        changes = []
        _known_names(obj, fields, names)
        if before is None:
            for name, attname in fields:
                new = getattr(obj, attname)
                if new not in _EMPTY:
                    changes.append(_field_change(model, name, attname, None, new, names))
        else:
            old_values = before[i]
            for name, attname in fields:
                if name not in old_values:
                    continue
                old, new = old_values[name], getattr(obj, attname)
                if old != new:
                    changes.append(_field_change(model, name, attname, old, new, names))
            if not changes:
                continue
        integration_id = _integration_id(model, obj, names)
        events.append(
            Event(
                at=at,
                integration_id=integration_id,
                integration_name=names.integration(integration_id),
                resource_type=resource_type,
                resource_id=obj.pk,
                resource_name=_resource_name(model, obj, names)[:500],
                action=action,
                changes=_masked(changes),
                **base,
            )
        )
    return events
