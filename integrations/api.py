"""REST endpoints for integrations, their resources, access grants and lookup-cache data.

Thin, as the UI views: load what the user may see (not visible → 404), check the action in
the one role table (not allowed → 403), validate the shape (400), call the same service the
UI calls, answer in the shape of docs/api.md. The engine's endpoints under
`/integrations/{id}/` (document, clone, family, package import) live in `revisions.api`:
they run the revision engine, which sits a floor above (docs/architecture.md).
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Count, QuerySet, Sum, Value
from django.db.models.functions import Coalesce
from django.http import Http404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.response import Response

from . import services
from .api_base import ApiView, validated
from .filters import IntegrationFilter
from .models import Integration, LookupCache
from .permissions import (
    Action,
    get_visible_integration,
    require,
    require_environment,
    visible_integrations,
)
from .resources import RESOURCE_TYPES
from .serializers import (
    IGNORE_FIELDS_SCHEMA,
    RESOURCE_SERIALIZERS,
    CacheEntriesAddedSerializer,
    CacheEntriesInputSerializer,
    CacheEntrySerializer,
    GrantSerializer,
    IntegrationCreateSerializer,
    IntegrationSerializer,
    IntegrationUpdateSerializer,
    reject_nul,
)


def _integration(request, pk: int, action: Action = Action.VIEW) -> Integration:
    integration = get_visible_integration(request.user, pk)
    require(request.user, action, integration)
    return integration


# Integrations ----------------------------------------------------------------------------


class IntegrationListView(ApiView):
    serializer_class = IntegrationSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = IntegrationFilter

    def get_queryset(self) -> QuerySet[Integration]:
        return visible_integrations(self.request.user).order_by("name", "pk")

    @extend_schema(summary="Integrations you can see", responses=IntegrationSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        summary="Create an integration (you hold `manage` on it)",
        request=IntegrationCreateSerializer,
        responses={201: IntegrationSerializer},
    )
    def post(self, request):
        require(request.user, Action.CREATE_INTEGRATION)
        data = validated(IntegrationCreateSerializer, request.data)
        require_environment(request.user, data.get("environment"))
        integration = services.integration_create(user=request.user, **data)
        return Response(IntegrationSerializer(integration).data, status=status.HTTP_201_CREATED)


class IntegrationDetailView(ApiView):
    serializer_class = IntegrationSerializer

    @extend_schema(summary="One integration")
    def get(self, request, pk: int):
        return Response(IntegrationSerializer(_integration(request, pk)).data)

    @extend_schema(
        summary=(
            "Change an integration's settings (environment, and turning protection off: "
            "administrators only)"
        ),
        request=IntegrationUpdateSerializer,
        responses={200: IntegrationSerializer},
    )
    def patch(self, request, pk: int):
        integration = _integration(request, pk)
        data = validated(IntegrationUpdateSerializer, request.data)
        protected = data.pop("protected", None)
        reason = data.pop("reason", "")
        with transaction.atomic():
            # Protection off first (administrators), so the same request may then edit.
            unprotecting = protected is False and integration.protected
            if unprotecting:
                require(request.user, Action.UNPROTECT, integration)
                services.integration_protection_set(
                    integration=integration, protected=False, user=request.user, reason=reason
                )
            if data or not unprotecting:
                # Settings, turning protection on, an empty PATCH: all are edits.
                require(request.user, Action.EDIT, integration)
            if "environment" in data and data["environment"] != integration.environment:
                require(request.user, Action.CHANGE_ENVIRONMENT, integration)
            if data:
                integration = services.integration_update(integration=integration, data=data)
            if protected:
                services.integration_protection_set(
                    integration=integration, protected=True, user=request.user, reason=reason
                )
        return Response(IntegrationSerializer(integration).data)

    @extend_schema(summary="Delete an integration and all its resources", responses={204: None})
    def delete(self, request, pk: int):
        integration = _integration(request, pk, Action.DELETE_INTEGRATION)
        services.integration_delete(integration=integration)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AccessView(ApiView):
    serializer_class = GrantSerializer
    pagination_class = None

    @extend_schema(summary="Who has access", responses={200: GrantSerializer(many=True)})
    def get(self, request, pk: int):
        integration = _integration(request, pk)
        grants = integration.grants.select_related("user")
        return Response(GrantSerializer(grants, many=True).data)

    @extend_schema(
        summary="Replace the grants (administrators only)",
        request=GrantSerializer(many=True),
        responses={200: GrantSerializer(many=True)},
    )
    def put(self, request, pk: int):
        integration = _integration(request, pk, Action.MANAGE_ACCESS)
        if not isinstance(request.data, list):
            raise serializers.ValidationError(
                {"non_field_errors": ['Send a list of grants: [{"user": ..., "level": ...}].']}
            )
        grants = validated(GrantSerializer, request.data, many=True)
        result = services.access_set(integration=integration, grants=grants)
        return Response(GrantSerializer(result, many=True).data)


class PackageSchemaView(ApiView):
    pagination_class = None

    @extend_schema(
        summary="The JSON Schema of a package (what import validates against)",
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="JSON Schema 2020-12")},
    )
    def get(self, request):
        from .package_schema import package_schema

        return Response(package_schema())


class IgnoreFieldsView(ApiView):
    @extend_schema(
        summary="Fields pulls neither show nor carry", responses={200: IGNORE_FIELDS_SCHEMA}
    )
    def get(self, request, pk: int):
        return Response(_integration(request, pk).ignore_fields)

    @extend_schema(
        summary="Replace the ignore-fields",
        request={"application/json": IGNORE_FIELDS_SCHEMA},
        responses={200: IGNORE_FIELDS_SCHEMA},
    )
    def put(self, request, pk: int):
        integration = _integration(request, pk, Action.EDIT)
        reject_nul(request.data)
        integration = services.integration_update(
            integration=integration, data={"ignore_fields": request.data}
        )
        return Response(integration.ignore_fields)


# Resources -----------------------------------------------------------------------------


def _resource_queryset(type_key: str) -> QuerySet:
    rt = RESOURCE_TYPES[type_key]
    qs = rt.model.objects.select_related("integration", *rt.refs)
    if rt.model is LookupCache:
        qs = qs.annotate(
            entry_count=Count("entries"),
            data_bytes=Coalesce(Sum("entries__size"), Value(0)),
        )
    return qs


class ResourceListView(ApiView):
    """GET, POST `/integrations/{id}/<plural>`, and for steps `/flows/{id}/steps`."""

    type_key: str = ""

    def get_serializer_class(self):
        return RESOURCE_SERIALIZERS[self.type_key]

    def _parent(self, request, pk: int, action: Action):
        """The integration, and the parent resource for a type that has one (a step's
        flow): the list lives under the parent's URL."""
        rt = RESOURCE_TYPES[self.type_key]
        if rt.parent:
            parent_rt = RESOURCE_TYPES[rt.refs[rt.parent]]
            parent = (
                parent_rt.model.objects.select_related("integration")
                .filter(pk=pk, integration__in=visible_integrations(request.user))
                .first()
            )
            if parent is None:
                raise Http404(f"No such {parent_rt.label.lower()}.")
            require(request.user, action, parent.integration)
            return parent.integration, parent
        return _integration(request, pk, action), None

    def get(self, request, pk: int):
        integration, parent = self._parent(request, pk, Action.VIEW)
        qs = _resource_queryset(self.type_key).filter(integration=integration)
        if parent is not None:
            qs = qs.filter(**{RESOURCE_TYPES[self.type_key].parent: parent})
        page = self.paginate_queryset(
            qs.order_by(*RESOURCE_TYPES[self.type_key].model._meta.ordering)
        )
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def post(self, request, pk: int):
        integration, parent = self._parent(request, pk, Action.EDIT)
        data = validated(self.get_serializer_class(), request.data)
        if parent is not None:
            data[RESOURCE_TYPES[self.type_key].parent] = parent.pk
        instance = services.resource_create(
            integration=integration, type_key=self.type_key, data=data
        )
        instance = _resource_queryset(self.type_key).get(pk=instance.pk)
        return Response(self.get_serializer(instance).data, status=status.HTTP_201_CREATED)


