"""Integrations, resources, grants and lookup-cache data over the API (docs/api.md)."""

import pytest

from integrations.models import AccessLevel, Environment, Integration, LookupCacheEntry
from tests.factories import (
    CacheEntryFactory,
    ConnectionFactory,
    FlowFactory,
    GrantFactory,
    IntegrationFactory,
    LookupCacheFactory,
    ScriptFactory,
    StepFactory,
)

pytestmark = pytest.mark.django_db


def test_list_shows_only_integrations_the_user_may_see(dev_api, integration):
    IntegrationFactory(name="Someone else's")
    response = dev_api.get("/api/v1/integrations")
    assert response.status_code == 200
    body = response.json()
    assert [i["name"] for i in body["results"]] == [integration.name]
    assert body["next"] is None
    row = body["results"][0]
    for key in ("id", "name", "description", "environment", "cloned_from", "version"):
        assert key in row
    assert row["environment"] == "production"
    assert row["created_at"].endswith("Z")


def test_list_pages_with_next_link(admin_api):
    for i in range(3):
        IntegrationFactory(name=f"I{i}")
    first = admin_api.get("/api/v1/integrations?page_size=2").json()
    assert len(first["results"]) == 2
    assert first["next"].startswith("http://testserver/api/v1/integrations?")
    second = admin_api.get(first["next"]).json()
    assert [i["name"] for i in second["results"]] == ["I2"]
    assert second["next"] is None


def test_list_filters_by_environment(admin_api):
    IntegrationFactory(name="Prod")
    IntegrationFactory(name="Box", environment=Environment.SANDBOX)
    body = admin_api.get("/api/v1/integrations?environment=sandbox").json()
    assert [i["name"] for i in body["results"]] == ["Box"]


def test_no_token_is_401_with_bearer_challenge(client, integration):
    response = client.get("/api/v1/integrations")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert set(response.json()) == {"detail"}


def test_revoked_token_is_401(dev_api, developer):
    from integrations.services import api_token_revoke

    for token in developer.api_tokens.all():
        api_token_revoke(token=token)
    response = dev_api.get("/api/v1/integrations")
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_unknown_token_is_401(client):
    response = client.get("/api/v1/integrations", HTTP_AUTHORIZATION="Bearer ilm_nope")
    assert response.status_code == 401


def test_token_use_is_recorded_as_last_used(dev_api, developer):
    dev_api.get("/api/v1/integrations")
    assert developer.api_tokens.get().last_used_at is not None


def test_session_cookie_also_works(dev_client, integration):
    response = dev_client.get("/api/v1/integrations")
    assert response.status_code == 200


