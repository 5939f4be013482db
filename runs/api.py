"""REST endpoints of flow runs (docs/api.md, "Flow runs (the runtime)").

Thin: load what the user may see (404), check the action in the one role table (403:
live runs need `run`, test runs `edit`), validate the shape (400), call the service
(refusals carry their status: 409 for a flow already running live), answer with the run.
A started run answers 202; clients poll `GET /runs/{id}`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.http import Http404, HttpResponse
from django.utils import timezone
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from prometheus_client import CONTENT_TYPE_LATEST
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from audit.api import CSVRenderer
from integrations.api_base import ApiView, Pagination, validated
from integrations.models import Environment, Flow, User
from integrations.permissions import (
    Action,
    can,
    get_visible_integration,
    require,
    visible_integrations,
)
from revisions.models import Revision, RevisionType

from . import behaviour_checks, error_csv, error_selectors, errors, monitoring, selectors, services
from .filters import ErrorFilter, RunFilter
from .metrics import metrics_text
from .models import BehaviourCheck, ErrorRetry, FlowError, Run, RunError, RunMode, RunTrigger
from .serializers import (
    BehaviourSerializer,
    BehaviourStartSerializer,
    ErrorAssignSerializer,
    ErrorResolveRequestSerializer,
    ErrorRetryRequestSerializer,
    ErrorRetrySerializer,
    FlowErrorSerializer,
    RunErrorSerializer,
    RunSerializer,
    RunStartSerializer,
    behaviour_data,
)


def run_action(mode: str) -> Action:
    """The action a run of this mode needs: live runs send data (`run`); test runs send
    nothing and need what editing the flow needs (`edit`)."""
    return Action.RUN if mode == RunMode.LIVE else Action.TEST_RUN


def _run(request, pk: int, action: Action | None = None) -> Run:
    run = (
        Run.objects.select_related("integration", "created_by")
        .filter(pk=pk, integration__in=visible_integrations(request.user))
        .first()
    )
    if run is None:
        raise Http404("No such run.")
    if action is not None:
        require(request.user, action, run.integration)
    return run


def _answer(run: Run, code: int = status.HTTP_200_OK) -> Response:
    fresh = Run.objects.select_related("created_by").prefetch_related("steps").get(pk=run.pk)
    return Response(RunSerializer(fresh).data, status=code)


class FlowRunsView(ApiView):
    """Start a run of a flow."""

    serializer_class = RunSerializer

    @extend_schema(
        summary="Run a flow: live (202, queued) or test (against given records or the samples)",
        request=RunStartSerializer,
        responses={202: RunSerializer},
    )
    def post(self, request, pk: int):
        flow = Flow.objects.select_related("integration").filter(pk=pk).first()
        if flow is None:
            raise Http404("No such flow.")
        get_visible_integration(request.user, flow.integration_id)
        data = validated(RunStartSerializer, request.data)
        mode = data["mode"]
        require(request.user, run_action(mode), flow.integration)
        try:
            run = services.run_start(
                flow=flow,
                user=request.user,
                mode=mode,
                trigger=RunTrigger.API if mode == RunMode.LIVE else RunTrigger.TEST,
                records=data.get("records"),
            )
        except services.RunRefused as refused:
            raise _bad_input(refused) from None
        return _answer(run, status.HTTP_202_ACCEPTED)


class IntegrationRunsView(ApiView):
    """The runs of an integration, newest first."""

    serializer_class = RunSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = RunFilter

    def get_queryset(self):
        return Run.objects.none()

    @extend_schema(summary="Runs, newest first", responses=RunSerializer(many=True))
    def get(self, request, pk: int):
        integration = get_visible_integration(request.user, pk)
        qs = self.filter_queryset(selectors.runs_of(integration).prefetch_related("steps"))
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(RunSerializer(page, many=True).data)


class RunDetailView(ApiView):
    serializer_class = RunSerializer

    @extend_schema(summary="One run with its steps (poll this while it runs)")
    def get(self, request, pk: int):
        return _answer(_run(request, pk))


class RunErrorsView(ApiView):
    serializer_class = RunErrorSerializer

    def get_queryset(self):
        return RunError.objects.none()

    @extend_schema(
        summary="The run's first errors, with the failing record (secrets masked)",
        responses=RunErrorSerializer(many=True),
    )
    def get(self, request, pk: int):
        run = _run(request, pk)
        page = self.paginate_queryset(selectors.run_errors(run))
        return self.get_paginated_response(RunErrorSerializer(page, many=True).data)


class RunCancelView(ApiView):
    serializer_class = RunSerializer

    @extend_schema(
        summary="Cancel a queued run at once or a running one between pages",
        request=None,
        responses={200: RunSerializer},
    )
    def post(self, request, pk: int):
        run = _run(request, pk)
        require(request.user, run_action(run.mode), run.integration)
        return _answer(services.run_cancel(run=run, user=request.user))


def _pull(request, pk: int) -> Revision:
    revision = Revision.objects.select_related("integration").filter(pk=pk).first()
    if revision is None:
        raise Http404("No such revision.")
    revision.integration = get_visible_integration(request.user, revision.integration_id)
    return revision


def _behaviour_answer(revision: Revision, check, code: int = status.HTTP_200_OK) -> Response:
    stale = check is not None and behaviour_checks.is_stale(check)
    data = BehaviourSerializer(behaviour_data(revision.pk, check, stale=stale)).data
    return Response(data, status=code)


class RevisionBehaviourView(ApiView):
    """The behaviour of a pull: its flows run as tests through ours and theirs."""

    serializer_class = BehaviourSerializer

    @extend_schema(
        summary="Test what a ready pull does: run the touched flows' samples (or the given "
        "records) through ours and theirs (202)",
        request=BehaviourStartSerializer,
        responses={202: BehaviourSerializer},
    )
    def post(self, request, pk: int):
        revision = _pull(request, pk)
        require(request.user, Action.TEST_RUN, revision.integration)
        data = validated(BehaviourStartSerializer, request.data)
        try:
            check = behaviour_checks.behaviour_check_start(
                revision=revision,
                user=request.user,
                records=data.get("records"),
            )
        except services.RunRefused as refused:
            raise _bad_input(refused) from None
        check.refresh_from_db()
        return _behaviour_answer(revision, check, status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="The pull's behaviour for its current changeset (started when there is none "
        "and the user may test); poll while queued or running",
        responses=BehaviourSerializer,
    )
    def get(self, request, pk: int):
        revision = _pull(request, pk)
        if revision.type != RevisionType.PULL:
            raise serializers.ValidationError(
                {"non_field_errors": ["Only a pull has a behaviour to test."]}
            )
        if can(request.user, Action.TEST_RUN, revision.integration):
            check = behaviour_checks.behaviour_current(revision=revision, user=request.user)
        else:
            check = BehaviourCheck.objects.filter(revision=revision).order_by("-pk").first()
        if check is not None:
            check.refresh_from_db()
        return _behaviour_answer(revision, check)


# Monitoring ----------------------------------------------------------------------------


class MonitoringQuerySerializer(serializers.Serializer):
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    integration = serializers.IntegerField(required=False, min_value=1)
    flow = serializers.UUIDField(required=False, help_text="A flow's lineage id.")
    environment = serializers.ChoiceField(required=False, choices=Environment.choices)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        until = attrs.get("until") or timezone.now()
        since = attrs.get("since") or until - timedelta(hours=24)
        if since >= until:
            raise serializers.ValidationError({"since": ["since must be before until."]})
        attrs.update(since=since, until=until)
        return attrs


class MonitoredFlowSerializer(serializers.Serializer):
    flow = serializers.IntegerField(source="flow_id", allow_null=True)
    flow_lineage_id = serializers.UUIDField()
    flow_name = serializers.CharField()
    integration = serializers.IntegerField(source="integration.pk")
    integration_name = serializers.CharField(source="integration.name")
    status = serializers.CharField(source="health.status")
    status_reason = serializers.CharField(source="health.reason")
    runs = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    partial = serializers.IntegerField()
    failed = serializers.IntegerField()
    canceled = serializers.IntegerField()
    success_rate = serializers.FloatField(allow_null=True)
    records = serializers.IntegerField(source="records_in")
    records_in = serializers.IntegerField()
    records_out = serializers.IntegerField()
    errors = serializers.IntegerField()
    retries = serializers.IntegerField()
    p50_ms = serializers.FloatField(allow_null=True)
    p95_ms = serializers.FloatField(allow_null=True)
    last_run = serializers.DateTimeField(source="last_run_at", allow_null=True)
    next_run = serializers.DateTimeField(source="next_run_at", allow_null=True)
    errors_by_kind = serializers.DictField(child=serializers.IntegerField())


class MonitoringFlowsView(ApiView):
    """Per flow the user can see, over `since`/`until` (default the last 24 h)."""

    serializer_class = MonitoredFlowSerializer

    @extend_schema(
        summary="Flow health and figures over a range, read from the hourly rollups",
        parameters=[MonitoringQuerySerializer],
        responses=MonitoredFlowSerializer(many=True),
    )
    def get(self, request):
        scope = monitoring.scope_for(
            request.user, **validated(MonitoringQuerySerializer, request.query_params)
        )
        page = self.paginate_queryset(monitoring.flow_rows(scope))
        return self.get_paginated_response(MonitoredFlowSerializer(page, many=True).data)


class MetricsView(ApiView):
    """Prometheus text format of the integrations the token's user may see."""

    @extend_schema(
        summary="Prometheus metrics (token of an administrator or monitor)",
        responses={(200, "text/plain"): str},
    )
    def get(self, request):
        require(request.user, Action.VIEW_METRICS)
        body = metrics_text(visible_integrations(request.user))
        return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


