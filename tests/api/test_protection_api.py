"""Production is protected, over the API (docs/api.md, "Protection of production").

A protected integration and its resources refuse direct writes with 403 and a detail that
says to change a sandbox clone and pull; lookup-cache entries are data and stay editable;
only administrators turn protection off (with a reason, kept in the history) or delete a
production integration. New production integrations start protected.
"""

import pytest

from integrations.models import (
    Connection,
    Environment,
    Flow,
    FlowStep,
    Integration,
    LookupCache,
    LookupCacheEntry,
    Script,
)
from integrations.permissions import PROTECTED_DETAIL
from tests.factories import (
    ConnectionFactory,
    FlowFactory,
    LookupCacheFactory,
    ScriptFactory,
    StepFactory,
)

pytestmark = pytest.mark.django_db

REFUSED = {"detail": PROTECTED_DETAIL}


@pytest.fixture
def protected(integration):
    integration.protected = True
    integration.save()
    return integration


@pytest.fixture
def parts(protected):
    flow = FlowFactory(integration=protected, name="Orders")
    conn = ConnectionFactory(integration=protected, name="ERP")
    return {
        "flow": flow,
        "connection": conn,
        "step": StepFactory(flow=flow, integration=protected, connection=conn),
        "script": ScriptFactory(integration=protected),
        "cache": LookupCacheFactory(integration=protected, key_path="sku"),
    }


def _version(integration):
    return Integration.objects.get(pk=integration.pk).version


def test_get_shows_protected(dev_api, protected):
    body = dev_api.get(f"/api/v1/integrations/{protected.pk}").json()
    assert body["protected"] is True


@pytest.mark.parametrize("client", ["dev_api", "approver_api", "admin_api"])
def test_every_direct_configuration_write_is_refused_for_every_role(
    client, request, protected, parts
):
    api = request.getfixturevalue(client)
    version = _version(protected)
    i = protected.pk
    writes = [
        ("patch", f"/api/v1/integrations/{i}", {"description": "changed"}),
        ("patch", f"/api/v1/integrations/{i}", {"environment": "sandbox"}),
        ("put", f"/api/v1/integrations/{i}/ignore-fields", {"connection": ["config.base_url"]}),
        ("post", f"/api/v1/integrations/{i}/flows", {"name": "New"}),
        ("patch", f"/api/v1/flows/{parts['flow'].pk}", {"schedule": "0 * * * *"}),
        ("delete", f"/api/v1/flows/{parts['flow'].pk}", None),
        ("post", f"/api/v1/integrations/{i}/connections", {"name": "C", "kind": "http"}),
        ("patch", f"/api/v1/connections/{parts['connection'].pk}", {"config": {}}),
        ("delete", f"/api/v1/connections/{parts['connection'].pk}", None),
        ("post", f"/api/v1/flows/{parts['flow'].pk}/steps", {"name": "S", "kind": "export"}),
        ("patch", f"/api/v1/steps/{parts['step'].pk}", {"name": "Renamed"}),
        ("delete", f"/api/v1/steps/{parts['step'].pk}", None),
        ("post", f"/api/v1/integrations/{i}/scripts", {"name": "S", "function": "f"}),
        ("patch", f"/api/v1/scripts/{parts['script'].pk}", {"code": "x"}),
        ("delete", f"/api/v1/scripts/{parts['script'].pk}", None),
        ("post", f"/api/v1/integrations/{i}/lookup-caches", {"name": "L", "key_path": "k"}),
        ("patch", f"/api/v1/lookup-caches/{parts['cache'].pk}", {"settings": {"ttl": 5}}),
        ("delete", f"/api/v1/lookup-caches/{parts['cache'].pk}", None),
    ]
    for method, path, body in writes:
        response = getattr(api, method)(path, body, format="json")
        assert response.status_code == 403, (method, path, response.content)
        assert response.json() == REFUSED, (method, path)
    assert _version(protected) == version
    assert Flow.objects.filter(integration=protected).count() == 1
    assert Connection.objects.filter(integration=protected).count() == 1
    assert FlowStep.objects.filter(integration=protected).count() == 1
    assert Script.objects.filter(integration=protected).count() == 1
    assert LookupCache.objects.get(pk=parts["cache"].pk).settings == parts["cache"].settings
    assert Integration.objects.get(pk=protected.pk).description == protected.description


def test_a_package_cannot_be_imported_onto_a_protected_integration(dev_api, protected):
    from revisions.packages import package_of

    package = package_of(protected, user=None)
    response = dev_api.post(
        f"/api/v1/integrations/{protected.pk}/import", {"package": package}, format="json"
    )
    assert response.status_code == 403
    assert response.json() == REFUSED


@pytest.mark.parametrize("client", ["dev_api", "approver_api", "admin_api"])
def test_lookup_cache_entries_stay_editable(client, request, protected, parts):
    api = request.getfixturevalue(client)
    cache = parts["cache"]
    url = f"/api/v1/lookup-caches/{cache.pk}/entries"
    response = api.post(url, {"entries": [{"key": "A-1", "value": {"item": 7}}]}, format="json")
    assert response.status_code == 201, response.content
    assert LookupCacheEntry.objects.filter(cache=cache, key="A-1").exists()
    response = api.delete(url)
    assert response.status_code == 200
    assert response.json() == {"deleted": 1}


