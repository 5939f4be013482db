"""/api/v1/ routes of integrations and their resources (API.md). No trailing slashes."""

from django.urls import path

from . import api
from .resources import RESOURCE_TYPES

_PATHS = {
    "connection": "connections",
    "flow": "flows",
    "step": "steps",
    "script": "scripts",
    "lookup_cache": "lookup-caches",
}

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
    path(
        "lookup-caches/<int:pk>/entries",
        api.CacheEntriesView.as_view(),
        name="api-lookup-cache-entries",
    ),
]

for _key in RESOURCE_TYPES:
    _list, _detail = api.resource_views(_key)
    _plural = _PATHS[_key]
    # Steps live in flows; every other resource type directly in an integration.
    _parent = "flows" if _key == "step" else "integrations"
    urlpatterns += [
        path(f"{_parent}/<int:pk>/{_plural}", _list.as_view(), name=f"api-{_plural}"),
        path(f"{_plural}/<int:pk>", _detail.as_view(), name=f"api-{_key.replace('_', '-')}"),
    ]
