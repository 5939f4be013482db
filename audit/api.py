"""/api/v1/audit and /api/v1/audit.csv (docs/api.md, "Audit").

The same FilterSet, visibility and cursor pagination as the pages: administrators see
every event; everyone else the events of the integrations they can see. Asking for an
integration the user cannot see is a 404, as everywhere in the API.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from integrations.api_base import ApiView
from integrations.permissions import Action, can, get_visible_integration, require

from . import selectors
from .csv_stream import csv_response
from .filters import EventFilter
from .models import Event

CURSOR = OpenApiParameter(
    "cursor", str, description="The `next` link's cursor; leave out for the newest events."
)
PAGE_SIZE = OpenApiParameter(
    "page_size",
    int,
    description=f"Events per page (default {selectors.PAGE_SIZE}, at most "
    f"{selectors.MAX_PAGE_SIZE}).",
)


class ChangeSerializer(serializers.Serializer):
    field = serializers.CharField()
    old = serializers.JSONField(allow_null=True)
    new = serializers.JSONField(allow_null=True)


class EventSerializer(serializers.ModelSerializer):
    user = serializers.SerializerMethodField()
    integration = serializers.IntegerField(source="integration_id", allow_null=True)
    revision = serializers.IntegerField(source="revision_id", allow_null=True)
    changes = ChangeSerializer(many=True)

    class Meta:
        model = Event
        fields = (
            "id",
            "at",
            "user",
            "source",
            "integration",
            "integration_name",
            "revision",
            "resource_type",
            "resource_id",
            "resource_name",
            "action",
            "changes",
            "operation_id",
            "remote_addr",
            "hash",
        )

    def get_user(self, event: Event) -> str | None:
        return event.username or None


class EventPageSerializer(serializers.Serializer):
    results = EventSerializer(many=True)
    next = serializers.URLField(allow_null=True)


def _events(request, view) -> QuerySet[Event]:
    """The events the user may see, narrowed by the filters (400 on bad input)."""
    integration = request.query_params.get("integration", "")
    in_range = integration.isdigit() and 0 < int(integration) < 2**63
    if in_range and not can(request.user, Action.VIEW_GLOBAL_AUDIT):
        # Not visible (or gone) → 404, as for every integration the user may not see.
        require(request.user, Action.VIEW_AUDIT, get_visible_integration(request.user, integration))
    return DjangoFilterBackend().filter_queryset(
        request, selectors.events_visible_to(request.user), view
    )


class AuditListView(ApiView):
    """Audit events the caller may see, newest first; `next` carries the cursor."""

    serializer_class = EventSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = EventFilter
    pagination_class = None

    def get_queryset(self):
        return Event.objects.none()

    @extend_schema(
        operation_id="audit_list",
        filters=True,
        summary="Audit events, newest first (cursor pagination)",
        parameters=[CURSOR, PAGE_SIZE],
        responses=EventPageSerializer,
    )
    def get(self, request):
        events = _events(request, self)
        try:
            size = int(request.query_params.get("page_size") or selectors.PAGE_SIZE)
        except ValueError:
            size = 0
        if not 1 <= size <= selectors.MAX_PAGE_SIZE:
            raise serializers.ValidationError(
                {"page_size": [f"Give a number from 1 to {selectors.MAX_PAGE_SIZE}."]}
            )
        page = selectors.page_of(events, cursor=request.query_params.get("cursor"), size=size)
        next_url = None
        if page.next_cursor:
            query = request.query_params.copy()
            query["cursor"] = page.next_cursor
            next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        return Response({"results": EventSerializer(page.events, many=True).data, "next": next_url})


class CSVRenderer(BaseRenderer):
    """Lets a client ask for `Accept: text/csv`; errors are then sent as plain text."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, dict) and "detail" in data:
            return str(data["detail"]).encode()
        return str(data or "").encode()


class AuditCsvView(ApiView):
    """The same events and filters as CSV, streamed: one row per field change."""

    filter_backends = [DjangoFilterBackend]
    filterset_class = EventFilter
    renderer_classes = [JSONRenderer, CSVRenderer]

    def get_queryset(self):
        return Event.objects.none()

    @extend_schema(
        operation_id="audit_csv",
        filters=True,
        summary="Audit events as CSV, streamed: one row per field change",
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR)},
    )
    def get(self, request):
        return csv_response(_events(request, self), filename="audit.csv")
