"""Issue 13 journeys in Chromium: run a flow against the demo systems and watch it
progress to its end, open one of its errors, then a test run with pasted records.

The flow's connections point at the live server's own `/demo-systems/`, so the run goes
over real HTTP. A worker thread stands in for Celery: it waits at a gate, so the page is
seen queued and polling before the run starts, then finishes without a reload.
"""

import json
import threading

import pytest
from django.db import connection
from playwright.sync_api import expect

from integrations.models import AccessLevel, Environment, Role, StepKind
from runs import demo_systems, services
from runs.models import Run
from tests.factories import (
    CacheEntryFactory,
    ConnectionFactory,
    FlowFactory,
    GrantFactory,
    IntegrationFactory,
    LookupCacheFactory,
    StepFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker(monkeypatch):
    """Runs start in a thread once `gate` is set, as a Celery worker would pick them up."""
    gate = threading.Event()
    threads = []

    def work(run_id):
        try:
            gate.wait(30)
            services.run_execute(run_id=run_id)
        finally:
            connection.close()

    def enqueue(run_id):
        thread = threading.Thread(target=work, args=(run_id,), daemon=True)
        threads.append(thread)
        thread.start()

    monkeypatch.setattr(services, "_enqueue", enqueue)
    yield gate
    gate.set()
    for thread in threads:
        thread.join(30)


@pytest.fixture
def world(live_server, settings):
    settings.ILM_DEMO_SYSTEMS = True
    demo_systems.reset()
    base = f"{live_server.url}/demo-systems"
    approver = UserFactory(username="april", role=Role.APPROVER)
    orders = IntegrationFactory(name="Storefront orders → ERP", environment=Environment.PRODUCTION)
    GrantFactory(integration=orders, user=approver, level=AccessLevel.MANAGE)
    shop = ConnectionFactory(
        integration=orders,
        name="Shopify storefront",
        config={"base_url": f"{base}/storefront", "retry": {"max_attempts": 4}},
        credentials={},
    )
    erp = ConnectionFactory(
        integration=orders,
        name="NetSuite ERP",
        config={
            "base_url": f"{base}/erp",
            "auth": {"type": "basic"},
            "retry": {"max_attempts": 4},
        },
        credentials={"username": "integration", "password": "demo-erp-password"},
    )
    skus = LookupCacheFactory(integration=orders, name="SKU → ERP item", key_path="sku")
    for i, sku in enumerate(demo_systems.SKUS):
        CacheEntryFactory(cache=skus, key=sku, value={"erp_item": str(10042 + i), "uom": "EA"})
    flow = FlowFactory(integration=orders, name="Orders to sales orders", schedule="*/15 * * * *")
    steps = [
        (
            "Export paid orders",
            StepKind.EXPORT,
            shop,
            {
                "path": "/orders/",
                "query": {"financial_status": "paid"},
                "records_path": "orders",
                "paging": {"type": "next_url", "path": "next"},
            },
        ),
        (
            "Look up ERP items",
            StepKind.LOOKUP,
            None,
            {
                "mappings": [
                    {"source": "sku", "target": "item", "lookup_cache": str(skus.lineage_id)}
                ]
            },
        ),
        (
            "Shape the sales order",
            StepKind.TRANSFORM,
            None,
            {
                "mappings": [
                    {"source": "name", "target": "external_id"},
                    {"source": "customer.email", "target": "entity.email"},
                    {"source": "item", "target": "item"},
                    {"source": "quantity", "target": "quantity"},
                ]
            },
        ),
        (
            "Create sales order",
            StepKind.IMPORT,
            erp,
            {"method": "POST", "path": "/sales-orders/", "batch_size": 1},
        ),
    ]
    for position, (name, kind, conn, config) in enumerate(steps, start=1):
        StepFactory(
            flow=flow, name=name, position=position, kind=kind, connection=conn, config=config
        )
    return {"orders": orders, "flow": flow}


def test_run_a_demo_flow_watch_it_finish_and_open_an_error(page, login, screenshot, world, worker):
    orders, flow = world["orders"], world["flow"]
    login("april")
    page.goto(f"/integrations/{orders.pk}/flows/{flow.pk}/")
    panel = page.locator(".flow-runs")
    expect(panel).to_contain_text("next run")
    expect(panel).to_contain_text("This flow has not run yet")
    screenshot("runs_flow_page_1280")
    screenshot("runs_flow_page_390", width=390)

    panel.get_by_role("button", name="Run now").click()
    expect(page.locator("h2")).to_contain_text("Run #")
    body = page.locator("#run-body")
    expect(body).to_contain_text("Waiting for a worker")  # queued, and polling
    expect(page.get_by_role("button", name="Cancel run")).to_be_visible()

    worker.set()  # the worker picks it up; the page follows without a reload
    expect(body.locator(".run-status")).to_contain_text("Partial", timeout=60_000)
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    run = Run.objects.get()
    assert run.records_out > 0 and run.errors > 0
    steps = page.locator(".run-step")
    expect(steps).to_have_count(4)
    expect(steps.nth(3)).to_contain_text("Create sales order")
    expect(steps.nth(3)).to_contain_text("p95")
    screenshot("runs_detail_1280")

    # An ERP refusal: the failing record and the ERP's answer.
    refusal = page.locator(".run-error", has_text="422").first
    refusal.locator("summary").click()
    expect(refusal).to_contain_text("Failing record")
    expect(refusal).to_contain_text("credit hold")
    # A SKU the cache does not know: a mapping error naming it.
    expect(page.locator(".run-error", has_text="not in lookup cache").first).to_contain_text(
        demo_systems.UNKNOWN_SKU
    )
    assert "demo-erp-password" not in page.content()
    screenshot("runs_detail_error_1280")
    screenshot("runs_detail_390", width=390)

    # The Runs tab lists it; filtering by status keeps it, another status hides it.
    page.get_by_role("link", name="Runs", exact=True).first.click()
    row = page.locator(f"#run-{run.pk}")
    expect(row).to_contain_text("Partial")
    page.select_option("select[name=status]", "failed")
    expect(page.locator("#runs-table")).to_contain_text("No runs match these filters")
    page.select_option("select[name=status]", "partial")
    expect(row).to_be_visible()
    screenshot("runs_tab_1280")
    screenshot("runs_tab_390", width=390)

    # The home tile shows the last run and the errors of the last 24 h.
    page.goto("/")
    tile = page.locator(f'li.tile[data-integration="{orders.pk}"]')
    expect(tile.get_by_test_id("tile-health")).to_contain_text("Partial")
    expect(tile.get_by_test_id("tile-health")).to_contain_text(f"{run.errors} errors in 24 h")
    screenshot("runs_home_1280")


def test_test_run_with_pasted_records_shows_what_would_be_sent(
    page, login, screenshot, world, worker
):
    orders, flow = world["orders"], world["flow"]
    worker.set()
    login("april")
    page.goto(f"/integrations/{orders.pk}/flows/{flow.pk}/")
    page.locator(".flow-runs").get_by_role("link", name="Test run").click()
    expect(page.locator("h2")).to_contain_text("Test run of Orders to sales orders")
    expect(page.locator(".test-run-samples")).to_contain_text("No saved samples yet")

    page.fill("textarea[name=records]", '[{"name": "#1"')
    page.get_by_role("button", name="Run test").click()
    expect(page.locator("#records-errors")).to_contain_text("not valid JSON")
    assert Run.objects.count() == 0
    screenshot("runs_test_run_error_1280")

    records = [
        {
            "name": "#2001",
            "sku": "TENT-2P-GRN",
            "quantity": 2,
            "customer": {"email": "ana.patel@example.com"},
        },
        {
            "name": "#2002",
            "sku": "FUEL-230G",
            "quantity": 6,
            "customer": {"email": "ben.silva@example.com"},
        },
    ]
    page.fill("textarea[name=records]", json.dumps(records, indent=2))
    page.get_by_role("button", name="Run test").click()
    output = page.locator(".run-output")
    expect(output).to_contain_text("would send 2 records", timeout=30_000)
    expect(output.locator(".run-output-records > li")).to_have_count(2)
    expect(output.locator(".run-output-records > li").first).to_contain_text("#2001")
    expect(output.locator(".run-output-records > li").nth(1)).to_contain_text("10047")
    expect(page.locator("#run-body .run-status")).to_contain_text("Succeeded")
    # Nothing reached the ERP.
    assert not [r for r in demo_systems.RECEIVED if r["system"] == "erp"]
    screenshot("runs_test_run_1280")
    screenshot("runs_test_run_390", width=390)
