from django.urls import path

from . import views

app_name = "audit"
urlpatterns = [
    path("audit/", views.log, name="log"),
    path("audit/log.csv", views.log_csv, name="csv"),
    path("audit/events/<int:pk>/", views.event_detail, name="event"),
    path("integrations/<int:pk>/audit/", views.integration_log, name="integration"),
    path("integrations/<int:pk>/audit.csv", views.integration_log_csv, name="integration_csv"),
]
