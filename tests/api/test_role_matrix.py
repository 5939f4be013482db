"""Every role × action over the API: refused exactly where the one role table refuses.

Who: administrator, approver, a developer with `manage`, a developer with `monitor`, a
developer without any grant, a monitor with a grant. What: every action the API exposes
on one integration. Expected answers come from `integrations.permissions` (the table the
UI uses too): not visible → 404, visible but not allowed → 403, else success. The count
of refused combinations is printed for the closing note (`-s` shows it).
"""

import importlib.util

import pytest

from integrations.models import AccessLevel, Environment, Role
from integrations.permissions import Action, can, can_see
from tests.api.conftest import token_client
from tests.factories import GrantFactory, IntegrationFactory, UserFactory

pytestmark = pytest.mark.django_db

ENGINE = importlib.util.find_spec("revisions.services") is not None

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
    from integrations.packages import package_of

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
}
# Global actions: not about one integration, so visibility does not apply.
GLOBAL = {Action.CREATE_INTEGRATION, Action.CLONE_TO_PRODUCTION, Action.IMPORT_PACKAGE}

refused: list[str] = []


@pytest.fixture
def ctx(db, django_capture_on_commit_callbacks):
    owner = UserFactory(username="owner", role=Role.DEVELOPER)
    integration = IntegrationFactory(name="Target", environment=Environment.SANDBOX)
    GrantFactory(integration=integration, user=owner, level=AccessLevel.MANAGE)
    context = {"integration": integration, "id": integration.pk, "owner": owner}
    if ENGINE:
        from revisions.services import integration_clone

        with django_capture_on_commit_callbacks(execute=True):
            context["clone"] = integration_clone(source=integration, user=owner, name="Clone")
    return context


@pytest.mark.parametrize("who", list(WHO))
@pytest.mark.parametrize("action", list(CASES), ids=lambda a: a.value)
def test_api_refuses_exactly_what_the_role_table_refuses(who, action, ctx):
    needs_engine, make = CASES[action]
    if needs_engine and not ENGINE:
        pytest.skip("the revision engine is not installed in this tree")
    role, level = WHO[who]
    user = UserFactory(username=f"u_{who}", role=role)
    if level:
        GrantFactory(integration=ctx["integration"], user=user, level=level)
    integration = ctx["integration"]
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
        refused.append(f"{who}:{action.value}")


def test_zz_report_refused_count(capsys):
    # Runs after the matrix in file order; the count goes into the closing note.
    with capsys.disabled():
        print(f"\nAPI role matrix: {len(refused)} refused combinations checked")
