"""/api/v1/ routes of integrations and their resources (docs/api.md). No trailing slashes."""

from django.urls import path

from . import api

urlpatterns = [
    path("integrations", api.IntegrationListView.as_view(), name="api-integrations"),
    path("package-schema", api.PackageSchemaView.as_view(), name="api-package-schema"),
    path("integrations/<int:pk>", api.IntegrationDetailView.as_view(), name="api-integration"),
    path("integrations/<int:pk>/access", api.AccessView.as_view(), name="api-integration-access"),
    path(
        "integrations/<int:pk>/ignore-fields",
        api.IgnoreFieldsView.as_view(),
        name="api-integration-ignore-fields",
    ),
    # Resources: a list in their integration (steps: in their flow) and one by id.
    path(
        "integrations/<int:pk>/connections",
        api.ConnectionListView.as_view(),
        name="api-connections",
    ),
    path("connections/<int:pk>", api.ConnectionDetailView.as_view(), name="api-connection"),
    path(
        "integrations/<int:pk>/lookup-caches",
        api.LookupCacheListView.as_view(),
        name="api-lookup-caches",
    ),
    path("lookup-caches/<int:pk>", api.LookupCacheDetailView.as_view(), name="api-lookup-cache"),
    path("integrations/<int:pk>/scripts", api.ScriptListView.as_view(), name="api-scripts"),
    path("scripts/<int:pk>", api.ScriptDetailView.as_view(), name="api-script"),
    path("integrations/<int:pk>/flows", api.FlowListView.as_view(), name="api-flows"),
    path("flows/<int:pk>", api.FlowDetailView.as_view(), name="api-flow"),
    path("flows/<int:pk>/steps", api.StepListView.as_view(), name="api-steps"),
    path("steps/<int:pk>", api.StepDetailView.as_view(), name="api-step"),
    path(
        "lookup-caches/<int:pk>/entries",
        api.CacheEntriesView.as_view(),
        name="api-lookup-cache-entries",
    ),
]
