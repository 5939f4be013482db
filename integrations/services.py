"""Writes to the integration domain. Views, the API, the demo loader and commands call these.

Each service validates fully before writing, runs in one `versioned_change()` block (so
the integration's version goes up once per call) and either changes everything it was
asked to or nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import secrets
from typing import Any

import orjson
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import Sum
from django.utils import timezone
from simple_history.utils import bulk_create_with_history

from .json_input import edge_depth, json_value_check, raw_depth_problem
from .models import (
    AccessLevel,
    ApiToken,
    Environment,
    Integration,
    IntegrationAccess,
    LookupCache,
    LookupCacheEntry,
    Role,
    User,
)
from .permissions import forget_grants
from .resources import NAME_FIELDS, RESOURCE_TYPES, ResourceType, validate_ignore_fields
from .versioning import mark_changed, versioned_change

INTEGRATION_EDITABLE = (
    "name",
    "description",
    "environment",
    "documentation",
    "snapshot_schedule",
    "ignore_fields",
)


def _apply(instance: Any, data: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValidationError({k: ["This field cannot be set."] for k in unknown})
    for key, value in data.items():
        setattr(instance, key, value)


def _full_clean(instance: Any, exclude: list[str] | None = None) -> None:
    # JSON values first: past the nesting limit, Django's own checks would recurse.
    for field in instance._meta.concrete_fields:
        text_or_json = isinstance(field, models.JSONField | models.CharField | models.TextField)
        if text_or_json and field.name not in (exclude or ()):
            json_value_check(getattr(instance, field.attname), field=field.name)
    instance.full_clean(exclude=exclude, validate_constraints=False)


def integration_create(
    *,
    name: str,
    user: User | None,
    description: str = "",
    environment: str = Environment.SANDBOX,
    documentation: str = "",
    **extra: Any,
) -> Integration:
    """Create an integration; its creator holds `manage` on it. Production starts protected."""
    integration = Integration(
        name=(name or "").strip(),
        description=description,
        environment=environment,
        documentation=documentation,
        created_by=user,
        protected=starts_protected(environment),
    )
    _apply(integration, extra, INTEGRATION_EDITABLE)
    if extra.get("ignore_fields") is not None:
        integration.ignore_fields = validate_ignore_fields(extra["ignore_fields"])
    _full_clean(integration)
    with versioned_change():
        integration.save()
        if user is not None:
            IntegrationAccess.objects.create(
                integration=integration, user=user, level=AccessLevel.MANAGE
            )
            forget_grants(user)
    return integration


def integration_update(*, integration: Integration, data: dict[str, Any]) -> Integration:
    """Change an integration's own settings. A save that changes nothing is not a change."""
    data = dict(data)
    if "name" in data and data["name"] != integration.name:
        data["name"] = (data["name"] or "").strip()
    if "ignore_fields" in data:
        data["ignore_fields"] = validate_ignore_fields(data["ignore_fields"])
    before = {k: getattr(integration, k) for k in data}
    was_protected = integration.protected
    _apply(integration, data, INTEGRATION_EDITABLE)
    if integration.is_production and before.get("environment") == Environment.SANDBOX:
        # Moved into production: protected from then on, as if created there.
        integration.protected = True
    try:
        _full_clean(integration)
    except ValidationError:
        for key, value in before.items():
            setattr(integration, key, value)
        integration.protected = was_protected
        raise
    if all(before[k] == getattr(integration, k) for k in data):
        return integration
    with versioned_change():
        integration.save()
    integration.refresh_from_db(fields=["version", "updated_at"])
    return integration


def starts_protected(environment: str) -> bool:
    """New production integrations start protected (change control); sandboxes do not."""
    return environment == Environment.PRODUCTION


def integration_protection_set(
    *, integration: Integration, protected: bool, user: User | None, reason: str = ""
) -> Integration:
    """Turn change control on or off; turning it off needs a reason, kept in the history.

    Who may (an administrator to turn it off) is the caller's check, in the one role table.
    """
    reason = (reason or "").strip()
    if not protected and integration.protected and not reason:
        raise ValidationError(
            {"reason": ["Say why protection is turned off; the reason is kept in the history."]}
        )
    if integration.protected == protected:
        return integration
    integration.protected = protected
    who = getattr(user, "username", "") or "system"
    if protected:
        integration._change_reason = reason or f"Protection turned on by {who}"
    else:
        integration._change_reason = f"Protection turned off by {who}: {reason}"
    with versioned_change():
        integration.save()
    integration.refresh_from_db(fields=["version", "updated_at"])
    return integration