# Errors (docs/api.md, "Errors (error management)") ---------------------------------------


def _bad_input(refused: services.RunRefused) -> Exception:
    """A 400 refusal in the API's shape naming the field; other refusals as they are."""
    if refused.status_code == status.HTTP_400_BAD_REQUEST:
        return serializers.ValidationError({refused.field or "non_field_errors": [refused.message]})
    return refused


_MAX_OFFSET = 2**63 - 1


class UncountedPagination(Pagination):
    """The API's `{"results", "next"}` pages without counting the matches: one row more
    than a page says whether there is a next one (a step may hold a million errors)."""

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        size = self.get_page_size(request) or self.page_size
        try:
            number = int(request.query_params.get(self.page_query_param, 1))
        except (TypeError, ValueError):
            number = 1
        start = (number - 1) * size
        # Beyond PostgreSQL's bigint an OFFSET is a database error, not an empty page.
        if number < 1 or start + size + 1 > _MAX_OFFSET:
            raise NotFound("Invalid page.")
        rows = list(queryset[start : start + size + 1])
        if not rows and number > 1:
            raise NotFound("Invalid page.")
        self._number, self._has_next = number, len(rows) > size
        return rows[:size]

    def get_next_link(self):
        if not self._has_next:
            return None
        url = self.request.build_absolute_uri()
        return replace_query_param(url, self.page_query_param, self._number + 1)


