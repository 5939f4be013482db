"""Issue 15 in Chromium: the behaviour of a pull on its review, and pulls into many."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from integrations.models import AccessLevel, Environment, FlowStep, Role
from integrations.services import resource_update
from revisions import services
from revisions.models import Revision
from runs.models import FlowSample
from tests.factories import FlowFactory, GrantFactory, IntegrationFactory, StepFactory, UserFactory
from tests.runs.conftest import build_flow, orders

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dev():
    return UserFactory(username="dana", role=Role.DEVELOPER)


def _amount_from(integration, source):
    step = FlowStep.objects.get(integration=integration, name="Map")
    mappings = [dict(m) for m in step.config["mappings"]]
    mappings[1]["source"] = source
    resource_update(instance=step, data={"config": {**step.config, "mappings": mappings}})


def test_a_pull_that_changes_a_mapping_shows_the_record_then_identical_once_resolved_ours(
    page, login, screenshot, dev
):
    target = IntegrationFactory(name="Shop → ERP", environment=Environment.SANDBOX)
    GrantFactory(integration=target, user=dev, level=AccessLevel.MANAGE)
    flow = build_flow(target)
    FlowSample.objects.create(
        integration=target, flow_lineage_id=flow.lineage_id, records=orders(20)
    )
    clone = services.integration_clone(source=target, user=dev, name="Shop sandbox")
    _amount_from(clone, "id")  # the sandbox sends the order id as the amount
    _amount_from(target, "customer.email")  # the target changed it its own way: a conflict
    revision = services.pull_create(target=target, source=clone, user=dev)

    login("dana")
    page.goto(f"/revisions/{revision.pk}/")
    panel = page.get_by_test_id("behaviour")
    summary = page.get_by_test_id("behaviour-summary")
    expect(summary).to_contain_text(
        "1 flow tested on 20 records: 0 outputs identical, 20 differ, 0 new errors"
    )
    expect(panel).to_contain_text("1 unresolved conflict tested as “take theirs”")
    record = page.get_by_test_id("behaviour-record").first
    expect(record).to_contain_text("Record 1: what the import would send")
    expect(record).to_contain_text("amount")
    expect(record).to_contain_text("c1@example.com")
    expect(panel).to_contain_text("entries for both sides")
    screenshot("behaviour-differs-1280")
    screenshot("behaviour-differs-390", width=390)

    page.get_by_role("button", name="Expand all").click()
    conflict = page.locator(".rv-list .df-conflict").first
    expect(conflict).to_contain_text("customer.email")  # ours, in the mapping's row
    conflict.get_by_role("button", name="Keep ours").click()
    expect(page.locator("#unresolved-count")).to_contain_text("0 unresolved")
    expect(summary).to_contain_text("20 outputs identical, 0 differ, 0 new errors", timeout=15000)
    expect(page.get_by_test_id("behaviour-record")).to_have_count(0)
    screenshot("behaviour-identical-1280")


def test_pull_into_five_clones_one_conflicting(page, login, screenshot, dev):
    template = IntegrationFactory(name="Template", environment=Environment.SANDBOX)
    GrantFactory(integration=template, user=dev, level=AccessLevel.MANAGE)
    flow = FlowFactory(integration=template, name="Orders")
    StepFactory(
        flow=flow,
        name="Map",
        kind="transform",
        config={"mappings": [{"source": "id", "target": "ref", "lookup_cache": None}]},
    )
    clones = [
        services.integration_clone(source=template, user=dev, name=f"Store {n}")
        for n in range(1, 6)
    ]

    def target_of(integration, value):  # mappings merge per target: one target, two sources
        step = FlowStep.objects.get(integration=integration, name="Map")
        resource_update(
            instance=step,
            data={
                "config": {"mappings": [{"source": value, "target": "ref", "lookup_cache": None}]}
            },
        )

    target_of(template, "order_ref")
    target_of(clones[2], "legacy_ref")  # Store 3 changed it too: a conflict there

    login("dana")
    page.goto(f"/integrations/{template.pk}/revisions/")
    page.get_by_role("link", name="Pull into…").click()
    expect(page.locator(".pb-member")).to_have_count(5)
    expect(page.locator(".pb-member", has_text="Store 1")).to_contain_text("Behind Template")
    expect(page.locator(".pb-member", has_text="Store 3")).to_contain_text("Diverged from Template")
    screenshot("pull-into-1280")
    screenshot("pull-into-390", width=390)
    page.get_by_role("button", name="Select all").click()
    for n in range(1, 6):
        expect(page.get_by_label(f"Store {n}")).to_be_checked()
    page.fill("#id_description", "Order reference")
    page.get_by_role("button", name="Open pulls").click()
    page.wait_for_url("**/pull-batches/**")
    rows = page.get_by_test_id("batch-row")
    expect(rows).to_have_count(5)
    expect(page.locator("#batch-table")).to_contain_text("4 clean pulls")
    expect(rows.filter(has_text="Store 3")).to_contain_text("1 to resolve")
    screenshot("pull-batch-1280")
    screenshot("pull-batch-390", width=390)

    page.once("dialog", lambda dialog: dialog.accept())  # "Merge 4 clean pulls …?"
    page.get_by_test_id("merge-all-clean").click()
    expect(rows.filter(has_text="Store 1")).to_contain_text("Completed")
    expect(rows.filter(has_text="Store 3")).to_contain_text("conflict to resolve first")
    expect(rows.filter(has_text="Store 3")).to_contain_text("Ready for review")
    screenshot("pull-batch-merged-1280")
    merged = Revision.objects.filter(type="pull", status="completed").count()
    assert merged == 4
    step = FlowStep.objects.get(integration=clones[2], name="Map")
    assert step.config["mappings"][0]["source"] == "legacy_ref"
    rows.filter(has_text="Store 3").get_by_role("link", name="Review").click()
    expect(page.locator("#merge-box")).to_contain_text("conflict")