def integration_delete(*, integration: Integration) -> None:
    """Delete an integration and all its resources (each deletion is recorded in history)."""
    with transaction.atomic():
        # Steps first: they protect the connections they use.
        for rt in reversed(list(RESOURCE_TYPES.values())):
            for obj in rt.queryset(integration.pk):
                obj.delete()
        integration.delete()


def resource_create(*, integration: Integration, type_key: str, data: dict[str, Any]) -> Any:
    """Create a resource of a declared type in an integration."""
    rt = RESOURCE_TYPES[type_key]
    instance = rt.model(integration=integration)
    _set_resource_fields(rt, instance, data)
    _full_clean(instance, exclude=["integration"])
    with versioned_change():
        try:
            instance.save()
        except IntegrityError as exc:
            raise ValidationError(f"Could not save the {rt.label.lower()}: {exc}") from exc
    return instance


def resource_update(*, instance: Any, data: dict[str, Any]) -> Any:
    """Change a resource's fields; nothing is written when no value changes."""
    rt = RESOURCE_TYPES_BY_MODEL[type(instance)]
    snapshot = {f: getattr(instance, _attname(rt, f)) for f in _writable(rt)}
    _set_resource_fields(rt, instance, data)
    if all(snapshot[f] == getattr(instance, _attname(rt, f)) for f in snapshot):
        # Sent as stored: nothing to check or write (the model's clean() would otherwise
        # restate a value stored before its rule, e.g. normalize an old schedule).
        return instance
    try:
        _full_clean(instance, exclude=["integration"])
    except ValidationError:
        for f, value in snapshot.items():
            setattr(instance, _attname(rt, f), value)
        raise
    if all(snapshot[f] == getattr(instance, _attname(rt, f)) for f in snapshot):
        return instance
    with versioned_change():
        instance.save()
    return instance


def resource_delete(*, instance: Any) -> None:
    """Delete a resource. A connection still used by steps cannot be deleted."""
    from django.db.models import ProtectedError

    with versioned_change():
        try:
            instance.delete()
        except ProtectedError:
            raise ValidationError(
                f"{instance.name} is used by flow steps; change or delete those steps first."
            ) from None


RESOURCE_TYPES_BY_MODEL = {rt.model: rt for rt in RESOURCE_TYPES.values()}


def _writable(rt: ResourceType) -> tuple[str, ...]:
    return rt.fields + rt.secret_fields


def _attname(rt: ResourceType, field: str) -> str:
    return f"{field}_id" if field in rt.refs else field


def _set_resource_fields(rt: ResourceType, instance: Any, data: dict[str, Any]) -> None:
    unknown = sorted(set(data) - set(_writable(rt)))
    if unknown:
        raise ValidationError({k: ["This field cannot be set."] for k in unknown})
    for key, value in data.items():
        if key in rt.refs:
            # References are given as model instances or pks of this integration's resources.
            target = RESOURCE_TYPES[rt.refs[key]].model
            if value is None or value == "":
                setattr(instance, f"{key}_id", None)
                continue
            pk = value.pk if hasattr(value, "pk") else value
            obj = target.objects.filter(pk=pk).first()
            if obj is None:
                raise ValidationError({key: [f"No such {RESOURCE_TYPES[rt.refs[key]].label}."]})
            if obj.integration_id != instance.integration_id:
                raise ValidationError(
                    {key: ["It belongs to another integration; pick one of this integration's."]}
                )
            setattr(instance, key, obj)
        elif key in NAME_FIELDS:
            # Only a new name is tidied: one sent back as it is stays as it is.
            if value != getattr(instance, key):
                value = (value or "").strip()
            setattr(instance, key, value)
        elif key == "credentials" and value in (None, ""):
            continue  # write-only: leaving it empty keeps what is stored
        else:
            setattr(instance, key, value)


# Lookup cache entries ----------------------------------------------------------------