class IntegrationErrorsView(ApiView):
    """The errors of an integration, most recently seen first."""

    serializer_class = FlowErrorSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = ErrorFilter
    pagination_class = UncountedPagination

    def get_queryset(self):
        return FlowError.objects.none()

    @extend_schema(
        summary="Errors, most recently seen first", responses=FlowErrorSerializer(many=True)
    )
    def get(self, request, pk: int):
        integration = get_visible_integration(request.user, pk)
        qs = self.filter_queryset(error_selectors.errors_of(integration))
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(FlowErrorSerializer(page, many=True).data)


class IntegrationErrorsCsvView(ApiView):
    """The same errors and filters as CSV, streamed."""

    filter_backends = [DjangoFilterBackend]
    filterset_class = ErrorFilter
    renderer_classes = [JSONRenderer, CSVRenderer]

    def get_queryset(self):
        return FlowError.objects.none()

    @extend_schema(
        operation_id="integration_errors_csv",
        filters=True,
        summary="Errors as CSV, streamed: one row per error",
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR)},
    )
    def get(self, request, pk: int):
        integration = get_visible_integration(request.user, pk)
        qs = self.filter_queryset(error_selectors.errors_of(integration))
        return error_csv.csv_response(qs, filename=f"errors-integration-{integration.pk}.csv")