def test_developer_creates_sandbox_and_holds_manage(dev_api, developer):
    response = dev_api.post(
        "/api/v1/integrations", {"name": " New one ", "description": "d"}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "New one"
    assert body["environment"] == "sandbox"
    assert body["version"] == 1
    created = Integration.objects.get(pk=body["id"])
    assert created.grants.get().user == developer
    assert created.grants.get().level == AccessLevel.MANAGE


def test_developer_may_not_create_a_production_integration(dev_api):
    response = dev_api.post(
        "/api/v1/integrations", {"name": "P", "environment": "production"}, format="json"
    )
    assert response.status_code == 403
    assert not Integration.objects.filter(name="P").exists()


def test_create_without_name_is_400_naming_the_field(dev_api):
    response = dev_api.post("/api/v1/integrations", {"description": "x"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert "name" in body["errors"]
    assert body["detail"]
    assert not Integration.objects.exists()


def test_monitor_may_not_create(monitor_api):
    response = monitor_api.post("/api/v1/integrations", {"name": "M"}, format="json")
    assert response.status_code == 403
    assert set(response.json()) == {"detail"}


def test_patch_changes_settings_and_bumps_version(dev_api, integration):
    response = dev_api.patch(
        f"/api/v1/integrations/{integration.pk}", {"description": "new"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["description"] == "new"
    assert response.json()["version"] == 2


def test_only_administrators_change_the_environment(dev_api, admin_api, integration):
    url = f"/api/v1/integrations/{integration.pk}"
    assert dev_api.patch(url, {"environment": "sandbox"}, format="json").status_code == 403
    integration.refresh_from_db()
    assert integration.environment == "production"
    response = admin_api.patch(url, {"environment": "sandbox"}, format="json")
    assert response.status_code == 200
    assert response.json()["environment"] == "sandbox"


def test_invisible_integration_is_404_and_monitor_write_is_403(
    outsider_api, monitor_api, integration
):
    url = f"/api/v1/integrations/{integration.pk}"
    assert outsider_api.get(url).status_code == 404
    assert outsider_api.patch(url, {"name": "x"}, format="json").status_code == 404
    assert monitor_api.get(url).status_code == 200
    assert monitor_api.patch(url, {"name": "x"}, format="json").status_code == 403
    assert monitor_api.delete(url).status_code == 403
    assert Integration.objects.filter(pk=integration.pk, name=integration.name).exists()


def test_delete_removes_integration_and_resources(dev_api, integration):
    # A sandbox: only administrators delete production integrations.
    integration.environment = Environment.SANDBOX
    integration.save()
    ConnectionFactory(integration=integration)
    StepFactory(flow=FlowFactory(integration=integration))
    response = dev_api.delete(f"/api/v1/integrations/{integration.pk}")
    assert response.status_code == 204
    assert not Integration.objects.filter(pk=integration.pk).exists()


def test_only_administrators_delete_a_production_integration(dev_api, admin_api, integration):
    response = dev_api.delete(f"/api/v1/integrations/{integration.pk}")
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Only an administrator may delete a production or protected integration."
    }
    assert Integration.objects.filter(pk=integration.pk).exists()
    assert admin_api.delete(f"/api/v1/integrations/{integration.pk}").status_code == 204
    assert not Integration.objects.filter(pk=integration.pk).exists()


# Resources -------------------------------------------------------------------------------


def test_connection_credentials_are_write_only(dev_api, integration):
    url = f"/api/v1/integrations/{integration.pk}/connections"
    response = dev_api.post(
        url,
        {
            "name": "ERP",
            "kind": "http",
            "config": {"base_url": "https://erp"},
            "credentials": {"token": "t0p"},
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert "credentials" not in body
    assert body["has_credentials"] is True
    assert body["lineage_id"]
    listed = dev_api.get(url).json()["results"]
    assert [c["name"] for c in listed] == ["ERP"]
    assert "t0p" not in str(listed)


def test_connection_kind_must_be_known(dev_api, integration):
    url = f"/api/v1/integrations/{integration.pk}/connections"
    response = dev_api.post(url, {"name": "X", "kind": "carrier-pigeon"}, format="json")
    assert response.status_code == 400
    assert "kind" in response.json()["errors"]


def test_step_crud_in_a_flow(dev_api, integration):
    flow = FlowFactory(integration=integration)
    connection = ConnectionFactory(integration=integration)
    url = f"/api/v1/flows/{flow.pk}/steps"
    response = dev_api.post(
        url,
        {
            "name": "Export orders",
            "position": 1,
            "kind": "export",
            "connection": connection.pk,
            "config": {"mappings": [{"source": "id", "target": "ext_id"}]},
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    step = response.json()
    assert step["connection"] == connection.pk
    assert step["flow"] == flow.pk
    detail = f"/api/v1/steps/{step['id']}"
    response = dev_api.patch(detail, {"connection": None, "kind": "import"}, format="json")
    assert response.status_code == 200
    assert response.json()["connection"] is None
    assert response.json()["kind"] == "import"
    assert dev_api.delete(detail).status_code == 204
    assert dev_api.get(detail).status_code == 404


def test_step_cannot_use_another_integrations_connection(dev_api, integration):
    flow = FlowFactory(integration=integration)
    foreign = ConnectionFactory()
    response = dev_api.post(
        f"/api/v1/flows/{flow.pk}/steps",
        {"name": "S", "kind": "export", "connection": foreign.pk},
        format="json",
    )
    assert response.status_code == 400
    assert "connection" in response.json()["errors"]
    assert not flow.steps.exists()


def test_step_mapping_needs_source_and_target(dev_api, integration):
    flow = FlowFactory(integration=integration)
    response = dev_api.post(
        f"/api/v1/flows/{flow.pk}/steps",
        {"name": "S", "kind": "export", "config": {"mappings": [{"source": "a"}]}},
        format="json",
    )
    assert response.status_code == 400
    assert "target" in response.json()["detail"]


def test_connection_used_by_steps_cannot_be_deleted(dev_api, integration):
    connection = ConnectionFactory(integration=integration)
    StepFactory(flow=FlowFactory(integration=integration), connection=connection)
    response = dev_api.delete(f"/api/v1/connections/{connection.pk}")
    assert response.status_code == 400
    assert "used by flow steps" in response.json()["detail"]


def test_resources_of_invisible_integrations_are_404(outsider_api, integration):
    script = f"/api/v1/scripts/{ScriptFactory(integration=integration).pk}"
    assert outsider_api.get(script).status_code == 404
    assert outsider_api.get(f"/api/v1/integrations/{integration.pk}/scripts").status_code == 404


def test_monitor_reads_resources_but_cannot_write(monitor_api, integration):
    flow = FlowFactory(integration=integration)
    assert monitor_api.get(f"/api/v1/flows/{flow.pk}").status_code == 200
    assert (
        monitor_api.patch(f"/api/v1/flows/{flow.pk}", {"enabled": False}, format="json").status_code
        == 403
    )
    flow.refresh_from_db()
    assert flow.enabled is True


def test_lookup_cache_reports_entry_count_and_bytes(dev_api, integration):
    cache = LookupCacheFactory(integration=integration)
    CacheEntryFactory(cache=cache, size=40)
    CacheEntryFactory(cache=cache, size=60)
    body = dev_api.get(f"/api/v1/lookup-caches/{cache.pk}").json()
    assert body["entry_count"] == 2
    assert body["data_bytes"] == 100


def test_cache_entries_add_one_or_many_list_and_clear(dev_api, integration):
    cache = LookupCacheFactory(integration=integration)
    url = f"/api/v1/lookup-caches/{cache.pk}/entries"
    one = dev_api.post(url, {"key": "A", "value": {"x": 1}}, format="json")
    assert one.status_code == 201
    assert one.json() == {"added": 1}
    many = dev_api.post(
        url, {"entries": [{"key": "B", "value": 2}, {"key": "A", "value": 3}]}, format="json"
    )
    assert many.json() == {"added": 2}
    listed = dev_api.get(url).json()["results"]
    assert listed == [{"key": "A", "value": 3}, {"key": "B", "value": 2}]
    assert dev_api.delete(url).json() == {"deleted": 2}
    assert not LookupCacheEntry.objects.filter(cache=cache).exists()


def test_cache_entries_bad_input_changes_nothing(dev_api, integration):
    cache = LookupCacheFactory(integration=integration)
    url = f"/api/v1/lookup-caches/{cache.pk}/entries"
    response = dev_api.post(url, {"entries": [{"key": "A"}, {"value": 1}]}, format="json")
    assert response.status_code == 400
    assert not cache.entries.exists()


# Access and ignore-fields ---------------------------------------------------------------


def test_access_grants_listed_and_replaced_by_administrators_only(
    admin_api, dev_api, integration, developer, monitor
):
    url = f"/api/v1/integrations/{integration.pk}/access"
    grants = dev_api.get(url).json()
    assert {"user": "dev", "level": "manage"} in grants
    body = [{"user": "mo", "level": "manage"}]
    assert dev_api.put(url, body, format="json").status_code == 403
    response = admin_api.put(url, body, format="json")
    assert response.status_code == 200
    assert response.json() == [{"user": "mo", "level": "manage"}]
    assert dev_api.get(url).status_code == 404  # the developer's grant is gone


def test_access_with_unknown_user_is_400_and_keeps_grants(admin_api, integration):
    url = f"/api/v1/integrations/{integration.pk}/access"
    response = admin_api.put(url, [{"user": "nobody", "level": "manage"}], format="json")
    assert response.status_code == 400
    assert "nobody" in response.json()["detail"]
    assert integration.grants.count() == 2


def test_ignore_fields_round_trip_and_validation(dev_api, integration):
    url = f"/api/v1/integrations/{integration.pk}/ignore-fields"
    assert dev_api.get(url).json() == {}
    response = dev_api.put(url, {"connection": ["config.base_url"]}, format="json")
    assert response.status_code == 200
    assert response.json() == {"connection": ["config.base_url"]}
    bad = dev_api.put(url, {"widget": ["x"]}, format="json")
    assert bad.status_code == 400
    assert "widget" in bad.json()["detail"]
    integration.refresh_from_db()
    assert integration.ignore_fields == {"connection": ["config.base_url"]}


def test_grant_level_monitor_sees_but_cannot_change_ignore_fields(api_for, integration):
    from tests.factories import UserFactory

    watcher = UserFactory(username="w")
    GrantFactory(integration=integration, user=watcher, level=AccessLevel.MONITOR)
    api = api_for(watcher)
    url = f"/api/v1/integrations/{integration.pk}/ignore-fields"
    assert api.get(url).status_code == 200
    assert api.put(url, {}, format="json").status_code == 403


def test_nul_characters_in_json_are_bad_input_not_a_crash(dev_api, integration):
    url = f"/api/v1/integrations/{integration.pk}/connections"
    for config in ({"a": "\u0000"}, {"a\u0000": 1}, {"list": ["ok", "\u0000"]}):
        response = dev_api.post(url, {"name": "x", "kind": "http", "config": config}, format="json")
        assert response.status_code == 400, config
        assert "config" in response.json()["errors"]
    assert not integration.connections.exists()


def test_numbers_beyond_64_bits_are_bad_input_not_a_crash(dev_api, integration):
    # The database returns 1e26 as an integer that canonical JSON cannot hold.
    url = f"/api/v1/integrations/{integration.pk}/connections"
    for config in ({"a": 1.0710901842551313e26}, {"a": [-(2**64)]}, {"a": {"b": 2**63}}):
        response = dev_api.post(url, {"name": "x", "kind": "http", "config": config}, format="json")
        assert response.status_code == 400, config
        assert "Numbers must lie between" in response.json()["detail"]
    ok = {"a": 2**63 - 1, "b": -1.5}
    response = dev_api.post(url, {"name": "x", "kind": "http", "config": ok}, format="json")
    assert response.status_code == 201
    assert response.json()["config"] == ok


def test_connection_config_must_be_an_object(dev_api, integration):
    url = f"/api/v1/integrations/{integration.pk}/connections"
    response = dev_api.post(url, {"name": "x", "kind": "http", "config": [1, 2]}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["config"] == ["Must be a JSON object."]


def test_nested_bad_input_names_the_path_in_the_flat_error_shape(dev_api, integration):
    from revisions.models import Revision

    revision = Revision.objects.create(integration=integration, number=1, type="snapshot")
    response = dev_api.post(
        f"/api/v1/revisions/{revision.pk}/resolutions",
        {"resolutions": [{"lineage_id": "nope", "choose": "mine"}]},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["errors"] == {
        "resolutions[0].lineage_id": ["Must be a valid UUID."],
        "resolutions[0].choose": ['"mine" is not a valid choice.'],
    }
    assert body["detail"] == "resolutions[0].lineage_id: Must be a valid UUID."