class ResourceDetailView(ApiView):
    """GET, PATCH, DELETE `/<plural>/{id}`."""

    type_key: str = ""

    def get_serializer_class(self):
        return RESOURCE_SERIALIZERS[self.type_key]

    def _load(self, request, pk: int, action: Action):
        instance = (
            _resource_queryset(self.type_key)
            .filter(pk=pk, integration__in=visible_integrations(request.user))
            .first()
        )
        if instance is None:
            raise Http404(f"No such {RESOURCE_TYPES[self.type_key].label.lower()}.")
        require(request.user, action, instance.integration)
        return instance

    def get(self, request, pk: int):
        return Response(self.get_serializer(self._load(request, pk, Action.VIEW)).data)

    def patch(self, request, pk: int):
        instance = self._load(request, pk, Action.EDIT)
        data = validated(self.get_serializer_class(), request.data, partial=True)
        services.resource_update(instance=instance, data=data)
        instance = _resource_queryset(self.type_key).get(pk=instance.pk)
        return Response(self.get_serializer(instance).data)

    def delete(self, request, pk: int):
        instance = self._load(request, pk, Action.EDIT)
        services.resource_delete(instance=instance)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _list_schema(type_key: str):
    """The documented shape of one resource type's list view (its summaries and bodies)."""
    rt, serializer = RESOURCE_TYPES[type_key], RESOURCE_SERIALIZERS[type_key]
    return extend_schema_view(
        get=extend_schema(summary=rt.plural, responses=serializer(many=True)),
        post=extend_schema(summary=f"Create a {rt.label.lower()}", responses={201: serializer}),
    )


