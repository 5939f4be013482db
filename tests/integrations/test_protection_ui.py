"""The Settings tab's change-control card: turning protection off (administrators, with a
reason) and on (whoever may edit)."""

import pytest
from django.urls import reverse

from integrations.models import Environment, Integration

pytestmark = pytest.mark.django_db


def url(name, *args):
    return reverse(f"integrations:{name}", args=args)


@pytest.fixture
def protected(integration):
    integration.protected = True
    integration.save()
    return integration


def test_turning_protection_off_without_a_reason_is_refused_and_says_why(admin_client_, protected):
    response = admin_client_.post(
        url("protection", protected.pk), {"protected": "False", "reason": "  "}
    )
    assert response.status_code == 400
    assert "Say why protection is turned off" in response.content.decode()
    assert Integration.objects.get(pk=protected.pk).protected


def test_administrator_turns_protection_off_then_edits_directly(admin_client_, protected):
    response = admin_client_.post(
        url("protection", protected.pk), {"protected": "False", "reason": "Incident 1234"}
    )
    assert response.status_code == 302
    page = admin_client_.get(url("settings", protected.pk)).content.decode()
    assert "Protection of" in page and "is off" in page
    assert "Production is protected" not in page
    assert "Save settings" in page
    last = protected.history.order_by("-history_id").first()
    assert "Incident 1234" in last.history_change_reason
    response = admin_client_.post(
        url("resource_new", protected.pk, "flows"), {"name": "Hotfix flow"}
    )
    assert response.status_code == 302
    # And back on: editors may protect.
    response = admin_client_.post(url("protection", protected.pk), {"protected": "True"})
    assert response.status_code == 302
    assert Integration.objects.get(pk=protected.pk).protected


def test_approvers_are_told_only_an_administrator_turns_it_off(approver_client, protected):
    page = approver_client.get(url("settings", protected.pk)).content.decode()
    assert "Only an administrator can turn protection off." in page
    assert "Turn protection off" not in page


def test_a_developer_protects_a_sandbox_they_manage(dev_client, integration):
    integration.environment = Environment.SANDBOX
    integration.save()
    page = dev_client.get(url("settings", integration.pk)).content.decode()
    assert "Protect: changes only through pulls" in page
    response = dev_client.post(url("protection", integration.pk), {"protected": "True"})
    assert response.status_code == 302
    assert Integration.objects.get(pk=integration.pk).protected
    # Now the developer is refused a direct edit, and may not turn it off again.
    response = dev_client.post(url("resource_new", integration.pk, "flows"), {"name": "X"})
    assert response.status_code == 403
    response = dev_client.post(
        url("protection", integration.pk), {"protected": "False", "reason": "please"}
    )
    assert response.status_code == 403
    assert Integration.objects.get(pk=integration.pk).protected


def test_creating_a_production_integration_in_the_ui_makes_it_protected(approver_client):
    response = approver_client.post(
        url("create"), {"name": "New production", "environment": "production"}
    )
    assert response.status_code == 302
    assert Integration.objects.get(name="New production").protected


def test_home_tiles_and_the_header_mark_protected_integrations(dev_client, developer, protected):
    from tests.factories import GrantFactory, IntegrationFactory

    sandbox = IntegrationFactory(name="Orders sandbox", environment=Environment.SANDBOX)
    GrantFactory(integration=sandbox, user=developer)
    home = dev_client.get(reverse("integrations:home")).content.decode()
    assert home.count('class="badge badge-protected"') == 1
    header = dev_client.get(url("flows", protected.pk)).content.decode()
    assert 'class="badge badge-protected"' in header
