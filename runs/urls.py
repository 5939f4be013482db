from django.urls import path

from . import alert_views, error_views, monitoring_views, views

app_name = "runs"

urlpatterns = [
    path("monitoring/", monitoring_views.monitoring_page, name="monitoring"),
    path("monitoring/flows.csv", monitoring_views.flows_csv, name="monitoring_flows_csv"),
    path("monitoring/errors.csv", monitoring_views.errors_csv, name="monitoring_errors_csv"),
    path("integrations/<int:pk>/runs/", views.runs_tab, name="tab"),
    path("runs/<int:pk>/", views.run_detail, name="detail"),
    path("runs/<int:pk>/progress/", views.run_progress, name="progress"),
    path("runs/<int:pk>/cancel/", views.run_cancel, name="cancel"),
    path("integrations/<int:pk>/flows/<int:rid>/run/", views.run_now, name="run_now"),
    path("integrations/<int:pk>/flows/<int:rid>/test-run/", views.test_run, name="test_run"),
    path("revisions/<int:pk>/behaviour/", views.behaviour_panel, name="behaviour"),
    path("integrations/<int:pk>/errors/", error_views.errors_tab, name="errors"),
    path("integrations/<int:pk>/errors.csv", error_views.errors_csv, name="errors_csv"),
    path("integrations/<int:pk>/errors/bulk/", error_views.errors_bulk, name="errors_bulk"),
    path("errors/<int:pk>/", error_views.error_detail, name="error"),
    path("integrations/<int:pk>/alerts/", alert_views.alerts_tab, name="alerts"),
    path("alerts/<int:pk>/edit/", alert_views.alert_edit, name="alert_edit"),
    path("alerts/<int:pk>/mute/", alert_views.alert_mute, name="alert_mute"),
    path("alerts/<int:pk>/delete/", alert_views.alert_delete, name="alert_delete"),
    path("error-retries/<int:pk>/", error_views.error_retry, name="error_retry"),
    path(
        "revisions/<int:pk>/retry-errors/",
        error_views.revision_retry_offer,
        name="revision_retry_offer",
    ),
]
