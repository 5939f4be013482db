"""Issue 14 journey in Chromium: open Monitoring from the nav, see the health grid and
the charts drawn (uPlot, no CSP violation), switch the range, drill into an error group's
example run."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from integrations.models import AccessLevel, Role
from tests.factories import (
    ConnectionFactory,
    FlowFactory,
    GrantFactory,
    IntegrationFactory,
    UserFactory,
)
from tests.runs.monitoring_data import make_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def watched():
    dev = UserFactory(username="watcher", role=Role.DEVELOPER)
    ours = IntegrationFactory(name="Orders")
    GrantFactory(integration=ours, user=dev, level=AccessLevel.MANAGE)
    theirs = IntegrationFactory(name="Payroll")
    now = timezone.now()
    step = uuid.uuid4()
    for integration, name in ((ours, "Orders to ERP"), (theirs, "Payroll export")):
        flow = FlowFactory(integration=integration, name=name)
        conn = ConnectionFactory(integration=integration, name=f"{name} API")
        for i in range(6):
            make_run(
                integration,
                flow.lineage_id,
                flow_name=name,
                created_at=now - timedelta(days=i, hours=2 if i else 0, minutes=10),
                status="partial" if i % 2 else "succeeded",
                records_in=20,
                records_out=19,
                steps=[(conn.lineage_id, [0] * 8 + [2, 3] + [0] * 15)],
                errors=[("http", 422, f"{name}: customer has no account")],
                error_step=step,
            )
    return dev


def test_open_monitoring_switch_range_and_drill_into_an_error_group(
    page, login, screenshot, watched
):
    violations = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    login("watcher")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Monitoring").click()
    expect(page.get_by_role("heading", name="Monitoring", level=1)).to_be_visible()
    grid = page.get_by_test_id("health-grid")
    expect(grid.get_by_role("link", name="Orders to ERP")).to_be_visible()
    expect(grid).not_to_contain_text("Payroll")
    expect(page.locator("[data-chart=volume] canvas")).to_have_count(1)
    row = grid.locator("tr", has_text="Orders to ERP")
    expect(row).to_contain_text("Healthy")  # the one run of the last 24 h succeeded
    groups = page.get_by_test_id("error-groups")
    expect(groups.locator("tbody tr").first).to_contain_text("1")  # one error in 24 h

    page.get_by_label("Range").select_option("7d")
    page.wait_for_url("**range=7d**")
    groups = page.get_by_test_id("error-groups")
    expect(groups.locator("tbody tr").first.locator("td").nth(2)).to_have_text("6")
    expect(page.get_by_role("heading", name="Trends")).to_contain_text("per hour")
    page.get_by_label("Range").select_option("30d")
    page.wait_for_url("**range=30d**")
    expect(page.get_by_role("heading", name="Trends")).to_contain_text("per day")
    screenshot("monitoring-30d")

    page.get_by_test_id("error-groups").get_by_role("link", name="Run #").first.click()
    page.wait_for_url("**/runs/**")
    expect(page.get_by_text("Orders to ERP: customer has no account").first).to_be_visible()
    assert violations == []
