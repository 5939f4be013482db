"""The one FilterSet of the runs list, shared by the Runs tab and the API."""

import django_filters

from .models import Run, RunMode, RunStatus
from .selectors import flow_lineage


class RunFilter(django_filters.FilterSet):
    flow = django_filters.CharFilter(
        method="filter_flow", help_text="The flow's id (or lineage id)."
    )
    status = django_filters.ChoiceFilter(choices=RunStatus.choices)
    mode = django_filters.ChoiceFilter(choices=RunMode.choices)
    since = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="Started at or after (ISO 8601)."
    )
    until = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="Started before (ISO 8601)."
    )

    class Meta:
        model = Run
        fields = ("flow", "status", "mode", "since", "until")

    def filter_flow(self, queryset, name, value):
        lineage = flow_lineage(value)
        return queryset.filter(flow_lineage_id=lineage) if lineage else queryset.none()
