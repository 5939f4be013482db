"""Notifications in Chromium: the bell shows the unread count, the list marks one read in
place (htmx) and the bell follows, following a notification lands where it leads, and
"Mark all read" empties the count."""

import pytest
from playwright.sync_api import expect

from integrations.models import Role
from runs.models import NotificationKind
from runs.notifications import notify
from tests.factories import IntegrationFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_bell_list_mark_read_and_follow(page, login, screenshot):
    user = UserFactory(username="nora", role=Role.APPROVER)
    integration = IntegrationFactory(name="Orders → ERP")
    notify(
        [user],
        kind=NotificationKind.ALERT_RESOLVED,
        title="Orders → ERP: success rate back above 95 %",
        url=f"/integrations/{integration.pk}/",
        integration=integration,
        email=False,
    )
    notify(
        [user],
        kind=NotificationKind.ALERT_FIRED,
        title="Orders → ERP: 3 failed runs in a row",
        body="Last failure: HTTP 422 from the ERP import step.",
        url=f"/integrations/{integration.pk}/",
        integration=integration,
        email=False,
    )
    notify([user], kind=NotificationKind.ERROR_ASSIGNED, title="An error for you", email=False)

    login("nora")
    bell = page.locator("#nav-bell")
    expect(bell).to_have_attribute("aria-label", "Notifications, 3 unread")
    expect(bell.locator(".bell-count")).to_have_text("3")

    bell.click()
    page.wait_for_url("**/notifications/")
    expect(page.get_by_role("heading", name="Notifications", exact=True)).to_be_visible()
    items = page.locator(".notification")
    expect(items).to_have_count(3)
    expect(items.first).to_contain_text("An error for you")  # newest first
    screenshot("notifications-list")

    # Mark one read in place: the item loses its unread mark, the bell counts down.
    page.get_by_role("button", name="Mark “An error for you” read").click()
    expect(bell).to_have_attribute("aria-label", "Notifications, 2 unread")
    expect(page.locator(".notification.unread")).to_have_count(2)
    expect(page.get_by_role("button", name="Mark “An error for you” read")).to_have_count(0)

    # Following one marks it read and lands on the integration.
    page.get_by_role("link", name="Orders → ERP: 3 failed runs in a row").click()
    page.wait_for_url(f"**/integrations/{integration.pk}/")
    expect(page.locator("#nav-bell")).to_have_attribute("aria-label", "Notifications, 1 unread")

    page.goto("/notifications/?show=unread")
    expect(page.locator(".notification")).to_have_count(1)
    page.get_by_role("button", name="Mark all read").click()
    expect(page.locator("#nav-bell")).to_have_attribute("aria-label", "Notifications, none unread")
    expect(page.get_by_text("Nothing unread")).to_be_visible()
    screenshot("notifications-all-read", width=390)
