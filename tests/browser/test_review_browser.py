"""Issue 4 journeys in Chromium: clone, change, pull, review, resolve, merge, revert."""

import re

import pytest
from playwright.sync_api import expect

from integrations.models import (
    AccessLevel,
    Connection,
    Environment,
    Flow,
    FlowStep,
    Role,
    Script,
)
from integrations.services import resource_update
from revisions.models import Revision, RevisionStatus, RevisionType
from tests.factories import (
    ConnectionFactory,
    FlowFactory,
    GrantFactory,
    IntegrationFactory,
    ScriptFactory,
    StepFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dev():
    return UserFactory(username="dana", role=Role.DEVELOPER)


@pytest.fixture
def orders(dev):
    """A sandbox integration the developer manages, with a flow, a step and a script."""
    integration = IntegrationFactory(name="Storefront orders", environment=Environment.SANDBOX)
    GrantFactory(integration=integration, user=dev, level=AccessLevel.MANAGE)
    conn = ConnectionFactory(integration=integration, name="ERP API")
    flow = FlowFactory(integration=integration, name="Orders to ERP", schedule="0 * * * *")
    StepFactory(
        flow=flow,
        name="Map order fields",
        connection=conn,
        config={"mappings": [{"source": "total", "target": "amount", "lookup_cache": None}]},
    )
    ScriptFactory(integration=integration, name="Tax rounding")
    return integration


def clone_in_browser(page, integration, name):
    page.goto(f"/integrations/{integration.pk}/revisions/")
    page.get_by_role("link", name="Clone", exact=True).click()
    page.fill("#id_name", name)
    page.get_by_role("button", name="Clone", exact=True).click()
    page.wait_for_url(lambda url: "/clone/" not in url)
    return type(integration).objects.get(name=name)


def twin(model, clone, name):
    return model.objects.get(integration=clone, name=name)


def create_pull(page, target, source_name, description):
    page.goto(f"/integrations/{target.pk}/revisions/")
    page.get_by_role("link", name="Create pull").first.click()
    option = page.locator("#id_source option", has_text=source_name).first
    page.select_option("#id_source", value=option.get_attribute("value"))
    page.fill("#id_description", description)
    page.get_by_role("button", name="Create pull").click()
    page.wait_for_url(re.compile(r"/revisions/\d+/$"))
    expect(page.locator(".rv-meta .rv-status")).to_have_text(
        re.compile("Ready for review"), timeout=15000
    )


def expand(page, name):
    page.locator("summary.rv-res-head", has_text=name).first.click()


def test_clone_change_pull_review_merge(page, login, screenshot, dev, orders):
    login("dana")
    clone = clone_in_browser(page, orders, "Orders sandbox")
    expect(page.get_by_text("is a clone of Storefront orders")).to_be_visible()
    step = twin(FlowStep, clone, "Map order fields")
    resource_update(
        instance=step,
        data={"config": {"mappings": [{"source": "total_gross", "target": "amount"}]}},
    )

    create_pull(page, orders, "Orders sandbox", "Gross totals from the sandbox")
    expect(page.locator("#review-summary")).to_contain_text("1 modified")
    expect(page.get_by_text("total_gross")).to_have_count(0)  # field diffs load on expand
    expand(page, "Map order fields")
    diff = page.locator(".rv-res-body .df").first
    expect(diff).to_contain_text("Mappings")  # the mappings read as a table (issue 17)
    expect(page.locator("ins.dw", has_text="total_gross").first).to_be_visible()

    page.get_by_test_id("merge-button").click()
    expect(page.locator(".rv-result-completed")).to_contain_text("Merged", timeout=15000)
    expect(page.locator(".rv-result")).to_contain_text("Snapshot before")
    screenshot("merge-result-1280")
    mapping = FlowStep.objects.get(integration=orders, name="Map order fields").config
    assert mapping["mappings"][0]["source"] == "total_gross"

    page.goto(f"/integrations/{orders.pk}/revisions/")
    rows = page.locator("tr.rv-row")
    expect(rows.first).to_contain_text("Snapshot")
    expect(page.locator("tr.rv-row", has_text="Gross totals from the sandbox")).to_contain_text(
        "Completed"
    )
    screenshot("revisions-table-1280")
    screenshot("revisions-table-390", width=390)


def test_conflict_blocks_merge_until_resolved(page, login, screenshot, dev, orders):
    login("dana")
    clone = clone_in_browser(page, orders, "Orders sandbox")
    resource_update(instance=twin(Flow, clone, "Orders to ERP"), data={"schedule": "*/5 * * * *"})
    resource_update(instance=Flow.objects.get(integration=orders), data={"schedule": "30 2 * * *"})
    script = twin(Script, clone, "Tax rounding")
    resource_update(
        instance=script,
        data={
            "code": "function preSavePage(options) {\n"
            "  return { data: options.data, rounded: true };\n}\n"
        },
    )

    create_pull(page, orders, "Orders sandbox", "Faster schedule")
    merge = page.get_by_test_id("merge-button")
    expect(merge).to_be_disabled()
    expect(page.locator("#merge-box")).to_contain_text("Resolve 1 conflict to merge")
    expect(page.locator("#unresolved-count")).to_contain_text("1 unresolved")

    with page.expect_request(re.compile(r"/changes/\?ids=")):  # one batch, not one per resource
        page.get_by_role("button", name="Expand all").click()
    expect(page.locator(".dl").first).to_be_visible()  # script code as a line diff
    conflict = page.locator(".df-conflict").first
    expect(conflict).to_contain_text("schedule")
    expect(conflict).to_contain_text("*/5 * * * *")
    expect(conflict).to_contain_text("30 2 * * *")
    screenshot("review-conflict-1280")
    screenshot("review-conflict-390", width=390)

    conflict.get_by_role("button", name="Take theirs").click()
    expect(page.locator("#unresolved-count")).to_contain_text("0 unresolved")
    expect(page.locator(".df-conflict").first).to_contain_text("Takes theirs")
    expect(page.get_by_test_id("merge-button")).to_be_enabled()
    page.get_by_test_id("merge-button").click()
    expect(page.locator(".rv-result-completed")).to_be_visible(timeout=15000)
    assert Flow.objects.get(integration=orders).schedule == "*/5 * * * *"


def test_revert_to_before_the_merge_with_preview(page, login, screenshot, dev, orders):
    login("dana")
    clone = clone_in_browser(page, orders, "Orders sandbox")
    resource_update(instance=twin(Flow, clone, "Orders to ERP"), data={"description": "Paid"})
    create_pull(page, orders, "Orders sandbox", "Paid orders only")
    page.get_by_test_id("merge-button").click()
    expect(page.locator(".rv-result-completed")).to_be_visible(timeout=15000)
    assert Flow.objects.get(integration=orders).description == "Paid"

    page.get_by_role("link", name="Revert to before").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Revert Storefront orders")
    expect(page.locator("#review-summary")).to_contain_text("1 change")
    expand(page, "Orders to ERP")
    expect(page.locator(".rv-res-body .df").first).to_contain_text("Paid")
    screenshot("revert-preview-1280")
    screenshot("revert-preview-390", width=390)
    page.fill("#id_description", "Back to all orders")
    page.get_by_test_id("confirm-revert").click()
    expect(page.locator(".rv-result-completed")).to_contain_text("Reverted", timeout=15000)
    assert Flow.objects.get(integration=orders).description == "Sync records"
    revert = Revision.objects.get(integration=orders, type=RevisionType.REVERT)
    assert revert.status == RevisionStatus.COMPLETED


def test_left_out_resource_is_untouched_by_the_merge(page, login, dev, orders):
    login("dana")
    clone = clone_in_browser(page, orders, "Orders sandbox")
    resource_update(instance=twin(Flow, clone, "Orders to ERP"), data={"description": "New"})
    resource_update(
        instance=twin(Connection, clone, "ERP API"), data={"config": {"base_url": "https://x"}}
    )
    create_pull(page, orders, "Orders sandbox", "Two changes, one wanted")
    head = page.locator("summary.rv-res-head", has_text="ERP API")
    head.get_by_role("button", name="Leave out").click()
    expect(page.locator("summary.rv-res-head", has_text="ERP API")).to_contain_text("Left out")
    page.reload()
    expect(page.locator("summary.rv-res-head", has_text="ERP API")).to_contain_text("Left out")
    page.get_by_test_id("merge-button").click()
    expect(page.locator(".rv-result-completed")).to_be_visible(timeout=15000)
    assert Connection.objects.get(integration=orders).config == {
        "base_url": "https://api.example.com",
        "timeout": 30,
    }
    assert Flow.objects.get(integration=orders).description == "New"
