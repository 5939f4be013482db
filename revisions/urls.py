from django.urls import path

from . import views

app_name = "revisions"
urlpatterns = [
    path("integrations/<int:pk>/revisions/", views.revisions_tab, name="tab"),
    path("integrations/<int:pk>/revisions/snapshot/", views.snapshot_create, name="snapshot"),
    path("integrations/<int:pk>/revisions/pull/", views.pull_create, name="pull"),
    path("integrations/<int:pk>/clone/", views.clone_create, name="clone"),
    path("revisions/<int:pk>/", views.revision_detail, name="detail"),
    path("revisions/<int:pk>/status/", views.revision_status, name="status"),
    path(
        "revisions/<int:pk>/changes/<uuid:lineage_id>/",
        views.resource_diff,
        name="resource",
    ),
    path("revisions/<int:pk>/changes/", views.resource_diffs, name="resources"),
    path("revisions/<int:pk>/resolve/", views.resolve, name="resolve"),
    path("revisions/<int:pk>/include/", views.include, name="include"),
    path("revisions/<int:pk>/refresh/", views.refresh, name="refresh"),
    path("revisions/<int:pk>/merge/", views.merge, name="merge"),
    path("revisions/<int:pk>/cancel/", views.cancel, name="cancel"),
    path("revisions/<int:pk>/request-approval/", views.request_approval, name="request_approval"),
    path("revisions/<int:pk>/approve/", views.approve, name="approve"),
    path("revisions/<int:pk>/reject/", views.reject, name="reject"),
    path("revisions/<int:pk>/revert/", views.revert, name="revert"),
    path(
        "revisions/<int:pk>/revert/changes/<uuid:lineage_id>/",
        views.revert_resource_diff,
        name="revert_resource",
    ),
    path("revisions/<int:pk>/compare/", views.compare, name="compare"),
    path(
        "revisions/<int:pk>/compare/changes/<uuid:lineage_id>/",
        views.compare_resource,
        name="compare_resource",
    ),
    path("integrations/<int:pk>/revisions/compare/", views.compare_pick, name="compare_pick"),
    path("approvals/", views.approval_queue, name="approvals"),
    path("integrations/<int:pk>/pull-into/", views.pull_into, name="pull_into"),
    path("pull-batches/<int:pk>/", views.pull_batch, name="batch"),
    path("pull-batches/<int:pk>/merge-clean/", views.pull_batch_merge_clean, name="batch_merge"),
]
