"""The list filters: one FilterSet per list, shared by its page, the API and any CSV.

The filter kinds every app's lists use live here, on the lowest floor: a database id
(`IdFilter`), a date or date-time bound (`MomentFilter`) and the since/until pair's one
rule (`SinceUntilForm`). Each list's FilterSet sits beside its models (audit, revisions,
runs); this module holds the integrations list's own.

A page binds the FilterSet to `request.GET`; a bad value shows the form's errors and no
rows. The API (DjangoFilterBackend) answers the same bad value with 400 and
`{"detail", "errors": {filter: [messages]}}` (docs/api.md).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from .models import Environment, Integration

MAX_ID = 2**63 - 1


def parse_moment(text: str, *, end_of_day: bool = False, exclusive: bool = False) -> dt.datetime:
    """A date or an ISO date-time, UTC unless the text says otherwise.

    A date is its first moment; with `end_of_day` it takes in the whole day: its last
    moment, or with `exclusive` (for a `<` bound) the next day's first. Raises
    ValidationError for text that is neither, ValueError/OverflowError for a date that
    does not exist.
    """
    text = (text or "").strip()
    # A date first: parse_datetime would read "2026-11-29" as its midnight, and "until
    # 2026-11-29" means up to the end of that day.
    day = parse_date(text)
    if day is not None:
        if end_of_day and exclusive:
            moment = dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min)
        else:
            moment = dt.datetime.combine(day, dt.time.max if end_of_day else dt.time.min)
    else:
        moment = parse_datetime(text)
        if moment is None:
            raise ValidationError("Enter a date (YYYY-MM-DD) or an ISO 8601 date-time.")
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=dt.UTC)
    # In UTC: PostgreSQL refuses offsets beyond ±15:59 that ISO 8601 text may carry.
    return moment.astimezone(dt.UTC)


class MomentField(forms.CharField):
    """A date (picked in a date input) or an ISO 8601 date-time (from the API)."""

    def __init__(
        self, *args: Any, end_of_day: bool = False, exclusive: bool = False, **kwargs: Any
    ) -> None:
        self.end_of_day = end_of_day
        self.exclusive = exclusive
        kwargs.setdefault("widget", forms.DateInput(attrs={"type": "date"}))
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        if not value:
            return None
        try:
            return parse_moment(value, end_of_day=self.end_of_day, exclusive=self.exclusive)
        except (ValueError, OverflowError):  # e.g. 2026-02-30, or past year 9999
            raise ValidationError("That date does not exist.") from None


class MomentFilter(django_filters.Filter):
    """A time bound. As an upper bound (`lt`/`lte`) a date takes in its whole day, so
    "until 2026-11-29" on a page and in the API both include the 29th; a date-time is
    exact."""

    field_class = MomentField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        upper = self.lookup_expr in ("lt", "lte")
        self.extra.setdefault("end_of_day", upper)
        self.extra.setdefault("exclusive", self.lookup_expr == "lt")


class IdFilter(django_filters.NumberFilter):
    """A database id: a whole number in the range of a bigint."""

    field_class = forms.IntegerField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


REVERSED_RANGE = "The end (until) is not after the start (since): swap the dates."


class SinceUntilForm(forms.Form):
    """The form of a FilterSet with a `since`/`until` pair (its `Meta.form`): a range that
    ends before it starts is bad input, said on `until`, rather than an empty list. (An
    exclusive `until` date is the next day's first moment, so "from the 2nd to the 1st"
    compares equal: equal bounds are refused too.)"""

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since >= until:
            self.add_error("until", REVERSED_RANGE)
        return data


def shown_rows(filterset: django_filters.FilterSet):
    """The rows a page shows for a bound FilterSet: every row when nothing is asked, none
    when a value is bad (the page shows the form's errors instead)."""
    if not filterset.is_bound:
        return filterset.queryset
    return filterset.qs if filterset.is_valid() else filterset.queryset.none()


def errors_text(filterset: django_filters.FilterSet) -> str:
    """A bound, invalid FilterSet's errors in one line, for answers that are not a page
    (a CSV download answers 400 with this text)."""
    messages = "; ".join(f"{k}: {' '.join(v)}" for k, v in filterset.errors.items())
    return f"Bad filter: {messages}"


# The integrations list: the home tiles and GET /api/v1/integrations --------------------


class IntegrationFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(
        lookup_expr="icontains",
        help_text="Part of the name.",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Search by name", "aria-label": "Search"}
        ),
    )
    environment = django_filters.ChoiceFilter(choices=Environment.choices, empty_label="All")
    cloned_from = IdFilter(field_name="cloned_from_id", help_text="Id of the integration cloned.")

    class Meta:
        model = Integration
        fields = ("name", "environment", "cloned_from")
