"""Reads of the audit log that the pages, the CSV download and the API share."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Func, IntegerField, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
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


def _keyset(events: QuerySet[Event], cursor: str | None) -> QuerySet[Event]:
    """Newest first, after the cursor.

    `at <= cursor.at` is an index condition on (at, id), so a deep page starts where the
    cursor points instead of scanning everything newer; ties on `at` go by id.
    """
    qs = events.order_by("-at", "-id")
    if cursor:
        at, pk = decode_cursor(cursor)
        qs = qs.filter(at__lte=at).exclude(Q(at=at) & Q(id__gte=pk))
    return qs


def page_of(events: QuerySet[Event], *, cursor: str | None, size: int = PAGE_SIZE) -> EventPage:
    """Newest first, `size` events after the cursor."""
    rows = list(_keyset(events, cursor)[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return EventPage(rows, encode_cursor(rows[-1]) if more and rows else None)


# The audit list's page --------------------------------------------------------------------


class _ChangeCount(Func):
    """How many field changes an event has, counted by the database: the list shows the
    count, and decoding every row's changes was a large part of the page (make bench fig 6)."""

    function = "JSON_ARRAY_LENGTH"
    output_field = IntegerField()

    def as_postgresql(self, compiler, connection, **extra):  # type: ignore[no-untyped-def]
        return self.as_sql(compiler, connection, function="JSONB_ARRAY_LENGTH", **extra)


# What a row of the audit list shows (and its cache key, the event's hash): read as plain
# tuples, not model instances, which cost more than the query at 50 rows (make bench fig 6).
LIST_COLUMNS = (
    "pk",
    "at",
    "username",
    "source",
    "integration_id",
    "integration_name",
    "resource_type",
    "resource_id",
    "resource_name",
    "action",
    "change_count",
    "operation_id",
    "hash",
)


@dataclass
class ListPage:
    # Named tuples with the LIST_COLUMNS as attributes (pk, at, username, …).
    events: list[Any]
    next_cursor: str | None
    # The hash of the newest event of the whole log, when asked for: a version that
    # changes with every new event (None on an empty page).
    head: str | None = None


def list_page_of(
    events: QuerySet[Event], *, cursor: str | None, size: int = PAGE_SIZE, head: bool = False
) -> ListPage:
    """`page_of` for the audit list: the columns its rows show, and with `head` the log's
    newest hash read in the same query (an uncorrelated subquery, evaluated once)."""
    qs = _keyset(events, cursor).annotate(change_count=Coalesce(_ChangeCount("changes"), Value(0)))
    columns = LIST_COLUMNS
    if head:
        newest = Event.objects.order_by("-id").values("hash")[:1]
        qs = qs.annotate(log_head=Subquery(newest))
        columns = (*columns, "log_head")
    rows = list(qs.values_list(*columns, named=True)[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return ListPage(
        rows,
        encode_cursor(rows[-1]) if more and rows else None,
        rows[0].log_head if head and rows else None,
    )


# The global list's filter choices ---------------------------------------------------------

FACETS_KEY = "audit:list-facets:1"
FACETS_SECONDS = 24 * 3600


@dataclass
class Facets:
    """What the global list's filters offer: every integration (id, name) and username."""

    head: str
    integrations: list[tuple[int, str]]
    usernames: list[str]


def facets_for(head: str | None, cached: Facets | None = None) -> Facets:
    """The filter choices at the log's `head`: `cached` (from FACETS_KEY) while the log has
    no newer event, read again otherwise.

    Integrations are audited, so a new, renamed or deleted one comes with a new event and
    a new head. Users are not: saving or deleting one drops the cached choices
    (`forget_facets`). With no head (an empty page) nothing is cached.
    """
    if head is not None and cached is not None and cached.head == head:
        return cached
    facets = Facets(
        head or "",
        list(Integration.objects.order_by("name", "pk").values_list("pk", "name")),
        list(User.objects.order_by("username").values_list("username", flat=True)),
    )
    if head is not None:
        cache.set(FACETS_KEY, facets, FACETS_SECONDS)
    return facets


def forget_facets(**kwargs: Any) -> None:
    """Receiver of a user's save and delete: the usernames offered change. Dropped now and
    again after commit, so a page read before the commit cannot keep the list from before."""
    cache.delete(FACETS_KEY)
    transaction.on_commit(lambda: cache.delete(FACETS_KEY))
