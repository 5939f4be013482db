"""The one FilterSet per list, shared by its page and the API: runs, and errors (whose
CSV download uses it too)."""

import django_filters
from django import forms
from django.db.models import Q, TextField
from django.db.models.functions import Cast

from integrations.filters import MomentFilter, SinceUntilForm
from integrations.models import Integration

from .models import ErrorKind, ErrorState, FlowError, Run, RunMode, RunStatus
from .selectors import flow_lineage, step_lineage


class RunFilter(django_filters.FilterSet):
    """The one FilterSet of the runs list: the Runs tab and the API."""

    flow = django_filters.CharFilter(
        method="filter_flow", label="Flow", help_text="The flow's id (or lineage id)."
    )
    status = django_filters.ChoiceFilter(
        choices=RunStatus.choices, empty_label="Any status", label="Status"
    )
    mode = django_filters.ChoiceFilter(
        choices=RunMode.choices, empty_label="Live and test", label="Mode"
    )
    since = MomentFilter(
        field_name="created_at",
        lookup_expr="gte",
        label="From",
        help_text="Started at or after this date-time, or from this date (ISO 8601).",
    )
    until = MomentFilter(
        field_name="created_at",
        lookup_expr="lt",
        label="To",
        help_text="Started before this date-time, or up to the end of this date (ISO 8601).",
    )

    class Meta:
        model = Run
        form = SinceUntilForm
        fields = ("flow", "status", "mode", "since", "until")

    def filter_flow(self, queryset, name, value):
        lineage = flow_lineage(value)
        return queryset.filter(flow_lineage_id=lineage) if lineage else queryset.none()

    def offer_flows(self, integration: Integration) -> None:
        """On a page, `flow` is picked from the integration's flows."""
        flows = integration.flows.order_by("name", "pk").values_list("lineage_id", "name")
        self.form.fields["flow"].widget = forms.Select(
            choices=[("", "All flows")] + [(str(i), n) for i, n in flows]
        )


class ErrorFilter(django_filters.FilterSet):
    """The one FilterSet of the errors list: the Errors page, the API and the CSV."""

    flow = django_filters.CharFilter(
        method="filter_flow", help_text="The flow's id (or lineage id)."
    )
    step = django_filters.CharFilter(
        method="filter_step", help_text="The step's lineage id (or id)."
    )
    state = django_filters.ChoiceFilter(choices=ErrorState.choices)
    kind = django_filters.ChoiceFilter(choices=ErrorKind.choices)
    assignee = django_filters.CharFilter(
        method="filter_assignee", help_text="A username, or `none` for unassigned errors."
    )
    since = MomentFilter(
        field_name="last_seen",
        lookup_expr="gte",
        help_text="Last seen at or after this date-time, or from this date (ISO 8601).",
    )
    until = MomentFilter(
        field_name="last_seen",
        lookup_expr="lt",
        help_text="Last seen before this date-time, or up to the end of this date (ISO 8601).",
    )
    q = django_filters.CharFilter(method="filter_q", help_text="Text in the message or the record.")

    class Meta:
        model = FlowError
        form = SinceUntilForm
        fields = ("flow", "step", "state", "kind", "assignee", "since", "until", "q")

    def filter_flow(self, queryset, name, value):
        lineage = flow_lineage(value)
        return queryset.filter(flow_lineage_id=lineage) if lineage else queryset.none()

    def filter_step(self, queryset, name, value):
        lineage = step_lineage(value)
        return queryset.filter(step_lineage_id=lineage) if lineage else queryset.none()

    def filter_assignee(self, queryset, name, value):
        if value.lower() == "none":
            return queryset.filter(assignee=None)
        return queryset.filter(assignee__username=value)

    def filter_q(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.annotate(_record_text=Cast("record", TextField())).filter(
            Q(message__icontains=value) | Q(_record_text__icontains=value)
        )