def entry_size(key: str, value: Any) -> int:
    return len(key.encode()) + len(orjson.dumps(value, option=orjson.OPT_SORT_KEYS))


def cache_data_bytes(integration_id: int) -> int:
    return (
        LookupCacheEntry.objects.filter(cache__integration_id=integration_id).aggregate(
            total=Sum("size")
        )["total"]
        or 0
    )


def cache_entries_add(*, cache: LookupCache, entries: list[dict[str, Any]]) -> int:
    """Add or replace entries given as [{key, value}]; all or nothing. Returns the count."""
    if not isinstance(entries, list) or not entries:
        raise ValidationError("Give at least one entry as {key, value}.")
    clean: dict[str, Any] = {}
    for i, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or "key" not in entry:
            raise ValidationError(f"Entry {i} needs a 'key'.")
        key = str(entry["key"]).strip()
        if not key:
            raise ValidationError(f"Entry {i} has an empty key.")
        if len(key) > 500:
            raise ValidationError(f"Entry {i}: keys are at most 500 characters.")
        try:
            json_value_check(key, field="key")
            json_value_check(entry.get("value", {}), field="value")
        except ValidationError as exc:
            message = next(iter(exc.message_dict.values()))[0]
            raise ValidationError(f"Entry {i} ({key[:50]!r}): {message}") from None
        clean[key] = entry.get("value", {})
    with versioned_change():
        LookupCacheEntry.objects.filter(cache=cache, key__in=list(clean)).delete()
        bulk_create_with_history(
            [
                LookupCacheEntry(cache=cache, key=k, value=v, size=entry_size(k, v))
                for k, v in clean.items()
            ],
            LookupCacheEntry,
            batch_size=1000,
        )
        mark_changed(cache.integration_id)
    return len(clean)


def cache_entries_import(*, cache: LookupCache, filename: str, content: bytes) -> int:
    """Import entries from a CSV (a column named like the cache's key path) or JSON file."""
    name = (filename or "").lower()
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError("The file is not UTF-8 text.") from None
    if name.endswith(".json"):
        problem = raw_depth_problem(content, limit=edge_depth())
        if problem is not None:
            raise ValidationError(f"The JSON file: {problem[1]}")
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ValidationError(f"The JSON file is not valid JSON: {exc}.") from None
        if isinstance(data, dict) and "entries" in data:
            data = data["entries"]
        if isinstance(data, dict):
            entries = [{"key": k, "value": v} for k, v in data.items()]
        elif isinstance(data, list):
            entries = []
            for i, row in enumerate(data, start=1):
                if not isinstance(row, dict):
                    raise ValidationError(f"Row {i} of the JSON file is not an object.")
                if "key" in row and "value" in row:
                    entries.append({"key": row["key"], "value": row["value"]})
                elif cache.key_path in row:
                    entries.append({"key": row[cache.key_path], "value": row})
                else:
                    raise ValidationError(
                        f"Row {i} of the JSON file has no {cache.key_path!r} field."
                    )
        else:
            raise ValidationError("The JSON file must hold a list of entries or an object.")
    elif name.endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or cache.key_path not in reader.fieldnames:
            raise ValidationError(
                f"The CSV file has no {cache.key_path!r} column (the cache's key path); "
                f"its columns are: {', '.join(reader.fieldnames or []) or 'none'}."
            )
        entries = []
        for row in reader:
            entries.append({"key": row[cache.key_path], "value": dict(row)})
    else:
        raise ValidationError("Upload a .csv or .json file.")
    if not entries:
        raise ValidationError("The file holds no entries.")
    return cache_entries_add(cache=cache, entries=entries)


def cache_entries_clear(*, cache: LookupCache) -> int:
    """Remove every entry of a cache (each removal is recorded in history)."""
    with versioned_change():
        entries = list(cache.entries.all())
        for entry in entries:
            entry.cache = cache  # already loaded: no query per entry for its integration
            entry.delete()
        mark_changed(cache.integration_id)
    return len(entries)


# Access, users, tokens ----------------------------------------------------------------