class ErrorRetryStartView(ApiView):
    serializer_class = ErrorRetrySerializer

    @extend_schema(
        summary="Retry errors from their failing step on, with the flow as it is now (202)",
        request=ErrorRetryRequestSerializer,
        responses={202: ErrorRetrySerializer},
    )
    def post(self, request, pk: int):
        integration = get_visible_integration(request.user, pk)
        require(request.user, Action.RETRY_ERRORS, integration)
        data = validated(ErrorRetryRequestSerializer, request.data)
        try:
            retry = errors.errors_retry_start(
                integration=integration,
                user=request.user,
                ids=data["ids"],
                records=data.get("records"),
            )
        except services.RunRefused as refused:
            raise _bad_input(refused) from None
        retry.refresh_from_db()
        return Response(ErrorRetrySerializer(retry).data, status=status.HTTP_202_ACCEPTED)


class ErrorRetryDetailView(ApiView):
    serializer_class = ErrorRetrySerializer

    @extend_schema(summary="One retry of errors (poll this while it runs)")
    def get(self, request, pk: int):
        retry = (
            ErrorRetry.objects.select_related("created_by")
            .filter(pk=pk, integration__in=visible_integrations(request.user))
            .first()
        )
        if retry is None:
            raise Http404("No such retry.")
        return Response(ErrorRetrySerializer(retry).data)


class ErrorResolveView(ApiView):
    serializer_class = ErrorResolveRequestSerializer

    @extend_schema(
        summary="Resolve errors (by you, with an optional comment)",
        request=ErrorResolveRequestSerializer,
        responses={
            200: inline_serializer("ErrorsResolved", {"resolved": serializers.IntegerField()})
        },
    )
    def post(self, request, pk: int):
        integration = get_visible_integration(request.user, pk)
        require(request.user, Action.MANAGE_ERRORS, integration)
        data = validated(ErrorResolveRequestSerializer, request.data)
        try:
            resolved = errors.errors_resolve(
                integration=integration,
                user=request.user,
                ids=data["ids"],
                comment=data.get("comment", ""),
            )
        except services.RunRefused as refused:
            raise _bad_input(refused) from None
        return Response({"resolved": resolved})


class ErrorDetailView(ApiView):
    serializer_class = FlowErrorSerializer

    def _error(self, request, pk: int) -> FlowError:
        error = (
            FlowError.objects.select_related("integration", "assignee", "resolved_by_user")
            .filter(pk=pk, integration__in=visible_integrations(request.user))
            .first()
        )
        if error is None:
            raise Http404("No such error.")
        return error

    @extend_schema(summary="One error")
    def get(self, request, pk: int):
        return Response(FlowErrorSerializer(self._error(request, pk)).data)

    @extend_schema(
        summary="Assign an error to a user (or null to unassign)",
        request=ErrorAssignSerializer,
        responses={200: FlowErrorSerializer},
    )
    def patch(self, request, pk: int):
        error = self._error(request, pk)
        require(request.user, Action.MANAGE_ERRORS, error.integration)
        username = validated(ErrorAssignSerializer, request.data)["assignee"]
        assignee = None
        if username:
            assignee = User.objects.filter(username=username, is_active=True).first()
            if assignee is None:
                raise serializers.ValidationError({"assignee": [f"No user {username!r}."]})
        try:
            updated = errors.error_assign(error=error, user=request.user, assignee=assignee)
        except services.RunRefused as refused:
            raise _bad_input(refused) from None
        return Response(FlowErrorSerializer(self._error(request, updated.pk)).data)
