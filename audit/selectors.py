"""Reads of the audit log that the pages, the CSV download and the API share."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime

from integrations.models import Integration, User
from integrations.permissions import Action, can, visible_integrations

from .models import Event

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def events_visible_to(user: User) -> QuerySet[Event]:
    """Every event for those who may see the global log; otherwise the events of the
    integrations the user can see (sign-ins and other events without an integration
    are for the global log only)."""
    if can(user, Action.VIEW_GLOBAL_AUDIT):
        return Event.objects.all()
    if not can(user, Action.VIEW_AUDIT):
        return Event.objects.none()
    return Event.objects.filter(integration_id__in=visible_integrations(user).values("pk"))


def events_of(integration: Integration) -> QuerySet[Event]:
    return Event.objects.filter(integration_id=integration.pk)


# Keyset (cursor) pagination ------------------------------------------------------------


@dataclass
class EventPage:
    events: list[Event]
    next_cursor: str | None


def encode_cursor(event: Event) -> str:
    raw = f"{event.at.isoformat()}|{event.pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at_text, id_text = raw.split("|")
        at = parse_datetime(at_text)
        pk = int(id_text)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        at = None
    if at is None or at.tzinfo is None:
        raise ValidationError(
            {"cursor": ["The cursor is not valid; start again from the first page."]}
        )
    return at, pk


def page_of(events: QuerySet[Event], *, cursor: str | None, size: int = PAGE_SIZE) -> EventPage:
    """Newest first, `size` events after the cursor.

    `at <= cursor.at` is an index condition on (at, id), so a deep page starts where the
    cursor points instead of scanning everything newer; ties on `at` go by id.
    """
    qs = events.order_by("-at", "-id")
    if cursor:
        at, pk = decode_cursor(cursor)
        qs = qs.filter(at__lte=at).exclude(Q(at=at) & Q(id__gte=pk))
    rows = list(qs[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return EventPage(rows, encode_cursor(rows[-1]) if more and rows else None)
