"""The one FilterSet of the audit log, shared by the pages, the CSV download and the API."""

from __future__ import annotations

import datetime as dt

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django_filters.fields import IsoDateTimeField

from .capture import resource_type_choices
from .models import SOURCE_CHOICES, Action, Event


def parse_moment(text: str, *, end_of_day: bool) -> dt.datetime:
    """A date (its first moment, or with `end_of_day` its last), or an ISO date-time; UTC
    unless the text says otherwise. Raises ValueError for a date that does not exist."""
    text = (text or "").strip()
    # A date first: parse_datetime would read "2026-11-29" as its midnight, and "until
    # 2026-11-29" means up to the end of that day.
    day = parse_date(text)
    if day is not None:
        moment = dt.datetime.combine(day, dt.time.max if end_of_day else dt.time.min)
    else:
        moment = parse_datetime(text)
        if moment is None:
            raise ValidationError("Enter a date (YYYY-MM-DD) or an ISO 8601 date-time.")
    return as_utc(moment)


def as_utc(moment: dt.datetime) -> dt.datetime:
    """The moment in UTC (naive means UTC). PostgreSQL refuses offsets past ±15:59 that
    Python accepts (e.g. "-19:23"), so no filter sends the offset as given. Raises
    OverflowError for a moment that leaves the calendar once moved to UTC."""
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


class MomentField(forms.CharField):
    def __init__(self, *args, end_of_day: bool = False, **kwargs) -> None:
        self.end_of_day = end_of_day
        kwargs.setdefault("widget", forms.DateInput(attrs={"type": "date"}))
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        if not value:
            return None
        try:
            return parse_moment(value, end_of_day=self.end_of_day)
        except (ValueError, OverflowError):  # e.g. 2026-02-30, or past year 9999
            raise ValidationError("That date does not exist.") from None


class MomentFilter(django_filters.Filter):
    field_class = MomentField


class IsoMomentField(IsoDateTimeField):
    """An ISO 8601 date-time, in UTC (see `as_utc`)."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return as_utc(value)
        except OverflowError:
            raise ValidationError("That date does not exist.") from None


class IsoMomentFilter(django_filters.IsoDateTimeFilter):
    field_class = IsoMomentField


class IdFilter(django_filters.NumberFilter):
    """A database id: a whole number in the range of a bigint."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(*args, **kwargs)


class EventFilter(django_filters.FilterSet):
    integration = IdFilter(field_name="integration_id", help_text="Integration id.")
    user = django_filters.CharFilter(
        field_name="username", help_text="Username (as it was when the event happened)."
    )
    resource_type = django_filters.ChoiceFilter(choices=resource_type_choices, empty_label="Any")
    action = django_filters.ChoiceFilter(choices=Action.choices, empty_label="Any")
    source = django_filters.ChoiceFilter(choices=SOURCE_CHOICES, empty_label="Any")
    since = MomentFilter(
        field_name="at", lookup_expr="gte", help_text="From this date or date-time (UTC)."
    )
    until = MomentFilter(
        field_name="at",
        lookup_expr="lte",
        end_of_day=True,
        help_text="Up to this date (inclusive) or date-time (UTC).",
    )
    q = django_filters.CharFilter(
        field_name="resource_name", lookup_expr="icontains", help_text="Part of the resource name."
    )
    operation = django_filters.UUIDFilter(
        field_name="operation_id", help_text="Events of one request or ILM operation."
    )
    revision = IdFilter(field_name="revision_id", help_text="Revision id.")

    class Meta:
        model = Event
        fields = (
            "integration",
            "user",
            "resource_type",
            "action",
            "source",
            "since",
            "until",
            "q",
            "operation",
            "revision",
        )


def filtered(params, queryset: QuerySet[Event]) -> tuple[EventFilter, QuerySet[Event]]:
    """Apply the filters; bad input raises ValidationError {filter: [messages]}."""
    fs = EventFilter(params, queryset=queryset)
    if not fs.is_valid():
        raise ValidationError(fs.errors)
    return fs, fs.qs
