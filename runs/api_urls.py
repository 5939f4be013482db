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
]
