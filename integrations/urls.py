from django.urls import path

from . import views

app_name = "integrations"

_I = "integrations/<int:pk>/"

urlpatterns = [
    path("", views.home, name="home"),
    path("integrations/new/", views.integration_create, name="create"),
    path(_I, views.flows_tab, name="detail"),
    path(_I + "flows/", views.flows_tab, name="flows"),
    path(_I + "connections/", views.connections_tab, name="connections"),
    path(_I + "caches/", views.caches_tab, name="caches"),
    path(_I + "scripts/", views.scripts_tab, name="scripts"),
    path(_I + "settings/", views.settings_tab, name="settings"),
    path(_I + "settings/access/", views.access_update, name="access"),
    path(_I + "settings/protection/", views.protection_update, name="protection"),
    path(_I + "settings/preview/", views.docs_preview, name="docs_preview"),
    path(_I + "delete/", views.integration_delete, name="delete"),
    path(_I + "sync-badge/", views.sync_badge, name="sync_badge"),
    # Connections, flows, scripts and lookup caches share their editors.
    path(_I + "<slug:kind>/new/", views.resource_create, name="resource_new"),
    path(_I + "<slug:kind>/<int:rid>/edit/", views.resource_edit, name="resource_edit"),
    path(_I + "<slug:kind>/<int:rid>/delete/", views.resource_delete, name="resource_delete"),
    path(_I + "flows/<int:rid>/", views.flow_detail, name="flow"),
    path(_I + "flows/<int:rid>/steps/new/", views.step_create, name="step_new"),
    path(_I + "flows/<int:rid>/steps/<int:sid>/edit/", views.step_edit, name="step_edit"),
    path(_I + "flows/<int:rid>/steps/<int:sid>/delete/", views.step_delete, name="step_delete"),
    path(_I + "flows/<int:rid>/steps/<int:sid>/move/", views.step_move, name="step_move"),
    path(_I + "caches/<int:rid>/", views.cache_detail, name="cache"),
    path(_I + "caches/<int:rid>/entries/add/", views.cache_entry_add, name="cache_entry_add"),
    path(_I + "caches/<int:rid>/entries/upload/", views.cache_entries_upload, name="cache_upload"),
    path(_I + "caches/<int:rid>/entries/clear/", views.cache_entries_clear, name="cache_clear"),
]
