"""FilterSets shared by list pages and the API (one per list)."""

import django_filters

from .models import Environment, Integration


class IntegrationFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains", help_text="Part of the name.")
    environment = django_filters.ChoiceFilter(choices=Environment.choices)
    cloned_from = django_filters.NumberFilter(field_name="cloned_from_id")

    class Meta:
        model = Integration
        fields = ("name", "environment", "cloned_from")
