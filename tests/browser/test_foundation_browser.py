"""Issue 2 journeys in Chromium: tiles, tabs with the back button, a new flow with a step,
and a monitor who sees no edit controls."""

import re

import pytest
from playwright.sync_api import expect

from integrations.models import AccessLevel, Environment, Flow, Role
from tests.factories import (
    ConnectionFactory,
    FlowFactory,
    GrantFactory,
    IntegrationFactory,
    LookupCacheFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world():
    dev = UserFactory(username="dana", role=Role.DEVELOPER)
    mon = UserFactory(username="moe", role=Role.MONITOR)
    orders = IntegrationFactory(name="Storefront orders → ERP", environment=Environment.PRODUCTION)
    crm = IntegrationFactory(name="CRM contacts → marketing", environment=Environment.SANDBOX)
    IntegrationFactory(name="Hidden payroll")
    for integration in (orders, crm):
        GrantFactory(integration=integration, user=dev, level=AccessLevel.MANAGE)
        GrantFactory(integration=integration, user=mon, level=AccessLevel.MONITOR)
    ConnectionFactory(integration=orders, name="Shopify storefront")
    LookupCacheFactory(integration=orders, name="SKU map")
    FlowFactory(integration=orders, name="Refunds to credit memos")
    return {"orders": orders, "crm": crm}


def test_developer_switches_tabs_and_adds_a_flow_with_a_step(page, login, screenshot, world):
    orders = world["orders"]
    login("dana")
    tiles = page.locator("li.tile")
    expect(tiles).to_have_count(2)
    expect(page.locator(".tiles")).not_to_contain_text("Hidden payroll")
    screenshot("foundation_home_1280")
    screenshot("foundation_home_390", width=390)

    # Search narrows the tiles in place and the URL follows.
    page.fill("input[name=name]", "crm")
    expect(tiles).to_have_count(1)
    expect(page).to_have_url(re.compile(r"\?name=crm"))
    page.fill("input[name=name]", "")
    expect(tiles).to_have_count(2)
    page.locator("label.segment", has_text="Sandbox").click()
    expect(tiles).to_have_count(1)
    expect(page).to_have_url(re.compile(r"environment=sandbox"))
    page.go_back()
    expect(tiles).to_have_count(2)

    page.get_by_role("link", name="Storefront orders → ERP").click()
    expect(page.locator("h1")).to_contain_text("Storefront orders → ERP")
    flows_url = page.url

    # Tabs swap only the tab content (the header node stays) and push the URL.
    page.evaluate("document.querySelector('.integration-header').dataset.kept = 'yes'")
    page.get_by_role("tab", name=re.compile("Connections")).click()
    expect(page).to_have_url(re.compile(r"/connections/$"))
    expect(page.locator("#tab-content")).to_contain_text("Shopify storefront")
    expect(page.get_by_role("tab", name=re.compile("Connections"))).to_have_attribute(
        "aria-selected", "true"
    )
    page.get_by_role("tab", name=re.compile("Lookup caches")).click()
    expect(page).to_have_url(re.compile(r"/caches/$"))
    expect(page.locator("#tab-content")).to_contain_text("SKU map")
    assert page.evaluate("document.querySelector('.integration-header').dataset.kept") == "yes"
    expect(page).to_have_title(re.compile("Lookup caches"))

    # The back button walks the tabs back.
    page.go_back()
    expect(page).to_have_url(re.compile(r"/connections/$"))
    expect(page.locator("#tab-content")).to_contain_text("Shopify storefront")
    page.go_back()
    expect(page).to_have_url(flows_url)
    expect(page.locator("#tab-content")).to_contain_text("Refunds to credit memos")

    # Deep link to a tab.
    page.goto(f"/integrations/{orders.pk}/settings/")
    expect(page.get_by_role("tab", name="Settings")).to_have_attribute("aria-selected", "true")
    page.get_by_role("tab", name=re.compile("Flows")).click()

    # A flow with a step, through the forms.
    page.get_by_role("link", name="New flow").click()
    page.fill("#id_name", "Orders to sales orders")
    page.fill("#id_schedule", "every now and then")
    page.get_by_role("button", name="Create flow").click()
    expect(page.locator(".field.has-error")).to_contain_text("5 fields")
    page.fill("#id_schedule", "*/15 * * * *")
    page.get_by_role("button", name="Create flow").click()
    expect(page.locator("h2")).to_contain_text("Orders to sales orders")
    page.get_by_role("link", name="Add step").first.click()
    page.fill("#id_name", "Export paid orders")
    page.select_option("#id_kind", "export")
    page.select_option("#id_connection", label="Shopify storefront")
    page.fill("#id_mappings-0-source", "line.sku")
    page.fill("#id_mappings-0-target", "item")
    page.select_option("#id_mappings-0-lookup_cache", label="SKU map")
    page.get_by_role("button", name="Add mapping").click()
    page.fill("#id_mappings-1-source", "email")
    page.fill("#id_mappings-1-target", "customer.email")
    screenshot("foundation_step_form_1280")
    screenshot("foundation_step_form_390", width=390)
    page.get_by_role("button", name="Add step").click()
    step = page.locator("li.step")
    expect(step).to_have_count(1)
    expect(step).to_contain_text("Export paid orders")
    expect(step).to_contain_text("SKU map")
    expect(step).to_contain_text("customer.email")
    screenshot("foundation_flow_1280")
    screenshot("foundation_flow_390", width=390)

    page.get_by_role("link", name="Flows", exact=True).first.click()
    expect(page.locator("#tab-content")).to_contain_text("Orders to sales orders")
    flow = Flow.objects.get(name="Orders to sales orders")
    assert flow.steps.get().config["mappings"][1] == {
        "source": "email",
        "target": "customer.email",
        "lookup_cache": None,
    }


def test_monitor_sees_no_edit_controls(page, login, screenshot, world):
    orders = world["orders"]
    login("moe")
    expect(page.locator("li.tile")).to_have_count(2)
    expect(page.get_by_role("link", name="New integration")).to_have_count(0)
    page.get_by_role("link", name="Storefront orders → ERP").click()
    for tab in ("Flows", "Connections", "Lookup caches", "Scripts", "Settings"):
        page.get_by_role("tab", name=re.compile(tab)).click()
        expect(page.get_by_role("tab", name=re.compile(tab))).to_have_attribute(
            "aria-selected", "true"
        )
        content = page.locator("#tab-content")
        expect(content.get_by_role("button")).to_have_count(0)
        expect(
            content.get_by_role("link", name=re.compile(r"^(New|Edit|Delete|Add)"))
        ).to_have_count(0)
    screenshot("foundation_monitor_settings_1280")
    page.goto(f"/integrations/{orders.pk}/flows/new/")
    expect(page.get_by_role("alert")).to_contain_text("does not allow: edit")


def test_a_tab_that_fails_to_load_says_why(page, login, world):
    orders = world["orders"]
    login("dana")
    page.goto(f"/integrations/{orders.pk}/")
    # Access is withdrawn while the page is open: the next tab answers 404.
    orders.grants.filter(user__username="dana").delete()
    page.get_by_role("tab", name=re.compile("Connections")).click()
    expect(page.locator("#toast")).to_contain_text("gone")
    expect(page.locator("#tab-content")).to_contain_text("Refunds to credit memos")


def test_arrow_keys_move_along_the_tab_bar(page, login, world):
    login("dana")
    page.goto(f"/integrations/{world['orders'].pk}/")
    page.get_by_role("tab", name=re.compile("Flows")).focus()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name=re.compile("Connections"))).to_be_focused()
    page.keyboard.press("End")
    expect(page.get_by_role("tab", name="Settings")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/settings/$"))


def test_on_a_phone_every_nav_item_shows_and_no_page_scrolls_sideways(page, login, world):
    """390 px: the main nav wraps onto its own row instead of hiding items in a scroller,
    a flow with long mapping paths fits the screen, and the tab bar shows a scroll cue."""
    orders = world["orders"]
    flow = Flow.objects.get(name="Refunds to credit memos")
    flow.steps.create(
        integration=orders,
        name="Shape the credit memo with a long name",
        kind="transform",
        position=1,
        config={
            "mappings": [
                {
                    "source": "refund_line_items[0].line_item.shipping_lines.code",
                    "target": "credit_memo.item_list.item.custom_field_list.value",
                    "lookup_cache": None,
                }
            ]
        },
    )
    UserFactory(username="ada", role=Role.ADMINISTRATOR)
    page.set_viewport_size({"width": 390, "height": 800})
    login("ada")
    for name in ("Integrations", "Approvals", "Audit log", "API"):
        expect(
            page.get_by_role("navigation", name="Main").get_by_role("link", name=name)
        ).to_be_in_viewport()
    for path in ("/", f"/integrations/{orders.pk}/", f"/integrations/{orders.pk}/flows/{flow.pk}/"):
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width} px wide on a 390 px screen"
    tabs = page.locator("#integration-tabs")
    assert tabs.evaluate("t => t.scrollWidth > t.clientWidth")  # more tabs than fit...
    assert "radial-gradient" in tabs.evaluate("t => getComputedStyle(t).backgroundImage")  # ...cued
