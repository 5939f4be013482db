"""/api/v1/ routes of revisions (docs/api.md, "Revisions"). No trailing slashes."""

from django.urls import path

from . import api

urlpatterns = [
    path("integrations/import", api.PackageImportView.as_view(), name="api-package-import"),
    path(
        "integrations/<int:pk>/document",
        api.IntegrationDocumentView.as_view(),
        name="api-integration-document",
    ),
    path("integrations/<int:pk>/clone", api.CloneView.as_view(), name="api-integration-clone"),
    path("integrations/<int:pk>/family", api.FamilyView.as_view(), name="api-integration-family"),
    path("integrations/<int:pk>/import", api.PackagePullView.as_view(), name="api-package-pull"),
    path(
        "integrations/<int:pk>/revisions",
        api.IntegrationRevisionsView.as_view(),
        name="api-integration-revisions",
    ),
    path("revisions/<int:pk>", api.RevisionDetailView.as_view(), name="api-revision"),
    path("revisions/<int:pk>/changes", api.ChangesView.as_view(), name="api-revision-changes"),
    path(
        "revisions/<int:pk>/resolutions",
        api.ResolutionsView.as_view(),
        name="api-revision-resolutions",
    ),
    path("revisions/<int:pk>/merge", api.MergeView.as_view(), name="api-revision-merge"),
    path(
        "revisions/<int:pk>/request-approval",
        api.RequestApprovalView.as_view(),
        name="api-revision-request-approval",
    ),
    path("revisions/<int:pk>/approve", api.ApproveView.as_view(), name="api-revision-approve"),
    path("revisions/<int:pk>/reject", api.RejectView.as_view(), name="api-revision-reject"),
    path("revisions/<int:pk>/cancel", api.CancelView.as_view(), name="api-revision-cancel"),
    path("revisions/<int:pk>/revert", api.RevertView.as_view(), name="api-revision-revert"),
    path(
        "revisions/<int:pk>/revert-preview",
        api.RevertPreviewView.as_view(),
        name="api-revision-revert-preview",
    ),
    path("integrations/<int:pk>/pull-into", api.PullIntoView.as_view(), name="api-pull-into"),
    path("pull-batches/<int:pk>", api.PullBatchView.as_view(), name="api-pull-batch"),
    path(
        "pull-batches/<int:pk>/merge-clean",
        api.PullBatchMergeCleanView.as_view(),
        name="api-pull-batch-merge-clean",
    ),
]
