"""Alerts in Chromium: a manager adds a rule on the Alerts tab (the form shows only the
parameters of the chosen kind), the rule fires at once on the flow's failed runs, the
bell counts it, and its notification leads back to the rule; it is muted in place."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from integrations.models import AccessLevel, Role
from runs.models import AlertRule, AlertState
from tests.factories import FlowFactory, GrantFactory, IntegrationFactory, UserFactory
from tests.runs.monitoring_data import make_run

pytestmark = pytest.mark.django_db(transaction=True)


def test_create_a_rule_see_it_fire_in_the_bell_and_mute_it(page, login, screenshot):
    user = UserFactory(username="dana", role=Role.DEVELOPER)
    integration = IntegrationFactory(name="Shop → ERP")
    GrantFactory(integration=integration, user=user, level=AccessLevel.MANAGE)
    flow = FlowFactory(integration=integration, name="Orders to ERP")
    now = timezone.now()
    for minutes in (3, 2):
        make_run(
            integration,
            flow.lineage_id,
            created_at=now - timedelta(minutes=minutes),
            status="failed",
            flow_name=flow.name,
        )

    login("dana")
    expect(page.locator("#nav-bell")).to_have_attribute("aria-label", "Notifications, none unread")
    page.goto(f"/integrations/{integration.pk}/alerts/")
    expect(page.get_by_text("No alert rules yet")).to_be_visible()
    form = page.locator("[data-alert-form]")
    form.get_by_label("When").select_option("failed_in_a_row")
    expect(form.get_by_label("Threshold")).to_be_hidden()
    expect(form.get_by_label("Hours (H)")).to_be_hidden()
    form.get_by_label("Flow").select_option(label="Orders to ERP")
    form.get_by_label("N: failed runs in a row").fill("2")
    form.get_by_role("button", name="Add rule").click()

    rule = page.locator('[data-testid="alert-rule"]')
    expect(rule).to_have_count(1)
    expect(rule).to_contain_text("Orders to ERP: 2 failed runs in a row")
    expect(page.locator("#alerts-region .message-success")).to_contain_text("Alert rule added")
    # The rule was evaluated once created: it fired, and the bell says so in place.
    expect(rule.get_by_test_id("alert-state")).to_have_text("Firing")
    expect(rule).to_contain_text("The last 2 run(s) failed")

    bell = page.locator("#nav-bell")
    expect(bell).to_have_attribute("aria-label", "Notifications, 1 unread")
    page.reload()
    expect(rule.get_by_test_id("alert-state")).to_have_text("Firing")
    screenshot("alerts-tab")
    screenshot("alerts-tab-narrow", width=390)
    bell.click()
    page.wait_for_url("**/notifications/")
    note = page.get_by_role(
        "link", name="Alert on Shop → ERP: Orders to ERP: 2 failed runs in a row"
    )
    expect(note).to_be_visible()
    note.click()
    page.wait_for_url(f"**/integrations/{integration.pk}/alerts/#alert-*")

    until = (timezone.now() + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    page.get_by_label("Mute until (UTC)").fill(until)
    page.get_by_role("button", name="Mute", exact=True).click()
    expect(rule.get_by_test_id("alert-muted")).to_be_visible()
    saved = AlertRule.objects.get()
    assert saved.state == AlertState.FIRING and saved.muted_until is not None

    page.goto("/monitoring/")
    expect(page.get_by_test_id("firing-alerts")).to_contain_text("2 failed runs in a row")
    screenshot("alerts-monitoring", full_page=False)

    # Edit: the form comes back as saved, with the kind's own parameter only.
    page.goto(f"/integrations/{integration.pk}/alerts/")
    rule.get_by_role("link", name="Edit").click()
    page.wait_for_url("**/alerts/*/edit/")
    edit = page.locator("[data-alert-form]")
    expect(edit.get_by_label("N: failed runs in a row")).to_have_value("2")
    expect(edit.get_by_label("Hours (H)")).to_be_hidden()
    screenshot("alerts-edit-narrow", width=390)
    edit.get_by_label("N: failed runs in a row").fill("3")
    edit.get_by_role("button", name="Save").click()
    page.wait_for_url(f"**/integrations/{integration.pk}/alerts/")
    expect(rule).to_contain_text("Orders to ERP: 3 failed runs in a row")
    # Two failures are no longer enough: it resolved by itself (muted: nobody told).
    expect(rule.get_by_test_id("alert-state")).to_have_text("OK")
    saved = AlertRule.objects.get()
    assert (saved.runs, saved.state) == (3, AlertState.OK)
    expect(page.locator("#nav-bell")).to_have_attribute("aria-label", "Notifications, none unread")
    page.goto("/monitoring/")
    expect(page.get_by_test_id("firing-alerts")).to_contain_text("No alert rule is firing")
