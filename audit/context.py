"""Who is acting, from where, as part of which request or operation.

The middleware opens a context per request (source `ui`, or `api` under /api/);
Celery tasks open one with the user who started the operation and source `ilm`.
django-simple-history takes its user from here (`history_user`), so a history row
written inside a task still names the person behind it, and the audit groups the events
of one request or operation by `request_id`.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any


class Source(StrEnum):
    UI = "ui"
    API = "api"
    ILM = "ilm"
    SYSTEM = "system"


@dataclass(frozen=True)
class AuditContext:
    user: Any = None
    source: Source = Source.SYSTEM
    request_id: uuid.UUID = field(default_factory=uuid.uuid4)
    revision_id: int | None = None
    remote_addr: str | None = None

    @property
    def operation_id(self) -> uuid.UUID:
        """The id the audit groups events by: one per request or per ILM operation."""
        return self.request_id


_current: contextvars.ContextVar[AuditContext | None] = contextvars.ContextVar(
    "ilm_audit_context", default=None
)


def current() -> AuditContext:
    """The acting context; outside any request or task, the system with a fresh id."""
    ctx = _current.get()
    if ctx is None:
        ctx = AuditContext()
        _current.set(ctx)
    return ctx


@contextmanager
def acting(
    user: Any = None,
    source: Source = Source.SYSTEM,
    *,
    revision_id: int | None = None,
    request_id: uuid.UUID | None = None,
    operation_id: uuid.UUID | str | None = None,
    remote_addr: str | None = None,
) -> Iterator[AuditContext]:
    """Act as `user` from `source`; `operation_id` (alias `request_id`) groups the events."""
    group = operation_id or request_id
    if isinstance(group, str):
        group = uuid.UUID(group)
    ctx = AuditContext(
        user=user,
        source=Source(source),
        request_id=group or uuid.uuid4(),
        revision_id=revision_id,
        remote_addr=remote_addr,
    )
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def set_user(user: Any) -> None:
    """Token authentication resolves the user after the middleware opened the context."""
    ctx = _current.get()
    if ctx is not None:
        _current.set(replace(ctx, user=user))


def history_user(instance: Any = None, request: Any = None, **kwargs: Any) -> Any:
    ctx = _current.get()
    user = ctx.user if ctx is not None else None
    if user is None and request is not None:
        user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False) and user.pk:
        return user
    return None
