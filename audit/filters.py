"""The one FilterSet of the audit log, shared by the pages, the CSV download and the API."""

from __future__ import annotations

import django_filters

from integrations.filters import IdFilter, MomentFilter

from .capture import resource_type_choices
from .models import SOURCE_CHOICES, Action, Event


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
