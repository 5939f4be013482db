"""/api/v1/: each app's API routes (integrations, revisions, audit, runs), the schema and docs."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("schema", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("integrations.api_urls")),
    path("", include("revisions.api_urls")),
    path("", include("audit.api_urls")),
    path("", include("runs.api_urls")),
]
