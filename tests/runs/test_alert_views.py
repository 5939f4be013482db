"""The Alerts tab and the Monitoring page's firing alerts: managers create, edit, mute and
delete rules (with and without htmx); monitors see them read-only; others get 404; a
refused or bad request changes nothing; an edit submitted unchanged writes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.forms.models import model_to_dict
from django.test import Client
from django.utils import timezone

from audit.models import Event
from integrations.models import AccessLevel, Role
from runs import alerts
from runs.models import AlertKind, AlertRule, AlertState
from tests.factories import FlowFactory, GrantFactory, IntegrationFactory, UserFactory
from tests.runs.monitoring_data import make_run


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def orders(sandbox):
    return FlowFactory(integration=sandbox, name="Orders")


@pytest.fixture
def rule(sandbox, orders, developer):
    return alerts.alert_rule_create(
        integration=sandbox,
        user=developer,
        data={
            "kind": AlertKind.SUCCESS_RATE,
            "threshold": 90.5,
            "runs": 10,
            "flow_lineage_id": str(orders.lineage_id),
        },
    )


def _tab(integration):
    return f"/integrations/{integration.pk}/alerts/"


def _row(rule):
    return model_to_dict(AlertRule.objects.get(pk=rule.pk))


def test_a_manager_adds_a_rule_from_the_tab(sandbox, orders, dev_client):
    response = dev_client.post(
        _tab(sandbox),
        {"kind": "failed_in_a_row", "flow_lineage_id": str(orders.lineage_id), "runs": "3"},
    )
    assert response.status_code == 302 and response["Location"] == _tab(sandbox)
    rule = AlertRule.objects.get()
    assert (rule.kind, rule.runs, rule.flow_name, rule.threshold) == (
        "failed_in_a_row",
        3,
        "Orders",
        None,
    )
    page = dev_client.get(_tab(sandbox)).content.decode()
    assert "Orders: 3 failed runs in a row" in page
    assert "Alert rule added" in page
    assert Event.objects.filter(resource_type="alert", action="created", username="dev").exists()


def test_htmx_adds_a_rule_and_swaps_the_region(sandbox, dev_client):
    response = dev_client.post(
        _tab(sandbox),
        {"kind": "no_success", "hours": "6"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="alerts-region",
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="alerts-region"')
    assert 'id="nav-bell"' in html and 'hx-swap-oob="true"' in html  # the bell follows
    assert "Any flow: no successful run for 6 hours" in html
    assert "New alert rule" in html  # a fresh form for the next one


def test_bad_input_shows_why_and_saves_nothing(sandbox, dev_client):
    response = dev_client.post(_tab(sandbox), {"kind": "success_rate", "threshold": "150"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "X: success rate below: from 1 to 100 %." in html
    assert "N: over the last runs: required for this kind." in html
    assert not AlertRule.objects.exists()
    htmx = dev_client.post(
        _tab(sandbox),
        {"kind": "no_success", "hours": "0"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="alerts-region",
    )
    assert htmx.status_code == 200 and "from 1 to 720 hours" in htmx.content.decode()
    assert not AlertRule.objects.exists()
    assert not Event.objects.filter(resource_type="alert").exists()


def test_a_monitor_sees_rules_read_only_and_is_refused_writes(sandbox, rule, monitor):
    client = _client(monitor)
    page = client.get(_tab(sandbox)).content.decode()
    assert "Orders: success rate below 90.5 % over the last 10 runs" in page
    assert "New alert rule" not in page and "Mute" not in page and "Edit" not in page
    before = _row(rule)
    for url, data in (
        (_tab(sandbox), {"kind": "no_success", "hours": "2"}),
        (f"/alerts/{rule.pk}/edit/", {"kind": "no_success", "hours": "2"}),
        (f"/alerts/{rule.pk}/mute/", {"unmute": "1"}),
        (f"/alerts/{rule.pk}/delete/", {}),
    ):
        assert client.post(url, data).status_code == 403, url
    assert AlertRule.objects.count() == 1 and _row(rule) == before


def test_a_developer_with_a_monitor_grant_may_not_manage_alerts(sandbox, rule):
    viewer = UserFactory(username="vic", role=Role.DEVELOPER)
    GrantFactory(integration=sandbox, user=viewer, level=AccessLevel.MONITOR)
    client = _client(viewer)
    assert client.get(_tab(sandbox)).status_code == 200
    assert client.post(f"/alerts/{rule.pk}/delete/").status_code == 403
    assert AlertRule.objects.filter(pk=rule.pk).exists()


def test_someone_who_cannot_see_the_integration_gets_404_everywhere(sandbox, rule):
    stranger = UserFactory(username="stranger", role=Role.DEVELOPER)
    GrantFactory(
        integration=IntegrationFactory(name="Theirs"), user=stranger, level=AccessLevel.MANAGE
    )
    client = _client(stranger)
    assert client.get(_tab(sandbox)).status_code == 404
    assert client.get(f"/alerts/{rule.pk}/edit/").status_code == 404
    assert client.post(f"/alerts/{rule.pk}/mute/", {"unmute": "1"}).status_code == 404
    assert client.post(f"/alerts/{rule.pk}/delete/").status_code == 404
    assert AlertRule.objects.filter(pk=rule.pk).exists()


def test_the_editor_submitted_unchanged_leaves_the_rule_byte_identical(rule, dev_client):
    url = f"/alerts/{rule.pk}/edit/"
    form = dev_client.get(url).context["form"]
    data = {
        name: form[name].value() if form[name].value() is not None else "" for name in form.fields
    }
    before = _row(rule)
    events = Event.objects.count()
    response = dev_client.post(url, {k: str(v) for k, v in data.items()})
    assert response.status_code == 302
    assert _row(rule) == before
    assert Event.objects.count() == events
    assert "Nothing changed." in dev_client.get(response["Location"]).content.decode()


def test_an_edit_changes_the_rule_and_a_bad_edit_changes_nothing(rule, orders, dev_client):
    url = f"/alerts/{rule.pk}/edit/"
    bad = dev_client.post(url, {"kind": "success_rate", "threshold": "90", "runs": "5000"})
    assert bad.status_code == 400 and "from 1 to 1000 runs" in bad.content.decode()
    assert AlertRule.objects.get(pk=rule.pk).runs == 10
    ok = dev_client.post(
        url, {"kind": "slow_p95", "threshold": "750", "flow_lineage_id": str(orders.lineage_id)}
    )
    assert ok.status_code == 302
    changed = AlertRule.objects.get(pk=rule.pk)
    assert (changed.kind, changed.threshold, changed.runs) == ("slow_p95", 750.0, None)


def test_mute_and_unmute_from_the_tab(rule, dev_client):
    until = (timezone.now() + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")
    response = dev_client.post(
        f"/alerts/{rule.pk}/mute/",
        {"muted_until": until},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="alerts-region",
    )
    assert response.status_code == 200 and "Muted until" in response.content.decode()
    assert AlertRule.objects.get(pk=rule.pk).muted_until is not None
    past = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    refused = dev_client.post(f"/alerts/{rule.pk}/mute/", {"muted_until": past})
    assert (
        refused.status_code == 400
        and "Mute until a moment in the future." in refused.content.decode()
    )
    assert dev_client.post(f"/alerts/{rule.pk}/mute/", {"unmute": "1"}).status_code == 302
    assert AlertRule.objects.get(pk=rule.pk).muted_until is None


def test_delete_removes_the_rule(rule, dev_client, sandbox):
    response = dev_client.post(
        f"/alerts/{rule.pk}/delete/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="alerts-region"
    )
    assert response.status_code == 200 and "No alert rules yet" in response.content.decode()
    assert not AlertRule.objects.exists()


def test_the_tab_shows_the_state_last_fired_and_history(sandbox, orders, rule, dev_client):
    now = timezone.now()
    for i in range(10):
        make_run(
            sandbox, orders.lineage_id, created_at=now - timedelta(minutes=20 - i), status="failed"
        )
    alerts.alerts_evaluate(integration_id=sandbox.pk)
    html = dev_client.get(_tab(sandbox)).content.decode()
    assert 'data-testid="alert-state">Firing<' in html
    assert "0.0 % of the last 10 runs succeeded" in html
    assert "History" in html
    tabs = dev_client.get(f"/integrations/{sandbox.pk}/flows/").content.decode()
    assert f'href="/integrations/{sandbox.pk}/alerts/"' in tabs
    assert "1 alert firing" in tabs  # the Health panel says so


def test_the_monitoring_page_lists_firing_alerts_the_user_may_see(sandbox, orders, rule, developer):
    other = IntegrationFactory(name="Payroll")
    theirs = alerts.alert_rule_create(
        integration=other, user=None, data={"kind": "no_success", "hours": 1}
    )
    AlertRule.objects.filter(pk__in=[rule.pk, theirs.pk]).update(
        state=AlertState.FIRING,
        fired_at=timezone.now(),
        reason="0.0 % of the last 10 runs succeeded",
    )
    html = _client(developer).get("/monitoring/").content.decode()
    assert "Orders: success rate below 90.5 % over the last 10 runs" in html
    assert "Payroll" not in html
    admin = UserFactory(username="root", role=Role.ADMINISTRATOR)
    assert (
        "Any flow: no successful run for 1 hours"
        in _client(admin).get("/monitoring/").content.decode()
    )
