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

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
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
    if connection.vendor != "postgresql":
        history.objects.bulk_history_create(
            objs, batch_size=500, update=kind == "~", default_change_reason=reason
        )
        return
    user = history.get_default_history_user(objs[0])
    user_id = getattr(user, "pk", None)
    now = timezone.now()
    _copy_history(history, objs, kind=kind, at=now, reason=reason, user_id=user_id)
    append(_events(model, objs, before, kind=kind, at=now, user_id=user_id))


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
    prep = [_prep(f) for f in tracked]
    sql = f"COPY {quote(meta.db_table)} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.copy(sql) as copy:
        for obj in objs:
            copy.write_row(
                [fn(getattr(obj, f.attname)) for f, fn in zip(tracked, prep, strict=True)]
                + extra_values
            )


def _prep(field: models.Field):
    """How a value of `field` goes into COPY: JSON as orjson text, the rest as it is."""
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


def _value(value: Any) -> Any:
    """A field value as an event shows it: JSON-native as it comes from a document, so
    orjson checks it for secrets in C; anything else takes capture's own walk."""
    if isinstance(value, (dict, list)):
        try:
            raw = orjson.dumps(value)
        except TypeError:
            return None, False
        return value, not any(key in raw for key in _SECRET_KEYS)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value, True
    return None, False


def _field_change(model, name: str, attname: str, old: Any, new: Any, names: _Names):
    old = _shown(model, name, attname, old, names)
    new = _shown(model, name, attname, new, names)
    if name not in SECRET_FIELDS:
        plain_old, old_ok = _value(old)
        plain_new, new_ok = _value(new)
        if old_ok and new_ok:
            return {"field": name, "old": plain_old, "new": plain_new}
    return _change(name, old, new)


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
        _known_names(obj, fields, names)
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
                changes=changes,
                **base,
            )
        )
    return events
