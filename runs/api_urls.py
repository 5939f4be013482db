"""/api/v1/ routes of flow runs (docs/api.md, "Flow runs (the runtime)"). No trailing slashes."""

from django.urls import path

from . import api

urlpatterns = [
    path("flows/<int:pk>/runs", api.FlowRunsView.as_view(), name="api-flow-runs"),
    path(
        "integrations/<int:pk>/runs",
        api.IntegrationRunsView.as_view(),
        name="api-integration-runs",
    ),
    path("runs/<int:pk>", api.RunDetailView.as_view(), name="api-run"),
    path("runs/<int:pk>/errors", api.RunErrorsView.as_view(), name="api-run-errors"),
    path("runs/<int:pk>/cancel", api.RunCancelView.as_view(), name="api-run-cancel"),
    path(
        "revisions/<int:pk>/behaviour",
        api.RevisionBehaviourView.as_view(),
        name="api-revision-behaviour",
    ),
    path("monitoring/flows", api.MonitoringFlowsView.as_view(), name="api-monitoring-flows"),
    path("metrics", api.MetricsView.as_view(), name="api-metrics"),
    path(
        "integrations/<int:pk>/errors",
        api.IntegrationErrorsView.as_view(),
        name="api-integration-errors",
    ),
    path(
        "integrations/<int:pk>/errors.csv",
        api.IntegrationErrorsCsvView.as_view(),
        name="api-integration-errors-csv",
    ),
    path(
        "integrations/<int:pk>/errors/retry",
        api.ErrorRetryStartView.as_view(),
        name="api-errors-retry",
    ),
    path(
        "integrations/<int:pk>/errors/resolve",
        api.ErrorResolveView.as_view(),
        name="api-errors-resolve",
    ),
    path("errors/<int:pk>", api.ErrorDetailView.as_view(), name="api-error"),
    path("error-retries/<int:pk>", api.ErrorRetryDetailView.as_view(), name="api-error-retry"),
]
