"""Reads of the domain that views in several apps share."""

from __future__ import annotations

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from .models import Connection, Flow, Integration, LookupCache, Script, User
from .permissions import visible_integrations


def namesake_warning(user: User, integration: Integration) -> str | None:
    """A warning when another integration this user can see has the same name (ignoring
    case and surrounding spaces) in the same environment: two tiles, two review pages and
    two audit filters that read alike. Only what the user may see is named, so the check
    tells nothing about integrations hidden from them."""
    same = (
        visible_integrations(user)
        .filter(name__iexact=integration.name.strip(), environment=integration.environment)
        .exclude(pk=integration.pk)
        .count()
    )
    if not same:
        return None
    others = "another integration" if same == 1 else f"{same} other integrations"
    return (
        f"{others[0].upper()}{others[1:]} in {integration.get_environment_display().lower()} "
        f"is also named “{integration.name}”. Give each a name people can tell apart."
    )


def _count(model, **outer) -> Subquery:
    """A correlated COUNT(*) subquery: one query for any number of tiles, no row blow-up."""
    return Coalesce(
        Subquery(
            model.objects.filter(**{k: OuterRef(v) for k, v in outer.items()})
            .order_by()
            .values(*outer)
            .annotate(n=Count("pk"))
            .values("n"),
            output_field=IntegerField(),
        ),
        0,
    )


def with_counts(queryset: QuerySet[Integration]) -> QuerySet[Integration]:
    """The integrations with flow_count, connection_count, cache_count and script_count."""
    return queryset.annotate(
        flow_count=_count(Flow, integration="pk"),
        connection_count=_count(Connection, integration="pk"),
        cache_count=_count(LookupCache, integration="pk"),
        script_count=_count(Script, integration="pk"),
    )
