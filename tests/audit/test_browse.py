"""The audit pages, CSV download and API: filters, cursor pages, permissions, streaming."""

import csv
import io
import uuid

import pytest
from django.core.cache import cache
from django.http import StreamingHttpResponse
from django.test import Client
from django.urls import reverse

from audit.context import Source, acting
from audit.models import Event
from audit.selectors import FACETS_KEY
from integrations import services
from integrations.models import Script
from tests.factories import (
    ConnectionFactory,
    FlowFactory,
    GrantFactory,
    IntegrationFactory,
    ScriptFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def other(db):
    """An integration the developer and the monitor hold no grant on."""
    return IntegrationFactory(name="Payroll export")


@pytest.fixture
def history(integration, other, developer):
    with acting(developer, Source.UI):
        flow = FlowFactory(integration=integration, name="Orders sync")
        services.resource_update(instance=flow, data={"description": "Every 15 minutes"})
        ScriptFactory(integration=integration, name="Reshape", code="a\nb\nc\n")
    FlowFactory(integration=other, name="Salaries")
    return flow


def _csv(response) -> list[dict]:
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


# Pages -------------------------------------------------------------------------------


def test_global_page_is_for_administrators_only(history, admin_client_, dev_client):
    assert dev_client.get(reverse("audit:log")).status_code == 403
    assert Client().get(reverse("audit:log")).status_code == 302  # to sign in
    response = admin_client_.get(reverse("audit:log"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Orders sync" in body and "Salaries" in body and "Reshape" in body


def test_global_page_filters(history, admin_client_, integration):
    url = reverse("audit:log")
    body = admin_client_.get(url, {"q": "orders", "action": "updated"}).content.decode()
    assert "Orders sync" in body and "Reshape" not in body and "Salaries" not in body
    body = admin_client_.get(url, {"resource_type": "script"}).content.decode()
    assert "Reshape" in body and "Orders sync" not in body
    body = admin_client_.get(url, {"user": "dev", "source": "ui"}).content.decode()
    assert "Orders sync" in body and "Salaries" not in body
    body = admin_client_.get(url, {"integration": integration.pk}).content.decode()
    assert "Salaries" not in body and "Orders sync" in body
    body = admin_client_.get(url, {"until": "2000-01-01"}).content.decode()
    assert "No events match these filters" in body


def test_bad_filter_is_a_clear_400(admin_client_):
    response = admin_client_.get(reverse("audit:log"), {"since": "last tuesday", "action": "x"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Enter a date (YYYY-MM-DD)" in body and "Select a valid choice" in body
    response = admin_client_.get(reverse("audit:log"), {"cursor": "garbage!"})
    assert response.status_code == 400
    assert "start again from the first page" in response.content.decode()


def test_operation_link_shows_the_whole_group(integration, developer, admin_client_):
    op = uuid.uuid4()
    with acting(developer, Source.ILM, operation_id=op):
        for i in range(3):
            FlowFactory(integration=integration, name=f"Merged flow {i}")
    FlowFactory(integration=integration, name="Unrelated")
    body = admin_client_.get(reverse("audit:log"), {"operation": str(op)}).content.decode()
    assert body.count("Merged flow") == 3 and "Unrelated" not in body
    assert "One operation" in body


def test_cursor_pages_walk_newest_first_without_gaps(integration, admin_client_):
    for i in range(120):
        FlowFactory(integration=integration, name=f"F{i:03d}")
    url = reverse("audit:log")
    seen: list[int] = []
    response = admin_client_.get(url, {"resource_type": "flow"})
    while True:
        ids = [e["event"].pk for e in response.context["events"]]
        seen += ids
        if not response.context["older_url"]:
            break
        response = admin_client_.get(response.context["older_url"])
    expected = list(
        Event.objects.filter(resource_type="flow")
        .order_by("-at", "-id")
        .values_list("pk", flat=True)
    )
    assert seen == expected and len(seen) == 120


def test_list_page_query_count_does_not_grow_with_events(
    integration, admin_client_, django_assert_max_num_queries
):
    """At 1 and at 61 events: the first view after new events reads the filter choices
    again (a new event may be a new integration), the next one takes them from the cache;
    neither count grows with the events."""
    url = reverse("audit:log")
    FlowFactory(integration=integration)
    admin_client_.get(url)  # warm the session
    cache.delete(FACETS_KEY)
    with django_assert_max_num_queries(12) as cold:
        admin_client_.get(url)
    with django_assert_max_num_queries(len(cold.captured_queries) - 2) as warm:
        admin_client_.get(url)
    for _ in range(60):
        ScriptFactory(integration=integration)
    with django_assert_max_num_queries(len(cold.captured_queries)):
        admin_client_.get(url)
    with django_assert_max_num_queries(len(warm.captured_queries)):
        response = admin_client_.get(url)
    assert len(response.context["events"]) == 50


def test_integration_tab_for_anyone_who_can_see_it(history, integration, other, monitor_client):
    url = reverse("audit:integration", args=[integration.pk])
    response = monitor_client.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Orders sync" in body and "Salaries" not in body
    # Another integration's id in the query cannot widen the tab.
    body = monitor_client.get(url, {"integration": other.pk}).content.decode()
    assert "Salaries" not in body and "Orders sync" in body
    assert monitor_client.get(reverse("audit:integration", args=[other.pk])).status_code == 404


def test_expanded_row_shows_field_changes_with_a_diff(history, integration, dev_client):
    script = Event.objects.get(resource_type="script", action="created").resource_id
    services.resource_update(instance=Script.objects.get(pk=script), data={"code": "a\nB\nc\n"})
    updated = Event.objects.get(resource_type="script", action="updated")
    response = dev_client.get(reverse("audit:event", args=[updated.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body
    assert "dl-changed" in body  # code shown as a line diff, line by line

    created = Event.objects.get(resource_type="script", action="created")
    body = dev_client.get(reverse("audit:event", args=[created.pk])).content.decode()
    assert "<html" in body and "au-values" in body and "Reshape" in body


def test_events_of_unseen_integrations_are_404(history, other, dev_client):
    hidden = Event.objects.filter(integration_id=other.pk).first()
    assert dev_client.get(reverse("audit:event", args=[hidden.pk])).status_code == 404


def test_csv_download_is_streamed_one_row_per_field_change(history, admin_client_):
    response = admin_client_.get(reverse("audit:csv"), {"action": "updated"})
    assert response["Content-Type"].startswith("text/csv")
    rows = _csv(response)
    assert rows == [
        {
            **rows[0],
            "field": "description",
            "old": "Sync records",
            "new": "Every 15 minutes",
            "action": "updated",
            "resource_name": "Orders sync",
            "user": "dev",
        }
    ]
    created = _csv(admin_client_.get(reverse("audit:csv"), {"resource_type": "script"}))
    assert {r["field"] for r in created} >= {"name", "function", "code"}


def test_csv_cells_cannot_run_as_formulas(integration, admin_client_):
    FlowFactory(integration=integration, name="=HYPERLINK(evil)", description="-5")
    rows = _csv(admin_client_.get(reverse("audit:csv")))
    names = {r["resource_name"] for r in rows}
    assert "'=HYPERLINK(evil)" in names
    assert "-5" in {r["new"] for r in rows}


def test_integration_csv_needs_access(history, integration, other, dev_client):
    rows = _csv(dev_client.get(reverse("audit:integration_csv", args=[integration.pk])))
    assert rows and {r["integration_id"] for r in rows} == {str(integration.pk)}
    assert dev_client.get(reverse("audit:integration_csv", args=[other.pk])).status_code == 404
    assert dev_client.get(reverse("audit:csv")).status_code == 403


# API ---------------------------------------------------------------------------------


def test_api_lists_events_with_cursor_pages(integration, admin_client_):
    for i in range(7):
        FlowFactory(integration=integration, name=f"F{i}")
    first = admin_client_.get("/api/v1/audit", {"resource_type": "flow", "page_size": 5}).json()
    assert [r["resource_name"] for r in first["results"]] == [f"F{i}" for i in range(6, 1, -1)]
    event = first["results"][0]
    assert set(event) >= {
        "id", "at", "user", "source", "integration", "revision", "resource_type",
        "resource_id", "resource_name", "action", "changes",
    }  # fmt: skip
    assert event["action"] == "created" and event["integration"] == integration.pk
    assert {"field": "name", "old": None, "new": "F6"} in event["changes"]
    second = admin_client_.get(first["next"]).json()
    assert [r["resource_name"] for r in second["results"]] == ["F1", "F0"]
    assert second["next"] is None


def test_api_developer_sees_only_visible_integrations(history, integration, other, developer):
    client = Client()
    client.force_login(developer)
    data = client.get("/api/v1/audit").json()
    assert data["results"] and {r["integration"] for r in data["results"]} == {integration.pk}
    assert client.get("/api/v1/audit", {"integration": other.pk}).status_code == 404
    # Sign-ins and other events without an integration are for the global log only.
    client.post("/logout/")
    client.force_login(developer)
    assert not [
        r for r in client.get("/api/v1/audit").json()["results"] if r["integration"] is None
    ]


def test_api_bad_input_is_400_with_errors(admin_client_):
    response = admin_client_.get("/api/v1/audit", {"since": "soon", "page_size": 0})
    assert response.status_code == 400
    assert "since" in response.json()["errors"]
    response = admin_client_.get("/api/v1/audit", {"cursor": "nope"})
    assert response.status_code == 400 and "cursor" in response.json()["errors"]
    response = admin_client_.get("/api/v1/audit", {"page_size": 501})
    assert response.status_code == 400 and "page_size" in response.json()["errors"]


def test_api_needs_a_token_or_session(history):
    assert Client().get("/api/v1/audit").status_code == 401
    assert Client().get("/api/v1/audit.csv").status_code == 401


def test_api_csv_with_a_bearer_token(history, developer, integration):
    _token, raw = services.api_token_create(user=developer, name="CI")
    client = Client(headers={"Authorization": f"Bearer {raw}", "Accept": "text/csv"})
    rows = _csv(client.get("/api/v1/audit.csv", {"resource_type": "flow"}))
    assert rows and {r["integration_id"] for r in rows} == {str(integration.pk)}
    assert client.get("/api/v1/audit.csv", {"action": "nope"}).status_code == 400


def test_api_monitor_sees_granted_integration_only(history, integration, monitor):
    client = Client()
    client.force_login(monitor)
    assert client.get("/api/v1/audit", {"integration": integration.pk}).status_code == 200
    outsider = UserFactory(username="outsider")
    client.force_login(outsider)
    assert client.get("/api/v1/audit").json()["results"] == []
    assert client.get("/api/v1/audit", {"integration": integration.pk}).status_code == 404
    GrantFactory(integration=integration, user=outsider, level="monitor")
    ConnectionFactory(integration=integration, name="Seen now")
    client.force_login(outsider)
    names = [r["resource_name"] for r in client.get("/api/v1/audit").json()["results"]]
    assert "Seen now" in names


@pytest.mark.parametrize(
    "params",
    [
        {"until": "9999-12-31"},
        {"since": "2026-02-30"},
        {"integration": "1" + "0" * 30},
        {"q": "nul\x00byte"},
        {"operation": "not-a-uuid"},
        {"page_size": "lots"},
    ],
)
def test_api_odd_filter_values_are_answered_not_crashed(admin_client_, dev_client, params):
    for client in (admin_client_, dev_client):
        response = client.get("/api/v1/audit", params)
        assert response.status_code in (200, 400)
        if response.status_code == 400:
            assert response.json()["detail"]


def test_date_range_takes_whole_days(integration, admin_client_):
    FlowFactory(integration=integration, name="Today's flow")
    event = Event.objects.get(resource_name="Today's flow")
    day = event.at.date()
    url = reverse("audit:log")
    for params, shown in [
        ({"since": day.isoformat(), "until": day.isoformat()}, True),
        ({"until": str(day.fromordinal(day.toordinal() - 1))}, False),
        ({"since": str(day.fromordinal(day.toordinal() + 1))}, False),
        ({"until": event.at.isoformat()}, True),
    ]:
        body = admin_client_.get(url, params).content.decode()
        assert ("Today&#x27;s flow" in body) is shown, params


def test_integration_tab_query_count_does_not_grow_with_events(
    integration, dev_client, django_assert_max_num_queries
):
    url = reverse("audit:integration", args=[integration.pk])
    FlowFactory(integration=integration)
    dev_client.get(url)
    # Both measured views start from an empty cache: the pages keep per-version parts
    # there (tab counts, unread notifications), and the writes below make new keys.
    cache.clear()
    with django_assert_max_num_queries(20) as few:
        dev_client.get(url)
    for _ in range(60):
        ScriptFactory(integration=integration)
    cache.clear()
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = dev_client.get(url)
    assert response.status_code == 200 and len(response.context["events"]) == 50
