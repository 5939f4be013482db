"""Under the strict Content-Security-Policy the pages still work in Chromium, and the
browser reports no blocked script or style on them (nor on the API docs page)."""

import pytest
from playwright.sync_api import expect

from integrations.models import AccessLevel, Environment, Role
from integrations.services import api_token_create
from tests.factories import (
    ConnectionFactory,
    FlowFactory,
    GrantFactory,
    IntegrationFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def violations(page):
    """Messages Chromium logs when the policy blocks something."""
    seen: list[str] = []
    page.on(
        "console",
        lambda msg: seen.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    return seen


def test_pages_and_htmx_work_with_nothing_blocked(page, login, violations):
    dev = UserFactory(username="dana", role=Role.DEVELOPER)
    orders = IntegrationFactory(name="Storefront orders → ERP", environment=Environment.PRODUCTION)
    GrantFactory(integration=orders, user=dev, level=AccessLevel.MANAGE)
    ConnectionFactory(integration=orders, name="Shopify storefront")
    FlowFactory(integration=orders, name="Refunds")
    login("dana")
    expect(page.get_by_role("link", name="Storefront orders → ERP").first).to_be_visible()
    page.get_by_role("link", name="Storefront orders → ERP").first.click()
    page.get_by_role("tab", name="Connections").click()  # an htmx swap
    expect(page.get_by_text("Shopify storefront")).to_be_visible()
    page.goto("/integrations/import/")
    expect(page.get_by_text("Import as")).to_be_visible()
    assert violations == []


def test_token_revoke_still_asks_first(page, login, violations):
    dev = UserFactory(username="dana", role=Role.DEVELOPER)
    api_token_create(user=dev, name="CI pipeline")
    login("dana")
    page.goto("/account/")
    dialogs = []

    def dismiss(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.get_by_role("button", name="Revoke").click()
    assert dialogs and "Revoke “CI pipeline”?" in dialogs[0]
    expect(page.get_by_role("button", name="Revoke")).to_be_visible()  # dismissed: kept
    page.remove_listener("dialog", dismiss)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("revoked; scripts using it now get 401")).to_be_visible()
    assert violations == []


def test_api_docs_render_their_operations(page, login, violations):
    UserFactory(username="dana", role=Role.DEVELOPER)
    login("dana")
    page.goto("/api/v1/docs")
    expect(page.locator(".opblock").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("/api/v1/integrations").first).to_be_visible()
    assert violations == []