def access_set(
    *, integration: Integration, grants: list[dict[str, str]]
) -> list[IntegrationAccess]:
    """Replace an integration's grants with [{user: username, level: manage|monitor}]."""
    wanted: dict[int, str] = {}
    for i, grant in enumerate(grants, start=1):
        username = (grant or {}).get("user")
        level = (grant or {}).get("level")
        if level not in AccessLevel.values:
            raise ValidationError(f"Grant {i}: level must be 'manage' or 'monitor'.")
        user = User.objects.filter(username=username).first()
        if user is None:
            raise ValidationError(f"Grant {i}: no user named {username!r}.")
        wanted[user.pk] = level
    with transaction.atomic():
        existing = {g.user_id: g for g in integration.grants.all()}
        for user_id, grant in existing.items():
            if user_id not in wanted:
                grant.delete()
        for user_id, level in wanted.items():
            grant = existing.get(user_id)
            if grant is None:
                IntegrationAccess.objects.create(
                    integration=integration, user_id=user_id, level=level
                )
            elif grant.level != level:
                grant.level = level
                grant.save()
    return list(integration.grants.select_related("user"))


def user_create_or_update(
    *, username: str, role: str, password: str | None = None, email: str = ""
) -> tuple[User, bool]:
    """Create a user with a role, or change an existing user's role (and password if given)."""
    if role not in Role.values:
        raise ValidationError(f"Role must be one of: {', '.join(Role.values)}.")
    username = (username or "").strip()
    if not username:
        raise ValidationError("A username is required.")
    with transaction.atomic():
        user, created = User.objects.get_or_create(username=username, defaults={"role": role})
        user.role = role
        user.is_staff = role == Role.ADMINISTRATOR
        if email:
            user.email = email
        if password:
            user.set_password(password)
        elif created:
            user.set_unusable_password()
        user.save()
    return user, created


def _token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def api_token_create(*, user: User, name: str) -> tuple[ApiToken, str]:
    """Create a named token; the raw token is returned once and only its hash is stored."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": ["Give the token a name, e.g. 'CI pipeline'."]})
    raw = "ilm_" + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=raw[:12], key_hash=_token_hash(raw)
    )
    return token, raw


def api_token_authenticate(raw: str) -> ApiToken | None:
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=_token_hash(raw), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is not None:
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
    return token


def api_token_revoke(*, token: ApiToken) -> None:
    """Revoke a token; it is kept (revoked) so its history stays visible."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])


def flow_step_move(*, step: Any, direction: str) -> None:
    """Move a step one place up or down in its flow; positions become 1..n in one change."""
    if direction not in ("up", "down"):
        raise ValidationError("Move a step 'up' or 'down'.")
    siblings = list(type(step).objects.filter(flow_id=step.flow_id).order_by("position", "pk"))
    index = next(i for i, s in enumerate(siblings) if s.pk == step.pk)
    other = index - 1 if direction == "up" else index + 1
    if not 0 <= other < len(siblings):
        where = "first" if direction == "up" else "last"
        raise ValidationError(f"{step.name} is already the {where} step.")
    siblings[index], siblings[other] = siblings[other], siblings[index]
    with versioned_change():
        for position, sibling in enumerate(siblings, start=1):
            if sibling.position != position:
                sibling.position = position
                sibling.save(update_fields=["position"])


# Credentials at rest ---------------------------------------------------------------


def credentials_reencrypt(*, batch_size: int = 500) -> int:
    """Encrypt every connection's stored credentials again with the first key of
    ILM_SECRET_KEYS (key rotation). Works on the stored tokens, so no plaintext is ever
    handled in bulk and no history or audit row is written (nothing a user sees changes).
    Returns how many connections were re-encrypted."""
    from django.db import connection as db

    from .credentials import rotate
    from .models import Connection

    table = db.ops.quote_name(Connection._meta.db_table)
    column = db.ops.quote_name("credentials")
    done = 0
    last = 0
    with transaction.atomic():
        while True:
            with db.cursor() as cursor:
                cursor.execute(
                    f"SELECT id, {column} FROM {table} WHERE id > %s ORDER BY id LIMIT %s",
                    [last, batch_size],
                )
                rows = cursor.fetchall()
                if not rows:
                    break
                cursor.executemany(
                    f"UPDATE {table} SET {column} = %s WHERE id = %s",
                    [(rotate(token), pk) for pk, token in rows if token],
                )
            done += sum(1 for _, token in rows if token)
            last = rows[-1][0]
    return done
