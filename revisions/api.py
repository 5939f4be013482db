"""REST endpoints of revisions: snapshots, pulls, review, merge, approvals, revert (docs/api.md).

Thin: load what the user may see (404), check the action in the one role table (403),
validate the shape (400), call the revision engine's service (refusals carry their HTTP
status: 409, or 403 when an approval is missing), answer with the revision. Long work
answers 202 with the revision; clients poll `GET /revisions/{id}`.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from integrations.api_base import ApiView, validated
from integrations.models import Environment, Integration
from integrations.permissions import (
    Action,
    can_see,
    get_visible_integration,
    require,
    require_environment,
    visible_integrations,
)
from integrations.serializers import (
    CloneSerializer,
    FamilyMemberSerializer,
    IntegrationSerializer,
    PackageImportSerializer,
    PackagePullSerializer,
)

from . import approvals, batches, packages, selectors, services
from .document import document_of
from .filters import RevisionFilter
from .models import PullBatch, Revision, RevisionStatus, RevisionType
from .serializers import (
    ChangesSerializer,
    CommentSerializer,
    PullBatchSerializer,
    PullIntoSerializer,
    ResolutionsSerializer,
    RevertPreviewSerializer,
    RevertSerializer,
    RevisionCreateSerializer,
    RevisionSerializer,
    SummarySerializer,
    changes_out,
    summary_of,
)

_RELATED = ("integration", "created_by", "source_integration", "reverted_to")


def _integration(request, pk: int, action: Action = Action.VIEW) -> Integration:
    integration = get_visible_integration(request.user, pk)
    require(request.user, action, integration)
    return integration


def _revision(request, pk: int, action: Action = Action.VIEW) -> Revision:
    revision = (
        Revision.objects.select_related(*_RELATED)
        .filter(pk=pk, integration__in=visible_integrations(request.user))
        .first()
    )
    if revision is None:
        raise Http404("No such revision.")
    require(request.user, action, revision.integration)
    return revision


def _answer(revision: Revision, code: int = status.HTTP_200_OK) -> Response:
    fresh = Revision.objects.select_related(*_RELATED).get(pk=revision.pk)
    return Response(RevisionSerializer(fresh).data, status=code)


class IntegrationRevisionsView(ApiView):
    """The revisions of an integration, newest first; start a snapshot or a pull."""

    serializer_class = RevisionSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = RevisionFilter

    def get_queryset(self):
        return Revision.objects.none()

    @extend_schema(summary="Revisions, newest first", responses=RevisionSerializer(many=True))
    def get(self, request, pk: int):
        integration = get_visible_integration(request.user, pk)
        qs = selectors.revisions_for(integration).select_related(*_RELATED)
        qs = self.filter_queryset(qs)
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(RevisionSerializer(page, many=True).data)

    @extend_schema(
        summary="Take a snapshot (201, completed) or start a pull (202, queued)",
        request=RevisionCreateSerializer,
        responses={201: RevisionSerializer, 202: RevisionSerializer},
    )
    def post(self, request, pk: int):
        integration = get_visible_integration(request.user, pk)
        data = validated(RevisionCreateSerializer, request.data)
        if data["type"] == RevisionType.SNAPSHOT:
            require(request.user, Action.SNAPSHOT, integration)
            revision = services.snapshot_create(
                integration=integration, user=request.user, description=data["description"]
            )
            return _answer(revision, status.HTTP_201_CREATED)
        require(request.user, Action.PULL, integration)
        source = Integration.objects.filter(pk=data["source_integration"]).first()
        if source is None or not can_see(request.user, source):
            raise serializers.ValidationError(
                {"source_integration": ["No integration with this id that you can see."]}
            )
        revision = services.pull_create(
            target=integration, source=source, user=request.user, description=data["description"]
        )
        # Answered as created: the pull is computed after this request commits.
        return Response(RevisionSerializer(revision).data, status=status.HTTP_202_ACCEPTED)


class RevisionDetailView(ApiView):
    serializer_class = RevisionSerializer

    @extend_schema(summary="One revision (poll this while it runs)")
    def get(self, request, pk: int):
        return Response(RevisionSerializer(_revision(request, pk)).data)


class ChangesView(ApiView):
    @extend_schema(
        summary="A pull's changeset, with the resolutions chosen so far",
        responses=ChangesSerializer,
    )
    def get(self, request, pk: int):
        revision = _revision(request, pk)
        if revision.type != RevisionType.PULL:
            raise serializers.ValidationError(
                {"non_field_errors": ["Only pulls have a changeset; see revert-preview."]}
            )
        if revision.status in (RevisionStatus.QUEUED, RevisionStatus.RUNNING):
            raise _Conflict("The pull is still being computed; poll the revision until ready.")
        if revision.status == RevisionStatus.FAILED and not hasattr(revision, "changeset"):
            raise _Conflict(f"The pull failed: {revision.error}")
        return Response(changes_out(selectors.changes_for_review(revision)))


class _Conflict(Exception):
    http_status = status.HTTP_409_CONFLICT

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ResolutionsView(ApiView):
    @extend_schema(
        summary="Choose ours or theirs per conflicting path, or per whole resource",
        request=ResolutionsSerializer,
        responses={200: SummarySerializer},
    )
    def post(self, request, pk: int):
        revision = _revision(request, pk, Action.RESOLVE)
        data = validated(ResolutionsSerializer, request.data)
        resolutions = [
            {
                "lineage_id": str(r["lineage_id"]),
                "path": r.get("path") or None,
                "choose": r["choose"],
            }
            for r in data["resolutions"]
        ]
        summary = services.resolutions_set(
            revision=revision, user=request.user, resolutions=resolutions
        )
        return Response(summary_of(summary))


def _operate(request, pk: int, action: Action, operation, body=CommentSerializer, code=200):
    """A POST on one revision: check, validate, call one engine operation, answer the revision."""
    revision = _revision(request, pk, action)
    data = validated(body, request.data) if body is not None else {}
    result = operation(revision=revision, user=request.user, **data)
    return _answer(result if isinstance(result, Revision) else revision, code)


class MergeView(ApiView):
    """Merge the reviewed pull (202; then completed or failed)"""

    @extend_schema(
        summary="Merge the reviewed pull (202; then completed or failed)",
        request=None,
        responses={202: RevisionSerializer},
    )
    def post(self, request, pk: int):
        return _operate(
            request, pk, Action.MERGE, services.merge_start, None, status.HTTP_202_ACCEPTED
        )


class RequestApprovalView(ApiView):
    """Ask an approver to merge into production"""

    @extend_schema(
        summary="Ask an approver to merge into production",
        request=CommentSerializer,
        responses={200: RevisionSerializer},
    )
    def post(self, request, pk: int):
        return _operate(request, pk, Action.REQUEST_APPROVAL, approvals.approval_request)


class ApproveView(ApiView):
    """Approve (not your own request); the merge runs as you (202)"""

    @extend_schema(
        summary="Approve (not your own request); the merge runs as you (202)",
        request=CommentSerializer,
        responses={202: RevisionSerializer},
    )
    def post(self, request, pk: int):
        return _operate(
            request,
            pk,
            Action.APPROVE,
            approvals.approval_approve,
            CommentSerializer,
            status.HTTP_202_ACCEPTED,
        )


class CancelView(ApiView):
    """Cancel a pull that is not merging yet"""

    @extend_schema(
        summary="Cancel a pull that is not merging yet",
        request=None,
        responses={200: RevisionSerializer},
    )
    def post(self, request, pk: int):
        return _operate(request, pk, Action.CANCEL, services.revision_cancel, None)


class RejectView(ApiView):
    @extend_schema(
        summary="Reject: the pull goes back to ready for changes or cancel",
        request=CommentSerializer,
        responses={200: RevisionSerializer},
    )
    def post(self, request, pk: int):
        revision = _revision(request, pk, Action.APPROVE)
        data = validated(CommentSerializer, request.data)
        approvals.approval_reject(revision=revision, user=request.user, comment=data["comment"])
        return _answer(revision)


class RevertView(ApiView):
    @extend_schema(
        summary="Restore the state this revision left (after) or found (before); 202",
        description=(
            "409 when the integration is already in that state, another operation is open "
            "on it, or it changed since `version` (the revert is refused rather than "
            "discard changes its author has not seen)."
        ),
        request=RevertSerializer,
        responses={202: RevisionSerializer},
    )
    def post(self, request, pk: int):
        revision = _revision(request, pk, Action.REVERT)
        data = validated(RevertSerializer, request.data)
        new = services.revert_start(
            revision=revision,
            user=request.user,
            side=data["to"],
            description=data["description"],
            version=data["version"],
        )
        return Response(RevisionSerializer(new).data, status=status.HTTP_202_ACCEPTED)


class RevertPreviewView(ApiView):
    @extend_schema(
        summary="What a revert would change, in the /changes shape",
        parameters=[OpenApiParameter("to", str, enum=["after", "before"], required=False)],
        responses=RevertPreviewSerializer,
    )
    def get(self, request, pk: int):
        revision = _revision(request, pk)
        side = request.query_params.get("to") or "after"
        # Read before the preview: a change in between makes the revert refuse, not skip it.
        version = Integration.objects.values_list("version", flat=True).get(
            pk=revision.integration_id
        )
        preview = services.revert_preview(revision=revision, side=side)
        return Response({**changes_out(preview), "version": version})


# Engine endpoints on an integration (its document, clone, family, packages) ----------
# Under /integrations/{id}/ like the domain's endpoints, but they run the revision
# engine, so they live on its floor (docs/architecture.md).


class IntegrationDocumentView(ApiView):
    @extend_schema(
        summary="The canonical document (the same one revisions store)",
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description='{"integration": {...}, "resources": {lineage_id: {type, name, ...}}}',
            )
        },
    )
    def get(self, request, pk: int):
        integration = _integration(request, pk, Action.EXPORT)
        return Response(document_of(integration))


class CloneView(ApiView):
    @extend_schema(
        summary="Clone an integration",
        request=CloneSerializer,
        responses={201: IntegrationSerializer},
    )
    def post(self, request, pk: int):
        source = _integration(request, pk, Action.CLONE)
        data = validated(CloneSerializer, request.data)
        environment = data.get("environment") or Environment.SANDBOX
        if environment == Environment.PRODUCTION:
            require(request.user, Action.CLONE_TO_PRODUCTION, source)
        clone = services.integration_clone(
            source=source,
            user=request.user,
            name=data["name"],
            environment=environment,
            copy_cache_data=data["include_lookup_cache_data"],
        )
        clone.refresh_from_db()
        return Response(IntegrationSerializer(clone).data, status=status.HTTP_201_CREATED)


class FamilyView(ApiView):
    serializer_class = FamilyMemberSerializer
    pagination_class = None

    @extend_schema(
        summary="The integrations this one can pull from",
        responses={200: FamilyMemberSerializer(many=True)},
    )
    def get(self, request, pk: int):
        integration = _integration(request, pk)
        family = selectors.family_of(integration, request.user)
        return Response(FamilyMemberSerializer(family, many=True).data)


def _package(data: dict[str, Any]) -> dict[str, Any]:
    try:
        return packages.package_validate(data["package"])
    except DjangoValidationError as exc:
        raise serializers.ValidationError({"package": exc.messages[:1]}) from None


class PackageImportView(ApiView):
    @extend_schema(
        summary="Import a package as a new integration (lineage kept)",
        operation_id="package_import",
        request=PackageImportSerializer,
        responses={201: IntegrationSerializer},
    )
    def post(self, request):
        require(request.user, Action.IMPORT_PACKAGE)
        data = validated(PackageImportSerializer, request.data)
        require_environment(request.user, data["environment"])
        integration = packages.package_import(
            package=_package(data),
            user=request.user,
            name=data["name"],
            environment=data["environment"],
        )
        return Response(IntegrationSerializer(integration).data, status=status.HTTP_201_CREATED)


class PackagePullView(ApiView):
    @extend_schema(
        summary="Import a package as a pull into this integration (202, then ready)",
        operation_id="package_pull",
        request=PackagePullSerializer,
        responses={202: RevisionSerializer},
    )
    def post(self, request, pk: int):
        integration = _integration(request, pk, Action.PULL)
        require(request.user, Action.IMPORT_PACKAGE, integration)
        data = validated(PackagePullSerializer, request.data)
        revision = packages.package_pull(
            package=_package(data),
            target=integration,
            user=request.user,
            description=data["description"],
        )
        return Response(RevisionSerializer(revision).data, status=status.HTTP_202_ACCEPTED)


def _batch(request, pk: int) -> PullBatch:
    batch = PullBatch.objects.filter(pk=pk).select_related("source").first()
    if batch is None or batch.source is None or not can_see(request.user, batch.source):
        raise Http404("No such pull batch.")
    return batch


class PullIntoView(ApiView):
    """Open one pull from this integration into each chosen member of its family."""

    serializer_class = PullBatchSerializer

    @extend_schema(
        summary="Pull into many: one pull into each target (202); refusals are reported per "
        "target, not fatal",
        request=PullIntoSerializer,
        responses={202: PullBatchSerializer},
    )
    def post(self, request, pk: int):
        source = get_visible_integration(request.user, pk)
        require(request.user, Action.PULL)
        data = validated(PullIntoSerializer, request.data)
        batch = batches.pull_batch_create(
            source=source,
            targets=data["targets"],
            user=request.user,
            description=data.get("description", ""),
        )
        body = PullBatchSerializer(batches.pull_batch_data(batch, request.user)).data
        return Response(body, status=status.HTTP_202_ACCEPTED)


class PullBatchView(ApiView):
    serializer_class = PullBatchSerializer

    @extend_schema(summary="A pull batch with each pull's current status")
    def get(self, request, pk: int):
        return Response(
            PullBatchSerializer(batches.pull_batch_data(_batch(request, pk), request.user)).data
        )


class PullBatchMergeCleanView(ApiView):
    serializer_class = PullBatchSerializer

    @extend_schema(
        summary="Merge every pull of the batch with no conflicts left, each through its "
        "target's approval rule (production targets get an approval request)",
        request=None,
        responses={200: PullBatchSerializer},
    )
    def post(self, request, pk: int):
        batch = _batch(request, pk)
        require(request.user, Action.MERGE)  # the role; each target's own rule is per row
        batches.pull_batch_merge_clean(batch=batch, user=request.user)
        return Response(PullBatchSerializer(batches.pull_batch_data(batch, request.user)).data)
