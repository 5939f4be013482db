"""Package export and import pages (included from ilm_site/urls.py)."""

from django.urls import path

from . import package_views

app_name = "packages"

urlpatterns = [
    path("integrations/import/", package_views.package_import, name="import"),
    path("integrations/<int:pk>/package/", package_views.package_export, name="export"),
]
