"""The navigation's Approvals link counts the requests waiting for the signed-in approver
(`revisions.context_processors.approvals`), on every page."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from integrations.models import Role
from revisions.models import Revision, RevisionStatus, RevisionType
from tests.factories import IntegrationFactory

pytestmark = pytest.mark.django_db


def _awaiting(integration, number: int) -> Revision:
    return Revision.objects.create(
        integration=integration,
        number=number,
        type=RevisionType.PULL,
        status=RevisionStatus.AWAITING_APPROVAL,
        description=f"Pull {number}",
    )


def test_approvers_see_how_many_requests_wait_for_them_in_the_navigation(
    approver_client, integration
):
    _awaiting(integration, 1)
    _awaiting(IntegrationFactory(), 1)  # one open operation per integration
    for page in (
        reverse("integrations:home"),
        reverse("integrations:detail", args=[integration.pk]),
    ):
        html = approver_client.get(page).content.decode()
        assert 'class="count-badge" title="2 waiting for approval">2</span>' in html


def test_without_waiting_requests_the_approvals_link_has_no_count(approver_client, integration):
    html = approver_client.get(reverse("integrations:home")).content.decode()
    assert "Approvals" in html and "waiting for approval" not in html


def test_users_who_cannot_approve_have_no_approvals_link_or_count(dev_client, integration):
    _awaiting(integration, 1)
    html = dev_client.get(reverse("integrations:home")).content.decode()
    assert reverse("revisions:approvals") not in html
    assert "waiting for approval" not in html


@pytest.mark.parametrize("waiting", [3, 8])
def test_home_counts_a_short_and_a_long_queue_alike_in_the_navigation_and_the_panel(
    approver_client, waiting
):
    # The navigation and the home page's panel share one read of the queue's head; a
    # queue longer than the panel lists is counted in full.
    for _ in range(waiting):
        _awaiting(IntegrationFactory(), 1)
    html = approver_client.get(reverse("integrations:home")).content.decode()
    assert f'title="{waiting} waiting for approval">{waiting}</span>' in html
    assert f'title="{waiting} waiting for your decision">{waiting}</span>' in html


def _queue_reads(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        client.get(reverse("integrations:home"))
    return sum(1 for q in queries if 'FROM "revisions_revision"' in q["sql"])


def test_the_home_page_reads_the_approval_queue_once_and_then_until_it_changes(
    approver_client,
):
    for _ in range(3):
        _awaiting(IntegrationFactory(), 1)
    assert _queue_reads(approver_client) == 1
    # Kept in the cache until a write it depends on.
    assert _queue_reads(approver_client) == 0
    _awaiting(IntegrationFactory(), 1)
    assert _queue_reads(approver_client) == 1


def _badge(client) -> str:
    html = client.get(reverse("integrations:home")).content.decode()
    found = re.search(r'title="(\d+) waiting for approval"', html)
    return found.group(1) if found else ""


def test_the_count_follows_every_change_of_the_queue_at_once(
    approver_client, approver, integration
):
    request = _awaiting(integration, 1)
    assert _badge(approver_client) == "1"
    other = _awaiting(IntegrationFactory(), 1)
    assert _badge(approver_client) == "2"
    request.move_to(RevisionStatus.READY)  # sent back for changes
    assert _badge(approver_client) == "1"
    other.integration.delete()
    assert _badge(approver_client) == ""


def test_an_approver_whose_role_changes_loses_the_count_at_once(
    approver_client, approver, integration
):
    _awaiting(integration, 1)
    assert _badge(approver_client) == "1"
    approver.role = Role.DEVELOPER
    approver.save()
    html = approver_client.get(reverse("integrations:home")).content.decode()
    assert "waiting for approval" not in html


def test_the_panel_shows_a_renamed_integration_at_once(approver_client, integration):
    _awaiting(integration, 1)
    assert (
        "Storefront orders → ERP"
        in approver_client.get(reverse("integrations:home")).content.decode()
    )
    integration.name = "Webshop orders"
    integration.save()
    html = approver_client.get(reverse("integrations:home")).content.decode()
    assert "<strong>Webshop orders</strong>" in html


def test_each_approver_gets_their_own_queue_from_the_cache(
    approver_client, admin_client_, approver, integration
):
    from revisions.models import Approval

    request = _awaiting(integration, 1)
    Approval.objects.create(revision=request, requested_by=approver, changeset_hash="x")
    admin = admin_client_.get(reverse("integrations:home")).content.decode()
    assert 'title="1 waiting for your decision"' in admin
    mine = approver_client.get(reverse("integrations:home")).content.decode()
    assert "Yours, waiting for another approver" in mine
    assert "waiting for your decision" not in mine
