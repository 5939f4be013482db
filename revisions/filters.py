"""The one FilterSet of an integration's revisions, shared by the Revisions tab and
GET /api/v1/integrations/{id}/revisions (docs/api.md: `type`, `status`, `created_by`,
and `since`/`until`)."""

from __future__ import annotations

from collections.abc import Iterable

import django_filters
from django import forms

from integrations.filters import MomentFilter, SinceUntilForm

from .models import Revision, RevisionStatus, RevisionType


class RevisionFilter(django_filters.FilterSet):
    type = django_filters.ChoiceFilter(
        choices=RevisionType.choices, empty_label="All types", label="Type"
    )
    status = django_filters.ChoiceFilter(
        choices=RevisionStatus.choices, empty_label="All statuses", label="Status"
    )
    created_by = django_filters.CharFilter(
        field_name="created_by__username", label="User", help_text="Username of who started it."
    )
    since = MomentFilter(
        field_name="created_at",
        lookup_expr="gte",
        label="From",
        help_text="Created from this date or date-time (UTC).",
    )
    until = MomentFilter(
        field_name="created_at",
        lookup_expr="lte",
        label="To",
        help_text="Created up to this date (inclusive) or date-time (UTC).",
    )

    class Meta:
        model = Revision
        form = SinceUntilForm
        fields = ("type", "status", "created_by", "since", "until")

    def offer_users(self, usernames: Iterable[str]) -> None:
        """On a page, `created_by` is picked from the people who made revisions."""
        self.form.fields["created_by"].widget = forms.Select(
            choices=[("", "Anyone"), *((u, u) for u in usernames)]
        )
