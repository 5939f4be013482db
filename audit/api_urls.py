"""/api/v1/ routes of the audit log (docs/api.md, "Audit"). No trailing slashes."""

from django.urls import path

from . import api

urlpatterns = [
    path("audit", api.AuditListView.as_view(), name="api-audit"),
    path("audit.csv", api.AuditCsvView.as_view(), name="api-audit-csv"),
]
