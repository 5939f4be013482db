"""Every role × action over the API: refused exactly where the one role table refuses.

Who: administrator, approver, a developer with `manage`, a developer with `monitor`, a
developer without any grant, a monitor with a grant. What: every action the API exposes
on one integration, which is open or protected (change control). Expected answers come
from `integrations.permissions` (the table the UI uses too): not visible → 404, visible
but not allowed → 403, else success; a write that only protection refuses says so
(`PROTECTED_DETAIL`). The count of refused combinations is printed for the closing note
(`-s` shows it).
"""

import pytest
from django.test import Client
from django.urls import reverse

from integrations.models import AccessLevel, Environment, Integration, Role
from integrations.permissions import (
    CONFIGURATION_WRITES,
    PROTECTED_DETAIL,
    Action,
    can,
    can_see,
)
from revisions.services import integration_clone
from tests.api.conftest import token_client
from tests.factories import (
    FlowFactory,
    GrantFactory,
    IntegrationFactory,
    LookupCacheFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


WHO = {
    "administrator": (Role.ADMINISTRATOR, None),
    "approver": (Role.APPROVER, None),
    "developer_manage": (Role.DEVELOPER, AccessLevel.MANAGE),
    "developer_monitor": (Role.DEVELOPER, AccessLevel.MONITOR),
    "developer_no_grant": (Role.DEVELOPER, None),
    "monitor": (Role.MONITOR, AccessLevel.MONITOR),
}


def _pull(ctx):
    from revisions.services import pull_create

    return pull_create(target=ctx["integration"], source=ctx["clone"], user=ctx["owner"])


def _snapshot(ctx):
    from revisions.services import snapshot_create

    return snapshot_create(integration=ctx["integration"], user=ctx["owner"])


def _package(ctx):
    from revisions.packages import package_of

    return package_of(ctx["integration"], user=ctx["owner"])


# action → (needs engine, request maker(ctx) -> (method, path, body), success codes)
CASES = {
    Action.VIEW: (False, lambda c: ("get", f"/api/v1/integrations/{c['id']}", None)),
    Action.EDIT: (
        False,
        lambda c: ("patch", f"/api/v1/integrations/{c['id']}", {"description": "changed"}),
    ),
    Action.DELETE_INTEGRATION: (
        False,
        lambda c: ("delete", f"/api/v1/integrations/{c['id']}", None),
    ),
    Action.CHANGE_ENVIRONMENT: (
        False,
        lambda c: ("patch", f"/api/v1/integrations/{c['id']}", {"environment": "production"}),
    ),
    Action.MANAGE_ACCESS: (
        False,
        lambda c: (
            "put",
            f"/api/v1/integrations/{c['id']}/access",
            [{"user": "owner", "level": "manage"}],
        ),
    ),
    Action.CREATE_INTEGRATION: (False, lambda c: ("post", "/api/v1/integrations", {"name": "New"})),
    Action.CLONE_TO_PRODUCTION: (
        False,
        lambda c: ("post", "/api/v1/integrations", {"name": "P", "environment": "production"}),
    ),
    Action.EXPORT: (True, lambda c: ("get", f"/api/v1/integrations/{c['id']}/document", None)),
    Action.CLONE: (
        True,
        lambda c: ("post", f"/api/v1/integrations/{c['id']}/clone", {"name": "Copy"}),
    ),
    Action.SNAPSHOT: (
        True,
        lambda c: ("post", f"/api/v1/integrations/{c['id']}/revisions", {"type": "snapshot"}),
    ),
    Action.PULL: (
        True,
        lambda c: (
            "post",
            f"/api/v1/integrations/{c['id']}/revisions",
            {"type": "pull", "source_integration": c["clone"].pk},
        ),
    ),
    Action.CANCEL: (True, lambda c: ("post", f"/api/v1/revisions/{_pull(c).pk}/cancel", {})),
    Action.REQUEST_APPROVAL: (
        True,
        lambda c: ("post", f"/api/v1/revisions/{_pull(c).pk}/request-approval", {}),
    ),
    Action.RESOLVE: (
        True,
        lambda c: (
            "post",
            f"/api/v1/revisions/{_pull(c).pk}/resolutions",
            {"resolutions": [{"lineage_id": str(c["integration"].lineage_id), "choose": "ours"}]},
        ),
    ),
    Action.MERGE: (True, lambda c: ("post", f"/api/v1/revisions/{_pull(c).pk}/merge", {})),
    Action.APPROVE: (True, lambda c: ("post", f"/api/v1/revisions/{_pull(c).pk}/approve", {})),
    Action.REVERT: (True, lambda c: ("post", f"/api/v1/revisions/{_snapshot(c).pk}/revert", {})),
    Action.IMPORT_PACKAGE: (
        True,
        lambda c: ("post", "/api/v1/integrations/import", {"package": _package(c)}),
    ),
    Action.EDIT_CACHE_ENTRIES: (
        False,
        lambda c: (
            "post",
            f"/api/v1/lookup-caches/{c['cache'].pk}/entries",
            {"key": "A-1", "value": {"item": 7}},
        ),
    ),
    Action.UNPROTECT: (
        False,
        lambda c: (
            "patch",
            f"/api/v1/integrations/{c['id']}",
            {"protected": False, "reason": "Incident 1234"},
        ),
    ),
    Action.RUN: (
        True,
        lambda c: (
            "post",
            f"/api/v1/flows/{FlowFactory(integration=c['integration']).pk}/runs",
            {"mode": "live"},
        ),
    ),
    Action.TEST_RUN: (
        True,
        lambda c: (
            "post",
            f"/api/v1/flows/{FlowFactory(integration=c['integration']).pk}/runs",
            {"mode": "test", "records": [{"id": 1}]},
        ),
    ),
}
# Turning protection off is only a question on a protected integration.
ONLY_PROTECTED = {Action.UNPROTECT}
UI_ONLY_PROTECTED = ONLY_PROTECTED


def _matrix(cases, only_protected):
    return [
        pytest.param(action, protected, id=f"{action.value}-{'protected' if protected else 'open'}")
        for action in cases
        for protected in (False, True)
        if protected or action not in only_protected
    ]


def _unprotected_twin(integration):
    twin = Integration.objects.get(pk=integration.pk)
    twin.protected = False
    return twin


# Global actions: not about one integration, so visibility does not apply.
GLOBAL = {Action.CREATE_INTEGRATION, Action.CLONE_TO_PRODUCTION, Action.IMPORT_PACKAGE}

refused: list[str] = []


@pytest.fixture
def ctx(db, django_capture_on_commit_callbacks):
    owner = UserFactory(username="owner", role=Role.DEVELOPER)
    integration = IntegrationFactory(name="Target", environment=Environment.SANDBOX)
    GrantFactory(integration=integration, user=owner, level=AccessLevel.MANAGE)
    cache = LookupCacheFactory(integration=integration, key_path="sku")
    context = {"integration": integration, "id": integration.pk, "owner": owner, "cache": cache}
    with django_capture_on_commit_callbacks(execute=True):
        context["clone"] = integration_clone(source=integration, user=owner, name="Clone")
    return context


def _protect(ctx, protected):
    if protected:
        ctx["integration"].protected = True
        ctx["integration"].save()


@pytest.mark.parametrize("who", list(WHO))
@pytest.mark.parametrize(("action", "protected"), _matrix(CASES, ONLY_PROTECTED))
def test_api_refuses_exactly_what_the_role_table_refuses(who, action, protected, ctx):
    _, make = CASES[action]
    role, level = WHO[who]
    user = UserFactory(username=f"u_{who}", role=role)
    if level:
        GrantFactory(integration=ctx["integration"], user=user, level=level)
    _protect(ctx, protected)
    integration = ctx["integration"]
    # A configuration write the role allows but change control refuses says why.
    says_protected = (
        protected
        and action in CONFIGURATION_WRITES
        and action not in GLOBAL
        and can(user, action, _unprotected_twin(integration))
    )
    # Expected from the table before the request (a delete takes the grants with it).
    if action in GLOBAL:
        allowed, expected_refusal = can(user, action), 403
    else:
        allowed = can(user, action, integration)
        expected_refusal = 403 if can_see(user, integration) else 404
    method, path, body = make(ctx)
    response = getattr(token_client(user), method)(path, body, format="json")
    if allowed:
        # Let through: the engine may still refuse on state (409, 400), never on rights.
        assert response.status_code not in (401, 403, 404), (who, action, response.content)
        assert response.status_code < 500
    else:
        assert response.status_code == expected_refusal, (who, action, response.content)
        assert set(response.json()) == {"detail"}
        if says_protected:
            assert response.json()["detail"] == PROTECTED_DETAIL, (who, action)
        refused.append(f"{who}:{action.value}:{'protected' if protected else 'open'}")


# The same table walked through the pages. Most refusals answer 403/404; rights that
# only narrow a form's choices (environment of a clone or of the integration) are checked
# by their effect: refused → nothing changed.
def _ui_url(name, *args):
    return reverse(name, args=args)


def _moved_to_production(c):
    c["integration"].refresh_from_db()
    return c["integration"].environment == Environment.PRODUCTION


def _production_clone_made(c):
    return Integration.objects.filter(name="P", environment=Environment.PRODUCTION).exists()


UI_CASES = {
    Action.VIEW: lambda c: ("get", _ui_url("integrations:detail", c["id"]), None),
    Action.VIEW_AUDIT: lambda c: ("get", _ui_url("audit:integration", c["id"]), None),
    Action.EXPORT: lambda c: ("get", _ui_url("packages:export", c["id"]), None),
    Action.EDIT: lambda c: (
        "post",
        _ui_url("integrations:resource_new", c["id"], "flows"),
        {"name": "New flow"},
    ),
    Action.DELETE_INTEGRATION: lambda c: (
        "post",
        _ui_url("integrations:delete", c["id"]),
        {"confirm_name": c["integration"].name},
    ),
    Action.MANAGE_ACCESS: lambda c: (
        "post",
        _ui_url("integrations:access", c["id"]),
        {
            "grants-TOTAL_FORMS": "1",
            "grants-INITIAL_FORMS": "0",
            "grants-0-user": "owner",
            "grants-0-level": "manage",
        },
    ),
    Action.CHANGE_ENVIRONMENT: lambda c: (
        "post",
        _ui_url("integrations:settings", c["id"]),
        {
            "name": c["integration"].name,
            "description": "",
            "documentation": "",
            "environment": "production",
            "snapshot_schedule": "none",
        },
    ),
    Action.CREATE_INTEGRATION: lambda c: (
        "post",
        _ui_url("integrations:create"),
        {"name": "New", "environment": "sandbox"},
    ),
    Action.CLONE_TO_PRODUCTION: lambda c: (
        "post",
        _ui_url("revisions:clone", c["id"]),
        {"name": "P", "environment": "production"},
    ),
    Action.CLONE: lambda c: (
        "post",
        _ui_url("revisions:clone", c["id"]),
        {"name": "Copy", "environment": "sandbox"},
    ),
    Action.SNAPSHOT: lambda c: ("post", _ui_url("revisions:snapshot", c["id"]), {}),
    Action.PULL: lambda c: (
        "post",
        _ui_url("revisions:pull", c["id"]),
        {"source": c["clone"].pk, "description": ""},
    ),
    Action.CANCEL: lambda c: ("post", _ui_url("revisions:cancel", _pull(c).pk), {}),
    Action.REQUEST_APPROVAL: lambda c: (
        "post",
        _ui_url("revisions:request_approval", _pull(c).pk),
        {"comment": ""},
    ),
    Action.RESOLVE: lambda c: (
        "post",
        _ui_url("revisions:resolve", _pull(c).pk),
        {"lineage_id": str(c["integration"].lineage_id), "choose": "ours"},
    ),
    Action.MERGE: lambda c: ("post", _ui_url("revisions:merge", _pull(c).pk), {}),
    Action.APPROVE: lambda c: ("post", _ui_url("revisions:approve", _pull(c).pk), {}),
    Action.REVERT: lambda c: (
        "post",
        _ui_url("revisions:revert", _snapshot(c).pk),
        {"to": "after", "description": ""},
    ),
    Action.IMPORT_PACKAGE: lambda c: ("get", _ui_url("packages:import"), None),
    Action.VIEW_GLOBAL_AUDIT: lambda c: ("get", _ui_url("audit:log"), None),
    Action.EDIT_CACHE_ENTRIES: lambda c: (
        "post",
        _ui_url("integrations:cache_entry_add", c["id"], c["cache"].pk),
        {"key": "A-1", "value": '{"item": 7}'},
    ),
    Action.UNPROTECT: lambda c: (
        "post",
        _ui_url("integrations:protection", c["id"]),
        {"protected": "False", "reason": "Incident 1234"},
    ),
}
# Checked by effect: (did the refused change happen?)
UI_EFFECT = {
    Action.CHANGE_ENVIRONMENT: _moved_to_production,
    Action.CLONE_TO_PRODUCTION: _production_clone_made,
}
UI_GLOBAL = {Action.CREATE_INTEGRATION, Action.IMPORT_PACKAGE, Action.VIEW_GLOBAL_AUDIT}

ui_refused: list[str] = []


@pytest.mark.parametrize("who", list(WHO))
@pytest.mark.parametrize(("action", "protected"), _matrix(UI_CASES, UI_ONLY_PROTECTED))
def test_ui_refuses_exactly_what_the_role_table_refuses(who, action, protected, ctx):
    role, level = WHO[who]
    user = UserFactory(username=f"u_{who}", role=role)
    if level:
        GrantFactory(integration=ctx["integration"], user=user, level=level)
    _protect(ctx, protected)
    integration = ctx["integration"]
    if action in UI_GLOBAL:
        allowed, expected_refusal = can(user, action), 403
    else:
        allowed = can(user, action, integration)
        if action == Action.CLONE_TO_PRODUCTION:
            allowed = allowed and can(user, Action.CLONE, integration)
        expected_refusal = 403 if can_see(user, integration) else 404
    method, url, data = UI_CASES[action](ctx)
    client = Client()
    client.force_login(user)
    response = getattr(client, method)(url, data or {})
    if allowed:
        assert response.status_code not in (401, 403, 404), (who, action, response.status_code)
        assert response.status_code < 500
        if action in UI_EFFECT:
            assert UI_EFFECT[action](ctx), (who, action)
    else:
        if action in UI_EFFECT and response.status_code not in (403, 404):
            assert not UI_EFFECT[action](ctx), (who, action)
        else:
            assert response.status_code == expected_refusal, (who, action, response.status_code)
        ui_refused.append(f"{who}:{action.value}:{'protected' if protected else 'open'}")


def test_zz_report_refused_count(capsys):
    # Runs after the matrices in file order; the counts go into the closing note.
    with capsys.disabled():
        print(f"\nAPI role matrix: {len(refused)} refused combinations checked")
        print(f"UI role matrix: {len(ui_refused)} refused combinations checked")
