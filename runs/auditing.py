"""The audit events the runs app writes itself (runs, errors, alerts): one shape, read from
the audit context (who, from where, which request), appended by the caller."""

from __future__ import annotations

from typing import Any

from audit.context import Source, current
from audit.models import Event
from integrations.models import Integration, User


def actor_of(user: User | None) -> User | None:
    """The user an event names: the one given, else the request's (None for the system)."""
    if user is not None and getattr(user, "pk", None):
        return user
    ctx = current()
    return ctx.user if ctx.user is not None and getattr(ctx.user, "pk", None) else None


def audit_event(
    integration: Integration,
    user: User | None,
    action: str,
    *,
    resource_type: str,
    resource_id: int,
    resource_name: str,
    changes: list[dict[str, Any]],
) -> Event:
    """One unsaved event about a resource of `integration` (append it with audit.chain)."""
    ctx = current()
    actor = actor_of(user)
    source = ctx.source.value if isinstance(ctx.source, Source) else str(ctx.source)
    return Event(
        user_id=actor.pk if actor else None,
        username=actor.get_username() if actor else "",
        source=source,
        remote_addr=ctx.remote_addr,
        operation_id=ctx.request_id,
        integration_id=integration.pk,
        integration_name=integration.name,
        resource_type=resource_type,
        resource_id=resource_id,
        resource_name=resource_name[:500],
        action=action,
        changes=changes,
    )
