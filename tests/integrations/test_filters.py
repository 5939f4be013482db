"""The integrations list has one FilterSet: the home tiles and GET /api/v1/integrations
narrow alike for the same query string, and refuse the same bad values."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from integrations.models import Environment
from tests.factories import IntegrationFactory

pytestmark = pytest.mark.django_db

HOME = reverse("integrations:home")
API = "/api/v1/integrations"


def tiles(client, query: str) -> set[int]:
    html = client.get(f"{HOME}?{query}").content.decode()
    return {int(pk) for pk in re.findall(r'data-integration="(\d+)"', html)}


def listed(client, query: str) -> set[int]:
    response = client.get(f"{API}?{query}")
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


@pytest.fixture
def estate(db):
    crm = IntegrationFactory(name="CRM contacts", environment=Environment.PRODUCTION)
    crm_clone = IntegrationFactory(
        name="CRM sandbox", environment=Environment.SANDBOX, cloned_from=crm
    )
    carrier = IntegrationFactory(name="Carrier tracking", environment=Environment.SANDBOX)
    return {"crm": crm, "crm_clone": crm_clone, "carrier": carrier}


def test_the_home_tiles_and_the_api_show_the_same_integrations_for_a_query(approver_client, estate):
    crm, clone, carrier = estate["crm"], estate["crm_clone"], estate["carrier"]
    expected = {
        "": {crm.pk, clone.pk, carrier.pk},
        "name=crm": {crm.pk, clone.pk},
        "name=CRM&environment=sandbox": {clone.pk},
        "environment=sandbox": {clone.pk, carrier.pk},
        f"cloned_from={crm.pk}": {clone.pk},
        "name=nothing-like-it": set(),
    }
    for query, ids in expected.items():
        assert tiles(approver_client, query) == ids, query
        assert listed(approver_client, query) == ids, query


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("environment=moon", "environment"),
        ("cloned_from=abc", "cloned_from"),
        ("cloned_from=99999999999999999999", "cloned_from"),
    ],
)
def test_a_bad_filter_value_is_explained_and_lists_nothing(approver_client, estate, query, field):
    page = approver_client.get(f"{HOME}?{query}")
    html = page.content.decode()
    assert page.status_code == 200
    assert "a filter is not valid" in html and 'role="alert"' in html
    assert tiles(approver_client, query) == set()

    api = approver_client.get(f"{API}?{query}")
    assert api.status_code == 400
    body = api.json()
    assert set(body) == {"detail", "errors"} and list(body["errors"]) == [field]
    assert "results" not in body
