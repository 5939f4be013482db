"""Issue 5 in Chromium: browse the audit log, filter it, expand a row, follow an operation."""

import uuid

import pytest
from playwright.sync_api import expect

from audit.context import Source, acting
from audit.models import Event
from integrations import services
from integrations.models import AccessLevel, Environment, Role
from tests.factories import (
    ConnectionFactory,
    FlowFactory,
    GrantFactory,
    IntegrationFactory,
    ScriptFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)

CODE_BEFORE = "\n".join(
    [
        "function preSavePage(options) {",
        "  const out = [];",
        "  for (const record of options.data) {",
        "    record.total = Math.round(record.total * 100) / 100;",
        "    out.push(record);",
        "  }",
        "  return { data: out, errors: options.errors };",
        "}",
    ]
)
CODE_AFTER = CODE_BEFORE.replace("* 100) / 100", "* 1000) / 1000").replace(
    "    out.push(record);",
    "    record.currency = record.currency || 'EUR';\n    out.push(record);",
)


@pytest.fixture
def story():
    admin = UserFactory(username="ada", role=Role.ADMINISTRATOR, is_staff=True)
    dev = UserFactory(username="dana", role=Role.DEVELOPER)
    orders = IntegrationFactory(name="Storefront orders", environment=Environment.SANDBOX)
    payroll = IntegrationFactory(name="Payroll export")
    GrantFactory(integration=orders, user=dev, level=AccessLevel.MANAGE)
    with acting(dev, Source.UI):
        script = ScriptFactory(integration=orders, name="Tax rounding", code=CODE_BEFORE)
        services.resource_update(instance=script, data={"code": CODE_AFTER})
        conn = ConnectionFactory(integration=orders, name="ERP API")
        services.resource_update(
            instance=conn,
            data={"config": {"base_url": "https://erp.example.com/v2", "timeout": 60}},
        )
    op = uuid.uuid4()
    with acting(dev, Source.ILM, operation_id=op):
        for name in ("Orders to ERP", "Refunds to ERP", "Stock sync"):
            FlowFactory(integration=orders, name=name)
    with acting(admin, Source.API):
        FlowFactory(integration=payroll, name="Monthly payroll")
    return {"admin": admin, "dev": dev, "orders": orders, "op": op}


def test_admin_browses_filters_and_expands_a_row(page, login, screenshot, story):
    login("ada")
    page.goto("/audit/")
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    expect(page.locator(".au-event")).to_have_count(Event.objects.count())
    expect(page.locator(".au-event", has_text="Signed in")).to_have_count(1)
    screenshot("audit-log")

    # Free-text filter, applied as you type (htmx), narrows the rows.
    page.fill("#id_q", "tax")
    expect(page.locator(".au-event")).to_have_count(2)
    assert "q=tax" in page.url

    # Expanding the update row shows the code as a line diff.
    row = page.locator(".au-event", has_text="Updated").first
    row.locator("summary").click()
    expect(row.locator("table.dl")).to_be_visible()
    expect(row.locator(".dl-added, .dl-changed").first).to_be_visible()
    screenshot("audit-log-expanded")

    # The operation id shows the whole group.
    page.goto("/audit/")
    page.locator(".au-event", has_text="Stock sync").locator(".au-op a").click()
    expect(page.locator(".au-event")).to_have_count(3)
    expect(page.get_by_text("One operation")).to_be_visible()
    page.locator(".au-event").first.locator("summary").click()
    expect(page.locator(".au-values").first).to_contain_text("Stock sync")
    screenshot("audit-log-narrow", width=390)


def test_developer_sees_the_integration_tab_only(page, login, screenshot, story):
    login("dana")
    orders = story["orders"]
    page.goto(f"/integrations/{orders.pk}/audit/")
    expect(page.locator(".au-event")).to_have_count(
        Event.objects.filter(integration=orders).count()
    )
    expect(page.get_by_text("Monthly payroll")).to_have_count(0)
    row = page.locator(".au-event", has_text="ERP API").filter(has_text="Updated")
    row.locator("summary").click()
    expect(row.locator(".au-field")).to_have_count(1)
    expect(row.get_by_text("https://erp.example.com/v2")).to_be_visible()
    screenshot("audit-tab-expanded")
    response = page.goto("/audit/")
    assert response is not None and response.status == 403