def _detail_schema(type_key: str):
    """The documented shape of one resource type's detail view."""
    label = RESOURCE_TYPES[type_key].label.lower()
    return extend_schema_view(
        get=extend_schema(summary=f"One {label}"),
        patch=extend_schema(summary=f"Change a {label}"),
        delete=extend_schema(summary=f"Delete a {label}", responses={204: None}),
    )


@_list_schema("connection")
class ConnectionListView(ResourceListView):
    type_key = "connection"


@_detail_schema("connection")
class ConnectionDetailView(ResourceDetailView):
    type_key = "connection"


@_list_schema("lookup_cache")
class LookupCacheListView(ResourceListView):
    type_key = "lookup_cache"


@_detail_schema("lookup_cache")
class LookupCacheDetailView(ResourceDetailView):
    type_key = "lookup_cache"


@_list_schema("script")
class ScriptListView(ResourceListView):
    type_key = "script"


@_detail_schema("script")
class ScriptDetailView(ResourceDetailView):
    type_key = "script"


@_list_schema("flow")
class FlowListView(ResourceListView):
    type_key = "flow"


@_detail_schema("flow")
class FlowDetailView(ResourceDetailView):
    type_key = "flow"


@_list_schema("step")
class StepListView(ResourceListView):
    type_key = "step"


@_detail_schema("step")
class StepDetailView(ResourceDetailView):
    type_key = "step"


# Lookup-cache entries --------------------------------------------------------------------


class CacheEntriesView(ApiView):
    serializer_class = CacheEntrySerializer

    def _cache(self, request, pk: int, action: Action) -> LookupCache:
        cache = (
            LookupCache.objects.select_related("integration")
            .filter(pk=pk, integration__in=visible_integrations(request.user))
            .first()
        )
        if cache is None:
            raise Http404("No such lookup cache.")
        require(request.user, action, cache.integration)
        return cache

    @extend_schema(
        summary="A lookup cache's entries, by key", responses=CacheEntrySerializer(many=True)
    )
    def get(self, request, pk: int):
        cache = self._cache(request, pk, Action.VIEW)
        page = self.paginate_queryset(cache.entries.order_by("key").only("key", "value"))
        return self.get_paginated_response(CacheEntrySerializer(page, many=True).data)

    @extend_schema(
        summary='Add or replace entries: one {key, value} or {"entries": [...]}',
        request=CacheEntriesInputSerializer,
        responses={201: CacheEntriesAddedSerializer},
    )
    def post(self, request, pk: int):
        cache = self._cache(request, pk, Action.EDIT_CACHE_ENTRIES)
        data = validated(CacheEntriesInputSerializer, request.data)
        added = services.cache_entries_add(cache=cache, entries=data["entries"])
        return Response({"added": added}, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Remove every entry",
        responses={
            200: inline_serializer("EntriesCleared", {"deleted": serializers.IntegerField()})
        },
    )
    def delete(self, request, pk: int):
        cache = self._cache(request, pk, Action.EDIT_CACHE_ENTRIES)
        return Response({"deleted": services.cache_entries_clear(cache=cache)})
