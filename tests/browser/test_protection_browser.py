"""Production is protected, in Chromium: the banner and the missing edit controls on a
protected integration, lookup-cache entries still editable, and an administrator turning
protection off with a reason (the controls come back)."""

import pytest
from playwright.sync_api import expect

from integrations.models import AccessLevel, Environment, Integration, LookupCacheEntry, Role
from tests.factories import (
    FlowFactory,
    GrantFactory,
    IntegrationFactory,
    LookupCacheFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)

BANNER = "Production is protected: change a sandbox clone and pull."


@pytest.fixture
def production():
    dev = UserFactory(username="dana", role=Role.DEVELOPER)
    UserFactory(username="root", role=Role.ADMINISTRATOR)
    integration = IntegrationFactory(
        name="Orders (production)", environment=Environment.PRODUCTION, protected=True
    )
    GrantFactory(integration=integration, user=dev, level=AccessLevel.MANAGE)
    FlowFactory(integration=integration, name="Orders to ERP")
    LookupCacheFactory(integration=integration, name="SKU map", key_path="sku")
    return integration


def test_developer_sees_the_banner_no_edit_controls_and_still_edits_cache_entries(
    page, login, production
):
    login("dana")
    page.goto(f"/integrations/{production.pk}/flows/")
    expect(page.get_by_test_id("protected-banner")).to_contain_text(BANNER)
    expect(page.get_by_role("link", name="New flow")).to_have_count(0)
    cache = production.lookupcaches.get()
    page.goto(f"/integrations/{production.pk}/caches/{cache.pk}/")
    expect(page.get_by_role("link", name="Edit cache")).to_have_count(0)
    page.fill("#id_key", "A-1")
    page.fill("#id_value", '{"item": 7}')
    page.get_by_role("button", name="Save entry").click()
    expect(page.locator(".message-success")).to_contain_text("A-1")
    assert LookupCacheEntry.objects.filter(cache=cache, key="A-1").exists()


def test_administrator_turns_protection_off_with_a_reason(page, login, production):
    login("root")
    page.goto(f"/integrations/{production.pk}/settings/")
    card = page.get_by_test_id("protection")
    card.get_by_role("button", name="Turn protection off").click()
    expect(page.locator(".errorlist, .message-error").first).to_be_visible()
    assert Integration.objects.get(pk=production.pk).protected
    page.get_by_label("Why turn protection off?").fill("Incident 1234: ERP moved")
    page.get_by_test_id("protection").get_by_role("button", name="Turn protection off").click()
    expect(page.locator(".message-warning")).to_contain_text("is off")
    expect(page.get_by_test_id("protected-banner")).to_have_count(0)
    expect(page.get_by_role("button", name="Save settings")).to_be_visible()
    assert not Integration.objects.get(pk=production.pk).protected
