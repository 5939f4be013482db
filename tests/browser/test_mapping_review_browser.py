"""Issue 17 in Chromium: a pull's mappings read as a table, and a reviewer resolves one
mapping row without touching the others."""

import re

import pytest
from playwright.sync_api import expect

from integrations.models import AccessLevel, Environment, FlowStep, Role, StepKind
from integrations.services import resource_update
from revisions import services as revision_services
from revisions.models import Resolution, Revision, RevisionStatus
from tests.factories import (
    FlowFactory,
    GrantFactory,
    IntegrationFactory,
    LookupCacheFactory,
    StepFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _m(source, target, cache=None):
    return {"source": source, "target": target, "lookup_cache": cache}


def _set_mappings(integration, mappings):
    step = FlowStep.objects.get(flow__integration=integration, name="Map order fields")
    resource_update(instance=step, data={"config": {**step.config, "mappings": mappings}})


@pytest.fixture
def pull():
    """Both sides changed the mappings of one step: two targets clash, the rest do not."""
    dev = UserFactory(username="dana", role=Role.DEVELOPER)
    orders = IntegrationFactory(name="Storefront orders", environment=Environment.SANDBOX)
    GrantFactory(integration=orders, user=dev, level=AccessLevel.MANAGE)
    cache = LookupCacheFactory(integration=orders, name="Country codes")
    flow = FlowFactory(integration=orders, name="Orders to ERP")
    StepFactory(
        flow=flow,
        name="Map order fields",
        kind=StepKind.TRANSFORM,
        config={
            "mappings": [
                _m("total", "amount"),
                _m("email", "contact"),
                _m("country", "country_code", str(cache.lineage_id)),
            ]
        },
    )
    clone = revision_services.integration_clone(source=orders, user=dev, name="Orders sandbox")
    _set_mappings(
        clone,
        [
            _m("grand_total", "amount"),
            _m("customer.email", "contact"),
            _m("country", "country_code", str(cache.lineage_id)),
            _m("shipping.city", "ship_city", str(cache.lineage_id)),
        ],
    )
    _set_mappings(
        orders,
        [
            _m("net_total", "amount"),
            _m("mail", "contact"),
            _m("country", "country_code", str(cache.lineage_id)),
            _m("shipping.zip", "ship_zip"),
        ],
    )
    revision = revision_services.pull_create(target=orders, source=clone, user=dev)
    revision.refresh_from_db()
    assert revision.status == RevisionStatus.READY, revision.error
    return revision


def test_a_reviewer_resolves_one_mapping_row_without_touching_the_others(
    page, login, screenshot, pull
):
    login("dana")
    page.goto(f"/revisions/{pull.pk}/")
    page.locator("summary.rv-res-head", has_text="Map order fields").first.click()
    table = page.locator(".mt-block")
    expect(table).to_contain_text("2 conflicts")
    amount = page.locator("tbody.mt-row[data-target='amount']")
    contact = page.locator("tbody.mt-row[data-target='contact']")
    city = page.locator("tbody.mt-row[data-target='ship_city']")
    # Names, not ids: the new mapping goes through the cache by its name.
    expect(city).to_contain_text("Added")
    expect(city.locator(".mt-cache")).to_have_text("Country codes")
    assert not UUID.search(page.locator("main").inner_text())
    expect(amount).to_contain_text("Both changed it")
    expect(contact).to_contain_text("Both changed it")
    screenshot("mapping-review-1280")
    screenshot("mapping-review-390", width=390)
    page.set_viewport_size({"width": 390, "height": 800})
    # On a phone the table scrolls inside its box; the page itself does not widen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1280, "height": 800})

    amount.get_by_role("button", name="Keep ours").click()
    expect(amount).to_contain_text("✓ Keeps ours")
    expect(page.locator("tbody.mt-row[data-target='contact']")).to_contain_text("Both changed it")
    expect(page.locator(".mt-block")).to_contain_text("2 conflicts (1 unresolved)")
    expect(page.locator("#unresolved-count")).to_contain_text("1")
    assert list(Resolution.objects.filter(revision=pull).values_list("path", "choose")) == [
        ('config.mappings[target="amount"]', "ours")
    ]

    page.locator("tbody.mt-row[data-target='contact']").get_by_role(
        "button", name="Take theirs"
    ).click()
    expect(page.locator("tbody.mt-row[data-target='contact']")).to_contain_text("✓ Takes theirs")
    expect(page.locator("tbody.mt-row[data-target='amount']")).to_contain_text("✓ Keeps ours")
    expect(page.locator(".mt-block")).to_contain_text("2 conflicts (resolved)")
    pull = Revision.objects.get(pk=pull.pk)
    assert pull.summary["unresolved"] == 0

    # The merge keeps ours for one, takes theirs for the other, and both new mappings.
    revision_services.merge_start(revision=pull, user=None)
    step = FlowStep.objects.get(flow__integration=pull.integration, name="Map order fields")
    assert [(m["source"], m["target"]) for m in step.config["mappings"]] == [
        ("net_total", "amount"),
        ("customer.email", "contact"),
        ("country", "country_code"),
        ("shipping.zip", "ship_zip"),
        ("shipping.city", "ship_city"),
    ]
