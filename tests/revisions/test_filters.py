"""An integration's revisions have one FilterSet: the Revisions tab and
GET /api/v1/integrations/{id}/revisions narrow alike for the same query string, and
refuse the same bad values."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from revisions import services
from revisions.models import Revision, RevisionStatus

pytestmark = pytest.mark.django_db


def shown(client, integration, query: str) -> set[int]:
    tab = reverse("revisions:tab", args=[integration.pk])
    html = client.get(f"{tab}?{query}").content.decode()
    return {int(pk) for pk in re.findall(r'id="rev-(\d+)"', html)}


def listed(client, integration, query: str) -> set[int]:
    response = client.get(f"/api/v1/integrations/{integration.pk}/revisions?{query}")
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_the_tab_and_the_api_list_the_same_revisions_for_a_query(
    dev_client, integration, developer, approver
):
    mine = services.snapshot_create(integration=integration, user=developer, description="Mine")
    old = services.snapshot_create(integration=integration, user=approver, description="Old")
    failed = services.snapshot_create(integration=integration, user=approver, description="Bad")
    ten_days_ago = timezone.now() - timedelta(days=10)
    Revision.objects.filter(pk=old.pk).update(created_at=ten_days_ago)
    Revision.objects.filter(pk=failed.pk).update(status=RevisionStatus.FAILED)
    today = timezone.now().date()
    old_day = ten_days_ago.date()
    expected = {
        "": {mine.pk, old.pk, failed.pk},
        "type=snapshot": {mine.pk, old.pk, failed.pk},
        "type=pull": set(),
        "status=failed": {failed.pk},
        "created_by=dev": {mine.pk},
        "created_by=april&status=completed": {old.pk},
        "created_by=nobody": set(),
        f"since={today}": {mine.pk, failed.pk},
        f"until={old_day}": {old.pk},  # a date takes in its whole day
        f"since={old_day}&until={old_day}": {old.pk},
        f"until={ten_days_ago.isoformat().replace('+00:00', 'Z')}": {old.pk},
        # Any offset ISO 8601 allows, also beyond what PostgreSQL stores (found by the fuzz).
        "until=2000-01-01T00:00:00%2B21:34": set(),
        "since=2000-01-01T00:00:00%2B21:34": {mine.pk, old.pk, failed.pk},
    }
    for query, ids in expected.items():
        assert shown(dev_client, integration, query) == ids, query
        assert listed(dev_client, integration, query) == ids, query


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("status=exploded", "status", "not one of the available choices"),
        ("type=branch", "type", "not one of the available choices"),
        ("since=yesterday", "since", "Enter a date (YYYY-MM-DD) or an ISO 8601 date-time."),
        ("until=2026-02-30", "until", "That date does not exist."),
        ("since=2026-05-02&until=2026-05-01", "until", "swap the dates"),
    ],
)
def test_a_bad_filter_value_is_explained_and_lists_nothing(
    dev_client, integration, developer, query, field, message
):
    services.snapshot_create(integration=integration, user=developer, description="Kept")
    tab = reverse("revisions:tab", args=[integration.pk])
    page = dev_client.get(f"{tab}?{query}", headers={"HX-Request": "true"})
    html = page.content.decode()
    assert page.status_code == 200
    assert message in html and "a filter is not valid" in html
    assert shown(dev_client, integration, query) == set()

    api = dev_client.get(f"/api/v1/integrations/{integration.pk}/revisions?{query}")
    assert api.status_code == 400
    body = api.json()
    assert list(body["errors"]) == [field] and message in " ".join(body["errors"][field])
    assert "results" not in body
