"""Issue 7's four-eyes journey in Chromium: request, approve as someone else, merge.

The developer pulls sandbox changes into production and asks for approval; a refresh
voids the request; asked again, a second user (an approver) finds it in the queue and the
nav badge, approves, and the merge completes in the approver's name. Whoever asked can
never approve, whatever their role, not even by posting directly.
"""

import re

import pytest
from playwright.sync_api import expect

from integrations.models import AccessLevel, Environment, Flow, Role
from integrations.services import resource_update
from revisions.models import Approval, ApprovalDecision, Revision, RevisionStatus
from tests.browser.conftest import ARTIFACTS
from tests.factories import FlowFactory, GrantFactory, IntegrationFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def people():
    return {
        "dev": UserFactory(username="dana", role=Role.DEVELOPER),
        "approver": UserFactory(username="april", role=Role.APPROVER),
    }


@pytest.fixture
def production(people):
    integration = IntegrationFactory(name="Orders (production)", environment=Environment.PRODUCTION)
    GrantFactory(integration=integration, user=people["dev"], level=AccessLevel.MANAGE)
    FlowFactory(integration=integration, name="Orders to ERP", description="All orders")
    return integration


def sign_in(browser, live_server, username):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=live_server.url)
    context.set_default_timeout(15000)
    page = context.new_page()
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw")
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login/" not in url)
    return page


def clone_and_pull(page, production, *, clone_name, description):
    """Clone production in the UI, change the clone, open a pull of it; the pull row."""
    page.goto(f"/integrations/{production.pk}/clone/")
    page.fill("#id_name", clone_name)
    page.get_by_role("button", name="Clone", exact=True).click()
    page.wait_for_url(lambda url: "/clone/" not in url)
    clone = type(production).objects.get(name=clone_name)
    resource_update(instance=Flow.objects.get(integration=clone), data={"description": description})
    page.goto(f"/integrations/{production.pk}/revisions/pull/")
    option = page.locator("#id_source option", has_text=clone_name).first
    page.select_option("#id_source", value=option.get_attribute("value"))
    page.fill("#id_description", description)
    page.get_by_role("button", name="Create pull").click()
    page.wait_for_url(re.compile(r"/revisions/\d+/$"))
    expect(page.locator("#merge-box")).to_be_visible()
    return Revision.objects.get(integration=production, type="pull", description=description)


def test_four_eyes_approval(browser, live_server, page, login, screenshot, people, production):
    login("dana")
    pull = clone_and_pull(page, production, clone_name="Orders sandbox", description="Paid only")

    # Production: the merge box asks for an approval instead of merging.
    box = page.locator("#merge-box")
    expect(box).to_contain_text("Approval needed")
    page.fill("#id_request_comment", "Please check the paid filter")
    page.get_by_test_id("merge-button").click()
    expect(page.locator("#merge-box")).to_contain_text("Waiting for approval")
    expect(page.get_by_test_id("approve-button")).to_have_count(0)

    # A refresh after the request voids it: the page says so and asks again.
    page.get_by_role("button", name=re.compile("Refresh")).click()
    expect(page.locator("#merge-box")).to_contain_text("lapsed")
    assert Approval.objects.filter(revision=pull, decision=ApprovalDecision.LAPSED).exists()
    pull.refresh_from_db()
    assert pull.status == RevisionStatus.READY
    page.fill("#id_request_comment", "Refreshed; please check again")
    page.get_by_test_id("merge-button").click()
    expect(page.locator("#merge-box")).to_contain_text("Waiting for approval")
    screenshot("approval-requested-developer")

    # The approver sees it in the queue and the nav badge, reviews and approves.
    approver = sign_in(browser, live_server, "april")
    expect(approver.locator(".topnav .count-badge")).to_have_text("1")
    approver.goto("/approvals/")
    expect(approver.locator("table")).to_contain_text("Refreshed; please check again")
    approver.get_by_role("link", name="Review").click()
    expect(approver.locator("#merge-box")).to_contain_text("dana")
    approver.screenshot(path=str(ARTIFACTS / "approval-approver-review.png"), full_page=True)
    approver.fill("#id_decision_comment", "Looks right")
    approver.get_by_test_id("approve-button").click()
    expect(approver.locator(".rv-result-completed")).to_contain_text("Merged", timeout=15000)
    approver.screenshot(path=str(ARTIFACTS / "approval-merged.png"), full_page=True)

    pull.refresh_from_db()
    assert pull.status == RevisionStatus.COMPLETED
    approval = Approval.objects.get(revision=pull, decision=ApprovalDecision.APPROVED)
    assert approval.decided_by == people["approver"]
    assert approval.requested_by == people["dev"]
    assert Flow.objects.get(integration=production).description == "Paid only"
    # Nothing waits any more: the badge is gone.
    approver.goto("/")
    expect(approver.locator(".topnav .count-badge")).to_have_count(0)
    approver.context.close()


def test_requester_cannot_approve_even_as_approver_or_by_posting(page, login, production):
    # An approver who asks for approval of their own pull still needs someone else.
    UserFactory(username="ally", role=Role.APPROVER)
    login("ally")
    pull = clone_and_pull(page, production, clone_name="Ally sandbox", description="Ally's change")
    page.get_by_test_id("merge-button").click()
    expect(page.locator("#merge-box")).to_contain_text("another approver must give it")
    expect(page.get_by_test_id("approve-button")).to_have_count(0)
    # The queue lists it as theirs, and the badge does not count it.
    page.goto("/approvals/")
    expect(page.locator("table")).to_contain_text("Yours, waiting for another approver")
    expect(page.locator(".topnav .count-badge")).to_have_count(0)
    status = page.evaluate(
        """async (url) => {
            const token = document.cookie.match(/csrftoken=([^;]+)/)[1];
            const r = await fetch(url, {method: 'POST', headers: {'X-CSRFToken': token}});
            return r.status;
        }""",
        f"/revisions/{pull.pk}/approve/",
    )
    assert status == 403
    pull.refresh_from_db()
    assert pull.status == RevisionStatus.AWAITING_APPROVAL
    assert Approval.objects.get(revision=pull).decision == ApprovalDecision.PENDING
