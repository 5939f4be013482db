"""Turning what happened into audit events.

- Saves and deletes of tracked models: simple-history writes a history row and sends
  `post_create_historical_record`; the event is built from the row and the row before it
  (field diffs, secrets masked, nothing for a save that changed nothing).
- Bulk writes (`bulk_create_with_history`, `bulk_update_with_history`, used by the
  revision engine's apply and by lookup-cache imports) send no per-row signal;
  simple-history has no bulk signal either. The history manager of every tracked model
  (`audit.history.AuditedHistoryManager`) hands the rows it bulk-created to
  `record_history_rows()`, so no bulk path is silent. Calling it again with the same rows
  records nothing twice.
- ILM operations: `audit.signals.revision_event` (defined here, sent by revisions).
- Sign-in, sign-out and failed sign-in: Django's auth signals.

Every event takes its user, source, revision and operation id from the audit context
(`audit.context.current()`), so changes made inside a Celery task name the person who
started the operation, with source `ilm`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import pre_save
from django.utils import timezone
from simple_history.signals import post_create_historical_record

from integrations.models import (
    Connection,
    Integration,
    IntegrationAccess,
    LookupCache,
    LookupCacheEntry,
)
from integrations.resources import RESOURCE_TYPES, SECRET_FIELDS, hide_secrets, resource_type_for
from integrations.signals import token_authenticated

from .chain import append
from .context import AuditContext, Source, current, set_user
from .models import Action, Event
from .signals import revision_event

MASK = "••••••••"

# History columns that are bookkeeping, not something a person changed.
_NOT_AUDITED = frozenset(
    {"id", "lineage_id", "created_at", "updated_at", "version", "created_by", "size"}
)
_ACTIONS = {"+": Action.CREATED, "~": Action.UPDATED, "-": Action.DELETED}
_RECORDED = "_audit_recorded"


# Values -------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A JSON-native copy of a value (what the event's JSON column can hold and hash)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)


def _change(field: str, old: Any, new: Any) -> dict[str, Any]:
    if field in SECRET_FIELDS:
        return {
            "field": field,
            "old": MASK if old not in (None, "", {}) else None,
            "new": MASK if new not in (None, "", {}) else None,
        }
    return {
        "field": field,
        "old": hide_secrets(plain(old), mask=MASK),
        "new": hide_secrets(plain(new), mask=MASK),
    }


# What a model's history row says -----------------------------------------------------


def _audited_fields(model: type) -> tuple[tuple[str, str], ...]:
    """(field name shown, history attname) pairs for a tracked model."""
    cached = _FIELDS.get(model)
    if cached is not None:
        return cached
    rt = resource_type_for(model)
    if rt is not None:
        names = list(rt.fields)
    else:
        names = [
            f.name
            for f in model.history.model.tracked_fields
            if f.name not in _NOT_AUDITED and f.name not in ("integration", "cache")
        ]
    pairs = []
    for name in names:
        field = model._meta.get_field(name)
        pairs.append((name, field.attname))
    _FIELDS[model] = tuple(pairs)
    return _FIELDS[model]


_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {}


def resource_type_key(model: type) -> str:
    rt = resource_type_for(model)
    if rt is not None:
        return rt.key
    return {
        Integration: "integration",
        IntegrationAccess: "access",
        LookupCacheEntry: "lookup_cache_entry",
    }.get(model, model._meta.model_name)


def resource_type_choices() -> list[tuple[str, str]]:
    """Every resource type an event can name, for filters."""
    choices = [("integration", "Integration")]
    choices += [(rt.key, rt.label) for rt in RESOURCE_TYPES.values()]
    choices += [
        ("lookup_cache_entry", "Lookup cache entry"),
        ("access", "Access grant"),
        ("revision", "Revision"),
        ("run", "Flow run"),
        ("alert", "Alert rule"),
        ("user", "User (sign-in)"),
    ]
    return choices


class _Names:
    """Names of integrations, users, caches and referenced resources, fetched once each."""

    def __init__(self) -> None:
        self.integrations: dict[int, str] = {}
        self.users: dict[int, str] = {}
        self.cache_integration: dict[int, int | None] = {}
        self.refs: dict[tuple[type, int], str] = {}

    def integration(self, pk: int | None) -> str:
        if pk is None:
            return ""
        if pk not in self.integrations:
            name = Integration.objects.filter(pk=pk).values_list("name", flat=True).first()
            if name is None:  # deleted: its last history row still knows the name
                name = (
                    Integration.history.filter(id=pk)
                    .order_by("-history_id")
                    .values_list("name", flat=True)
                    .first()
                )
            self.integrations[pk] = name or f"#{pk}"
        return self.integrations[pk]

    def user(self, pk: int | None) -> str:
        if pk is None:
            return ""
        if pk not in self.users:
            name = get_user_model().objects.filter(pk=pk).values_list("username", flat=True)
            self.users[pk] = name.first() or f"#{pk}"
        return self.users[pk]

    def integration_of_cache(self, cache_id: int | None) -> int | None:
        if cache_id is None:
            return None
        if cache_id not in self.cache_integration:
            found = LookupCache.objects.filter(pk=cache_id).values_list("integration_id", flat=True)
            integration_id = found.first()
            if integration_id is None:
                integration_id = (
                    LookupCache.history.filter(id=cache_id)
                    .order_by("-history_id")
                    .values_list("integration_id", flat=True)
                    .first()
                )
            self.cache_integration[cache_id] = integration_id
        return self.cache_integration[cache_id]

    def ref(self, model: type, pk: Any) -> Any:
        if pk is None:
            return None
        key = (model, pk)
        if key not in self.refs:
            name = model.objects.filter(pk=pk).values_list("name", flat=True).first()
            if name is None:
                name = (
                    model.history.filter(id=pk)
                    .order_by("-history_id")
                    .values_list("name", flat=True)
                    .first()
                )
            self.refs[key] = f"{name} (#{pk})" if name else f"#{pk}"
        return self.refs[key]


def _shown(model: type, name: str, attname: str, value: Any, names: _Names) -> Any:
    if name == attname or value is None:
        return value
    # A reference: show what it points at, by name, rather than a bare id.
    related = model._meta.get_field(name).related_model
    if related is get_user_model():
        return names.user(value)
    if "name" in {f.name for f in related._meta.fields}:
        return names.ref(related, value)
    return value


def field_changes(model: type, row: Any, prev: Any | None, names: _Names) -> list[dict[str, Any]]:
    """Field-level changes of one history row against the row before it."""
    kind = row.history_type
    changes = []
    for name, attname in _audited_fields(model):
        new = getattr(row, attname)
        old = getattr(prev, attname) if prev is not None else None
        if kind == "+":
            old = None
            if new in (None, "", [], {}):
                continue
        elif kind == "-":
            old, new = new, None
            if old in (None, "", [], {}):
                continue
        elif prev is not None and old == new:
            continue
        changes.append(
            _change(
                name,
                _shown(model, name, attname, old, names),
                _shown(model, name, attname, new, names),
            )
        )
    for secret, had_value, has_value in getattr(row, "_audit_secret_changes", ()):
        changes.append(_change(secret, MASK if had_value else None, MASK if has_value else None))
    return changes


def _resource_name(model: type, row: Any, names: _Names) -> str:
    if model is IntegrationAccess:
        return f"{names.user(row.user_id)} ({row.level})"
    if model is LookupCacheEntry:
        return row.key
    return getattr(row, "name", "") or f"#{row.id}"


def _integration_id(model: type, row: Any, names: _Names) -> int | None:
    if model is Integration:
        return row.id
    if model is LookupCacheEntry:
        return names.integration_of_cache(row.cache_id)
    return getattr(row, "integration_id", None)


def _who(ctx: AuditContext, user_id: int | None, names: _Names) -> tuple[int | None, str]:
    user = ctx.user
    if user_id is None and user is not None and getattr(user, "pk", None):
        user_id = user.pk
    if user_id is None:
        return None, ""
    if user is not None and getattr(user, "pk", None) == user_id:
        names.users.setdefault(user_id, user.get_username())
    return user_id, names.user(user_id)


def _event_base(ctx: AuditContext, user_id: int | None, names: _Names) -> dict[str, Any]:
    user_id, username = _who(ctx, user_id, names)
    return {
        "user_id": user_id,
        "username": username,
        "source": ctx.source.value if isinstance(ctx.source, Source) else str(ctx.source),
        "remote_addr": ctx.remote_addr,
        "revision_id": ctx.revision_id,
        "operation_id": ctx.request_id,
    }


def event_of_history_row(
    row: Any, prev: Any | None, *, ctx: AuditContext, names: _Names
) -> Event | None:
    """The event a history row stands for, or None when it changed nothing."""
    model = row.instance_type
    changes = field_changes(model, row, prev, names)
    if row.history_type == "~" and not changes:
        return None
    integration_id = _integration_id(model, row, names)
    if model is Integration:
        integration_name = row.name
        names.integrations[row.id] = row.name
    else:
        integration_name = names.integration(integration_id)
    return Event(
        at=row.history_date if timezone.is_aware(row.history_date) else timezone.now(),
        integration_id=integration_id,
        integration_name=integration_name,
        resource_type=resource_type_key(model),
        resource_id=row.id,
        resource_name=_resource_name(model, row, names)[:500],
        action=_ACTIONS[row.history_type],
        changes=changes,
        **_event_base(ctx, row.history_user_id, names),
    )


# Receivers ---------------------------------------------------------------------------


def on_history_row(sender, instance, history_instance, **kwargs) -> None:
    """One save or delete: one event (none for a save that changed nothing)."""
    if getattr(history_instance, _RECORDED, False):
        return
    setattr(history_instance, _RECORDED, True)
    history_instance._audit_secret_changes = getattr(instance, "_audit_secret_changes", ())
    if hasattr(instance, "_audit_secret_changes"):
        del instance._audit_secret_changes
    prev = None
    if history_instance.history_type == "~":
        # By history id, not date: two saves in the same microsecond still pair up.
        prev = (
            type(history_instance)
            .objects.filter(id=history_instance.id, history_id__lt=history_instance.history_id)
            .order_by("-history_id")
            .first()
        )
    names = _Names()
    # The saved instance usually has its integration loaded already: no query for its name.
    cached = getattr(instance, "_state", None) and instance._state.fields_cache.get("integration")
    if cached is not None and cached.pk:
        names.integrations[cached.pk] = cached.name
    event = event_of_history_row(history_instance, prev, ctx=current(), names=names)
    if event is not None:
        append([event])


def note_secret_changes(sender, instance, raw=False, **kwargs) -> None:
    """Secrets are kept out of history rows; note here whether a save changes them."""
    rt = resource_type_for(sender)
    if raw or rt is None or not rt.secret_fields:
        return
    stored: dict[str, Any] = {}
    if instance.pk is not None and not instance._state.adding:
        stored = sender.objects.filter(pk=instance.pk).values(*rt.secret_fields).first() or {}
    # (field, had a value, has a value) for each secret this save changes.
    instance._audit_secret_changes = tuple(
        (f, stored.get(f) not in (None, "", {}), getattr(instance, f) not in (None, "", {}))
        for f in rt.secret_fields
        if stored.get(f) != getattr(instance, f)
        and not (stored.get(f) in (None, "", {}) and getattr(instance, f) in (None, "", {}))
    )


def record_history_rows(rows: Iterable[Any], *, fresh: bool = False) -> list[Event]:
    """Record events for history rows written in bulk (which send no signal).

    Accepts rows of any tracked models, in the order they were written. Rows already
    recorded (by the signal or an earlier call) are skipped; updates that changed
    nothing make no event. `fresh=True` (rows this transaction has just inserted, as the
    history manager passes them) skips the look-up for events already there. Returns the
    events written.
    """
    pending = [r for r in rows if r is not None and not getattr(r, _RECORDED, False)]
    if not fresh:
        pending = _not_yet_recorded(pending)
    if not pending:
        return []
    names = _Names()
    ctx = current()
    prev_of = _previous_rows(pending)
    latest: dict[tuple[type, int], Any] = {}
    events = []
    for row in sorted(pending, key=lambda r: (r.history_date, r.history_id or 0)):
        key = (row.instance_type, row.id)
        prev = latest.get(key) or prev_of.get((row.instance_type, row.history_id))
        latest[key] = row
        setattr(row, _RECORDED, True)
        event = event_of_history_row(
            row, prev if row.history_type == "~" else None, ctx=ctx, names=names
        )
        if event is not None:
            events.append(event)
    return append(events)


_CHUNK = 500  # ids per IN (...) list: well under SQLite's bound on query parameters


def _chunks(items: list[Any], size: int = _CHUNK) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _not_yet_recorded(rows: list[Any]) -> list[Any]:
    """Drop rows whose event exists already (same resource, same time): rows read back
    from the database are new objects, so the in-memory mark alone cannot tell."""
    if not rows:
        return rows
    existing: set[tuple[str, int, Any]] = set()
    for chunk in _chunks(rows):
        dates = [r.history_date for r in chunk]
        existing.update(
            Event.objects.filter(
                resource_type__in={resource_type_key(r.instance_type) for r in chunk},
                resource_id__in={r.id for r in chunk},
                at__gte=min(dates),
                at__lte=max(dates),
            ).values_list("resource_type", "resource_id", "at")
        )
    if not existing:
        return rows
    return [
        r
        for r in rows
        if (resource_type_key(r.instance_type), r.id, r.history_date) not in existing
    ]


def _previous_rows(rows: list[Any]) -> dict[tuple[type, int], Any]:
    """For each update row: the history row written before it for the same object."""
    from django.db.models import Max

    found: dict[tuple[type, int], Any] = {}
    by_model: dict[type, list[Any]] = {}
    for row in rows:
        if row.history_type == "~":
            by_model.setdefault(row.instance_type, []).append(row)
    for model, updates in by_model.items():
        history = model.history.model
        first = min(r.history_id for r in updates)
        before: dict[int, Any] = {}
        for object_ids in _chunks(sorted({r.id for r in updates})):
            last_ids = list(
                history.objects.filter(id__in=object_ids, history_id__lt=first)
                .values("id")
                .annotate(last=Max("history_id"))
                .values_list("last", flat=True)
            )
            before.update({r.id: r for r in history.objects.filter(history_id__in=last_ids)})
        for row in updates:
            if row.id in before:
                found[(model, row.history_id)] = before[row.id]
    return found


def on_revision_event(sender, revision, verb: str, user=None, detail=None, **kwargs) -> None:
    """An ILM operation step: snapshot, clone, pull, merge, revert, approval…"""
    ctx = current()
    names = _Names()
    base = _event_base(ctx, getattr(user, "pk", None), names)
    if user is not None and getattr(user, "pk", None):
        base["username"] = user.get_username()
    base["revision_id"] = revision.pk
    changes = [
        {"field": str(k), "old": None, "new": hide_secrets(plain(v), mask=MASK)}
        for k, v in (detail or {}).items()
    ]
    if verb == Action.FAIL and revision.error and not any(c["field"] == "error" for c in changes):
        changes.append({"field": "error", "old": None, "new": revision.error})
    append(
        [
            Event(
                integration_id=revision.integration_id,
                integration_name=names.integration(revision.integration_id),
                resource_type="revision",
                resource_id=revision.pk,
                resource_name=f"#{revision.number} {revision.get_type_display()}",
                action=verb,
                changes=changes,
                **base,
            )
        ]
    )


def _sign_in_event(action: str, request, user=None, attempted: str = "") -> None:
    ctx = current()
    source = Source.API if request is not None and request.path.startswith("/api/") else Source.UI
    remote = request.META.get("REMOTE_ADDR") if request is not None else ctx.remote_addr
    user_pk = getattr(user, "pk", None)
    name = user.get_username() if user_pk else attempted
    append(
        [
            Event(
                user_id=user_pk,
                username=name if user_pk else "",
                source=source,
                remote_addr=remote,
                operation_id=ctx.request_id,
                resource_type="user",
                resource_id=user_pk,
                resource_name=name[:500],
                action=action,
                changes=[],
            )
        ]
    )


def on_logged_in(sender, request, user, **kwargs) -> None:
    _sign_in_event(Action.SIGNED_IN, request, user)


def on_logged_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        _sign_in_event(Action.SIGNED_OUT, request, user)


def on_login_failed(sender, credentials, request=None, **kwargs) -> None:
    attempted = str((credentials or {}).get("username", ""))
    _sign_in_event(Action.SIGN_IN_FAILED, request, attempted=attempted)


def on_token_authenticated(sender, user, **kwargs) -> None:
    set_user(user)


def connect() -> None:
    post_create_historical_record.connect(on_history_row, dispatch_uid="audit-history-row")
    pre_save.connect(note_secret_changes, sender=Connection, dispatch_uid="audit-secrets")
    revision_event.connect(on_revision_event, dispatch_uid="audit-revision-event")
    token_authenticated.connect(on_token_authenticated, dispatch_uid="audit-token-user")
    user_logged_in.connect(on_logged_in, dispatch_uid="audit-logged-in")
    user_logged_out.connect(on_logged_out, dispatch_uid="audit-logged-out")
    user_login_failed.connect(on_login_failed, dispatch_uid="audit-login-failed")
