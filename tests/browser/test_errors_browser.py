"""Issue 16 journey in Chromium: open the error list from a home tile, open an error, edit
its record, retry it, and see it resolved. The ERP is a real HTTP server
(pytest-httpserver) that refuses order 2 and takes the edited order 22.
"""

import re

import pytest
from playwright.sync_api import expect

from integrations.models import AccessLevel, Environment, Role
from runs.models import FlowError
from tests.factories import GrantFactory, IntegrationFactory, UserFactory
from tests.runs.conftest import Erp, build_flow, orders, run_once

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world(httpserver):
    erp = Erp()
    erp.reject = {2}
    httpserver.expect_request("/shop/orders").respond_with_json({"orders": orders(3)})
    httpserver.expect_request("/erp/sales-orders", method="POST").respond_with_handler(erp.handle)
    developer = UserFactory(username="dana", role=Role.DEVELOPER)
    integration = IntegrationFactory(name="Shop → ERP", environment=Environment.SANDBOX)
    GrantFactory(integration=integration, user=developer, level=AccessLevel.MANAGE)
    flow = build_flow(
        integration,
        shop_url=httpserver.url_for("/shop").rstrip("/"),
        erp_url=httpserver.url_for("/erp").rstrip("/"),
    )
    run_once(flow)
    return erp


def test_from_a_tile_to_an_error_edit_its_record_retry_and_see_it_resolved(
    world, page, login, screenshot
):
    login("dana")
    page.goto("/")
    page.get_by_test_id("error-count").first.click()
    expect(page.get_by_role("heading", name="Errors")).to_be_visible()
    expect(page.get_by_test_id("open-count")).to_have_text("1")
    page.locator("a.error-link").first.click()
    expect(page.get_by_test_id("error-state")).to_have_text("Open")
    editor = page.get_by_label("Retry data (JSON)")
    text = editor.input_value()
    assert '"order_id": 2' in text and "pw2" not in text  # secrets stay masked
    editor.fill(text.replace('"order_id": 2', '"order_id": 22'))
    screenshot("errors-edit-record")
    page.get_by_test_id("retry-error").click()
    expect(page.get_by_test_id("retry-status")).to_have_text("Succeeded")
    expect(page.get_by_test_id("retry-summary")).to_contain_text("1 of 1")
    page.get_by_role("link", name=re.compile(r"^Error \d+$")).click()
    expect(page.get_by_test_id("error-state")).to_have_text("Resolved")
    expect(page.get_by_test_id("error-resolved-by")).to_contain_text("by a retry")
    screenshot("errors-resolved")
    assert [r["order_id"] for r in world.received if r["order_id"] == 22] == [22]
    # The masked password went out as it was.
    assert next(r for r in world.received if r["order_id"] == 22)["password"] == "pw2"
    assert FlowError.objects.get().state == "resolved"


def test_assigning_an_error_puts_it_in_the_assignees_bell_and_leads_them_to_it(
    world, page, login, screenshot
):
    integration = FlowError.objects.get().integration
    omar = UserFactory(username="omar", role=Role.MONITOR)
    GrantFactory(integration=integration, user=omar, level=AccessLevel.MONITOR)
    error = FlowError.objects.get()
    login("dana")
    page.goto(f"/errors/{error.pk}/")
    page.get_by_label("Assign to").select_option("omar")
    page.get_by_role("button", name="Assign", exact=True).click()
    expect(page.get_by_test_id("error-assignee")).to_have_text("omar")

    page.context.clear_cookies()
    login("omar")
    bell = page.locator("#nav-bell")
    expect(bell).to_have_attribute("aria-label", "Notifications, 1 unread")
    bell.click()
    page.wait_for_url("**/notifications/")
    note = page.get_by_role("link", name="Error assigned to you: Orders to ERP / Send to ERP")
    expect(page.locator(".notification").first).to_contain_text("dana assigned you an error")
    screenshot("errors-assigned-notification")
    screenshot("errors-assigned-notification-narrow", width=390)
    note.click()
    page.wait_for_url(f"**/errors/{error.pk}/")
    expect(page.get_by_test_id("error-assignee")).to_have_text("omar")
    expect(page.locator("#nav-bell")).to_have_attribute("aria-label", "Notifications, none unread")
