"""The navigation's Approvals link counts the requests waiting for the signed-in approver
(`revisions.context_processors.approvals`), on every page."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

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


def test_the_home_page_reads_the_approval_queue_once(approver_client):
    for _ in range(3):
        _awaiting(IntegrationFactory(), 1)
    approver_client.get(reverse("integrations:home"))
    with CaptureQueriesContext(connection) as queries:
        approver_client.get(reverse("integrations:home"))
    reads = [q["sql"] for q in queries if 'FROM "revisions_revision"' in q["sql"]]
    assert len(reads) == 1, reads
