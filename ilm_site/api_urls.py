"""/api/v1/: each app's API routes (integrations, revisions, audit, runs), the schema and docs."""

from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

urlpatterns = [
    path("schema", SpectacularAPIView.as_view(), name="api-schema"),
    # Split view: its script is a file of its own, so the page needs no inline script
    # (Content-Security-Policy). People reach the docs signed in; others go sign in.
    path(
        "docs",
        login_required(SpectacularSwaggerSplitView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
    path("", include("integrations.api_urls")),
    path("", include("revisions.api_urls")),
    path("", include("audit.api_urls")),
    path("", include("runs.api_urls")),
]
