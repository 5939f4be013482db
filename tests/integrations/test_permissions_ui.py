"""The permission table as the UI applies it: each role × each action on the pages.

Not visible → 404 (its existence is not told); visible but not allowed → 403; and a
refused request changes nothing.
"""

import pytest
from django.test import Client
from django.urls import reverse

from integrations.models import AccessLevel, Environment, Flow, Integration, Role
from tests.factories import (
    ConnectionFactory,
    FlowFactory,
    GrantFactory,
    IntegrationFactory,
    LookupCacheFactory,
    ScriptFactory,
    StepFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

# who: (role, grant level on the integration or None)
WHO = {
    "administrator": (Role.ADMINISTRATOR, None),
    "approver": (Role.APPROVER, None),
    "developer_manage": (Role.DEVELOPER, AccessLevel.MANAGE),
    "developer_monitor": (Role.DEVELOPER, AccessLevel.MONITOR),
    "developer_no_grant": (Role.DEVELOPER, None),
    "monitor": (Role.MONITOR, AccessLevel.MONITOR),
    "monitor_no_grant": (Role.MONITOR, None),
}

# Expected answer per action on an unprotected production integration: 200/302 allowed,
# 403 refused, 404 unseen. Deleting production is for administrators only.
EXPECTED = {
    #                      view  edit  delete  access  create
    "administrator": (200, 302, 302, 302, 302),
    "approver": (200, 302, 403, 403, 302),
    "developer_manage": (200, 302, 403, 403, 302),
    "developer_monitor": (200, 403, 403, 403, 302),
    "developer_no_grant": (404, 404, 404, 404, 302),
    "monitor": (200, 403, 403, 403, 403),
    "monitor_no_grant": (404, 404, 404, 404, 403),
}


@pytest.fixture
def target():
    integration = IntegrationFactory(name="Orders → ERP", environment=Environment.PRODUCTION)
    FlowFactory(integration=integration, name="Existing flow")
    return integration


def client_for(who, integration):
    role, level = WHO[who]
    user = UserFactory(username=who, role=role)
    if level:
        GrantFactory(integration=integration, user=user, level=level)
    client = Client()
    client.force_login(user)
    return client


def u(name, *args):
    return reverse(f"integrations:{name}", args=args)


@pytest.mark.parametrize("who", list(WHO))
def test_view_tab(who, target):
    client = client_for(who, target)
    assert client.get(u("flows", target.pk)).status_code == EXPECTED[who][0]


@pytest.mark.parametrize("who", list(WHO))
def test_edit_a_resource(who, target):
    client = client_for(who, target)
    response = client.post(u("resource_new", target.pk, "flows"), {"name": "New flow"})
    assert response.status_code == EXPECTED[who][1]
    assert Flow.objects.filter(name="New flow").exists() is (EXPECTED[who][1] == 302)


@pytest.mark.parametrize("who", list(WHO))
def test_delete_the_integration(who, target):
    client = client_for(who, target)
    response = client.post(u("delete", target.pk), {"confirm_name": target.name})
    assert response.status_code == EXPECTED[who][2]
    assert Integration.objects.filter(pk=target.pk).exists() is (EXPECTED[who][2] != 302)


@pytest.mark.parametrize("who", list(WHO))
def test_manage_access(who, target):
    client = client_for(who, target)
    before = list(target.grants.values_list("user_id", "level"))
    response = client.post(
        u("access", target.pk), {"grants-TOTAL_FORMS": "0", "grants-INITIAL_FORMS": "0"}
    )
    assert response.status_code == EXPECTED[who][3]
    after = list(target.grants.values_list("user_id", "level"))
    assert (after == []) if EXPECTED[who][3] == 302 else (after == before)


@pytest.mark.parametrize("who", list(WHO))
def test_create_an_integration(who, target):
    client = client_for(who, target)
    response = client.post(u("create"), {"name": "Brand new"})
    assert response.status_code == EXPECTED[who][4]
    assert Integration.objects.filter(name="Brand new").exists() is (EXPECTED[who][4] == 302)


@pytest.mark.parametrize(
    ("who", "changes"),
    [("administrator", True), ("approver", False), ("developer_manage", False)],
)
def test_only_administrators_change_the_environment(who, changes, target):
    client = client_for(who, target)
    response = client.post(
        u("settings", target.pk),
        {
            "name": target.name,
            "description": target.description,
            "environment": "sandbox",
            "snapshot_schedule": "none",
        },
    )
    assert response.status_code == 302
    target.refresh_from_db()
    assert (target.environment == Environment.SANDBOX) is changes


@pytest.mark.parametrize("who", ["developer_monitor", "monitor"])
def test_read_only_users_get_403_on_every_write(who, target):
    client = client_for(who, target)
    flow = target.flows.get()
    step = StepFactory(flow=flow)
    cache = LookupCacheFactory(integration=target)
    conn = ConnectionFactory(integration=target)
    version = Integration.objects.get(pk=target.pk).version
    writes = [
        u("resource_edit", target.pk, "connections", conn.pk),
        u("resource_delete", target.pk, "flows", flow.pk),
        u("step_new", target.pk, flow.pk),
        u("step_edit", target.pk, flow.pk, step.pk),
        u("step_delete", target.pk, flow.pk, step.pk),
        u("step_move", target.pk, flow.pk, step.pk),
        u("cache_entry_add", target.pk, cache.pk),
        u("cache_upload", target.pk, cache.pk),
        u("cache_clear", target.pk, cache.pk),
        u("settings", target.pk),
    ]
    for url in writes:
        assert client.post(url, {"name": "x", "key": "k"}).status_code == 403, url
    for url in writes[:5] + [u("cache_clear", target.pk, cache.pk), u("delete", target.pk)]:
        assert client.get(url).status_code == 403, url
    assert Integration.objects.get(pk=target.pk).version == version


EDIT_MARKERS = (
    ">Edit<",
    ">Delete<",
    "New flow",
    "New connection",
    "New lookup cache",
    "New script",
    "Add step",
    "Save settings",
    "Save access",
    "Clear all entries",
    "Add or replace an entry",
    "Upload entries",
    "Delete integration",
)


@pytest.mark.parametrize("who", ["developer_monitor", "monitor"])
def test_read_only_users_see_no_edit_controls(who, target):
    client = client_for(who, target)
    flow = target.flows.get()
    StepFactory(flow=flow)
    cache = LookupCacheFactory(integration=target)
    ConnectionFactory(integration=target)
    ScriptFactory(integration=target)
    pages = [
        u(name, target.pk) for name in ("flows", "connections", "caches", "scripts", "settings")
    ] + [u("flow", target.pk, flow.pk), u("cache", target.pk, cache.pk)]
    for page in pages:
        html = client.get(page).content.decode()
        for marker in EDIT_MARKERS:
            assert marker not in html, (page, marker)
        assert html.count('method="post"') == 1, page  # only "Sign out"


def test_managers_see_the_edit_controls(target):
    client = client_for("developer_manage", target)
    html = client.get(u("flows", target.pk)).content.decode()
    assert "New flow" in html and ">Edit<" in html and ">Delete<" in html


# The protected dimension: on a protected integration no role writes configuration
# directly (administrators turn protection off first); lookup-cache entries are data and
# stay editable by those who manage the integration; only administrators delete it or
# turn protection off.
PROTECTED_EXPECTED = {
    #                     edit  settings  entry  delete  unprotect
    "administrator": (403, 403, 302, 302, 302),
    "approver": (403, 403, 302, 403, 403),
    "developer_manage": (403, 403, 302, 403, 403),
    "developer_monitor": (403, 403, 403, 403, 403),
    "developer_no_grant": (404, 404, 404, 404, 404),
    "monitor": (403, 403, 403, 403, 403),
    "monitor_no_grant": (404, 404, 404, 404, 404),
}


@pytest.fixture
def protected_target(target):
    target.protected = True
    target.save()
    return target


@pytest.mark.parametrize("who", list(WHO))
def test_protected_integration_matrix(who, protected_target):
    from integrations.models import LookupCacheEntry

    target = protected_target
    cache = LookupCacheFactory(integration=target, key_path="sku")
    client = client_for(who, target)
    expected = PROTECTED_EXPECTED[who]
    version = Integration.objects.get(pk=target.pk).version

    response = client.post(u("resource_new", target.pk, "flows"), {"name": "New flow"})
    assert response.status_code == expected[0]
    assert not Flow.objects.filter(name="New flow").exists()
    if who in ("administrator", "approver", "developer_manage"):
        # Their role would allow the edit: change control is what refuses, and says so.
        assert "Production is protected" in response.content.decode()

    response = client.post(
        u("settings", target.pk),
        {"name": "Renamed", "description": "", "environment": "production"},
    )
    assert response.status_code == expected[1]
    assert Integration.objects.get(pk=target.pk).name == target.name
    assert Integration.objects.get(pk=target.pk).version == version

    response = client.post(
        u("cache_entry_add", target.pk, cache.pk), {"key": "A-1", "value": '{"item": 7}'}
    )
    assert response.status_code == expected[2]
    added = LookupCacheEntry.objects.filter(cache=cache, key="A-1").exists()
    assert added is (expected[2] == 302)

    response = client.post(
        u("protection", target.pk), {"protected": "False", "reason": "Incident 1234"}
    )
    assert response.status_code == expected[4]
    assert Integration.objects.get(pk=target.pk).protected is (expected[4] != 302)
    if expected[4] == 302:
        target.protected = True
        target.save()

    response = client.post(u("delete", target.pk), {"confirm_name": target.name})
    assert response.status_code == expected[3]
    assert Integration.objects.filter(pk=target.pk).exists() is (expected[3] != 302)


def test_protected_refusal_says_to_change_a_sandbox_clone_and_pull(protected_target):
    client = client_for("administrator", protected_target)
    flow = protected_target.flows.get()
    for url in (
        u("resource_edit", protected_target.pk, "flows", flow.pk),
        u("resource_delete", protected_target.pk, "flows", flow.pk),
        u("step_new", protected_target.pk, flow.pk),
        u("settings", protected_target.pk),
    ):
        response = client.post(url, {"name": "x"})
        assert response.status_code == 403, url
        assert "Production is protected: change a sandbox clone and pull." in (
            response.content.decode()
        )
    assert protected_target.flows.get().name == flow.name


@pytest.mark.parametrize("who", ["administrator", "approver", "developer_manage"])
def test_protected_pages_hide_configuration_controls_and_show_the_banner(who, protected_target):
    target = protected_target
    client = client_for(who, target)
    flow = target.flows.get()
    StepFactory(flow=flow)
    cache = LookupCacheFactory(integration=target)
    from integrations.models import LookupCacheEntry

    LookupCacheEntry.objects.create(cache=cache, key="k", value={}, size=3)
    ConnectionFactory(integration=target)
    ScriptFactory(integration=target)
    pages = [
        u(name, target.pk) for name in ("flows", "connections", "caches", "scripts", "settings")
    ] + [u("flow", target.pk, flow.pk), u("cache", target.pk, cache.pk)]
    configuration = (
        ">Edit<",
        "New flow",
        "New connection",
        "New lookup cache",
        "New script",
        "Add step",
        "Save settings",
        "Edit cache",
    )
    for page in pages:
        html = client.get(page).content.decode()
        assert "Production is protected: change a sandbox clone and pull." in html, page
        for marker in configuration:
            assert marker not in html, (page, marker)
    # Entries are data: their controls stay.
    html = client.get(u("cache", target.pk, cache.pk)).content.decode()
    for marker in ("Add or replace an entry", "Upload entries", "Clear all entries"):
        assert marker in html
    settings_html = client.get(u("settings", target.pk)).content.decode()
    assert ("Turn protection off" in settings_html) is (who == "administrator")
    assert ("Delete integration" in settings_html) is (who == "administrator")


def test_unprotected_integrations_show_no_banner(target):
    client = client_for("developer_manage", target)
    html = client.get(u("flows", target.pk)).content.decode()
    assert "Production is protected" not in html
    assert "New flow" in html