def test_monitors_still_may_not_edit_lookup_cache_entries(monitor_api, protected, parts):
    url = f"/api/v1/lookup-caches/{parts['cache'].pk}/entries"
    response = monitor_api.post(url, {"key": "A-1", "value": {}}, format="json")
    assert response.status_code == 403
    assert not LookupCacheEntry.objects.exists()


@pytest.mark.parametrize("client", ["dev_api", "approver_api"])
def test_only_administrators_turn_protection_off(client, request, protected):
    api = request.getfixturevalue(client)
    response = api.patch(
        f"/api/v1/integrations/{protected.pk}",
        {"protected": False, "reason": "I want to"},
        format="json",
    )
    assert response.status_code == 403
    assert set(response.json()) == {"detail"}
    assert Integration.objects.get(pk=protected.pk).protected


def test_turning_protection_off_needs_a_reason(admin_api, protected):
    response = admin_api.patch(
        f"/api/v1/integrations/{protected.pk}", {"protected": False}, format="json"
    )
    assert response.status_code == 400
    assert "reason" in response.json()["errors"]
    assert Integration.objects.get(pk=protected.pk).protected


def test_administrator_turns_protection_off_with_a_reason_kept_in_the_history(admin_api, protected):
    response = admin_api.patch(
        f"/api/v1/integrations/{protected.pk}",
        {"protected": False, "reason": "Incident 4711: ERP endpoint moved"},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["protected"] is False
    last = protected.history.order_by("-history_id").first()
    assert last.protected is False
    assert "Incident 4711: ERP endpoint moved" in last.history_change_reason
    assert last.history_user.username == "ada"
    from audit.models import Event

    event = (
        Event.objects.filter(integration_id=protected.pk, resource_type="integration")
        .order_by("-id")
        .first()
    )
    assert event.username == "ada"
    assert {"field": "protected", "old": True, "new": False} in event.changes
    # Now direct edits go through, until it is protected again.
    response = admin_api.patch(
        f"/api/v1/integrations/{protected.pk}", {"description": "hotfix"}, format="json"
    )
    assert response.status_code == 200
    response = admin_api.patch(
        f"/api/v1/integrations/{protected.pk}", {"protected": True}, format="json"
    )
    assert response.status_code == 200 and response.json()["protected"] is True


def test_turning_off_and_editing_in_one_request_is_all_or_nothing(admin_api, protected):
    response = admin_api.patch(
        f"/api/v1/integrations/{protected.pk}",
        {"protected": False, "reason": "fix", "name": ""},
        format="json",
    )
    assert response.status_code == 400
    fresh = Integration.objects.get(pk=protected.pk)
    assert fresh.protected and fresh.name == protected.name


def test_a_developer_may_protect_a_sandbox_they_manage(dev_api, integration):
    integration.environment = Environment.SANDBOX
    integration.save()
    response = dev_api.patch(
        f"/api/v1/integrations/{integration.pk}", {"protected": True}, format="json"
    )
    assert response.status_code == 200 and response.json()["protected"] is True
    response = dev_api.patch(
        f"/api/v1/integrations/{integration.pk}", {"description": "x"}, format="json"
    )
    assert response.status_code == 403 and response.json() == REFUSED


# New production integrations start protected ------------------------------------------


def test_created_in_production_starts_protected(approver_api):
    response = approver_api.post(
        "/api/v1/integrations", {"name": "P", "environment": "production"}, format="json"
    )
    assert response.status_code == 201 and response.json()["protected"] is True
    response = approver_api.post("/api/v1/integrations", {"name": "S"}, format="json")
    assert response.json()["protected"] is False


def test_cloned_into_production_starts_protected(
    approver_api, integration, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = approver_api.post(
            f"/api/v1/integrations/{integration.pk}/clone",
            {"name": "Prod copy", "environment": "production"},
            format="json",
        )
    assert response.status_code == 201 and response.json()["protected"] is True
    with django_capture_on_commit_callbacks(execute=True):
        response = approver_api.post(
            f"/api/v1/integrations/{integration.pk}/clone", {"name": "Sandbox"}, format="json"
        )
    assert response.json()["protected"] is False


def test_package_imported_as_new_production_integration_starts_protected(approver_api, integration):
    from revisions.packages import package_of

    package = package_of(integration, user=None)
    response = approver_api.post(
        "/api/v1/integrations/import",
        {"package": package, "name": "Imported", "environment": "production"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["protected"] is True


def test_moving_a_sandbox_into_production_protects_it(admin_api, integration):
    integration.environment = Environment.SANDBOX
    integration.save()
    response = admin_api.patch(
        f"/api/v1/integrations/{integration.pk}", {"environment": "production"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["protected"] is True
