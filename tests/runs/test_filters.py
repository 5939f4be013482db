"""The runs list and the errors list each have one FilterSet: the page, the API and (for
errors) both CSV downloads narrow alike for the same query string, and refuse the same
bad values."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from runs.models import ErrorKind, ErrorState, FlowError, Run, RunMode, RunStatus, RunTrigger
from tests.runs.conftest import build_flow

pytestmark = pytest.mark.django_db


def make_run(flow, *, days_ago: int = 0, **fields) -> Run:
    run = Run.objects.create(
        integration=flow.integration,
        flow=flow,
        flow_lineage_id=flow.lineage_id,
        flow_name=flow.name,
        mode=fields.pop("mode", RunMode.LIVE),
        trigger=fields.pop("trigger", RunTrigger.MANUAL),
        status=fields.pop("status", RunStatus.SUCCEEDED),
        **fields,
    )
    if days_ago:
        Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    return run


def make_error(flow, *, days_ago: int = 0, **fields) -> FlowError:
    seen = timezone.now() - timedelta(days=days_ago)
    step = flow.steps.order_by("position").last()
    defaults = {
        "integration": flow.integration,
        "flow_lineage_id": flow.lineage_id,
        "flow_name": flow.name,
        "step_lineage_id": step.lineage_id,
        "step_name": step.name,
        "fingerprint": uuid.uuid4().hex,
        "kind": ErrorKind.HTTP,
        "message": "The ERP answered HTTP 422",
        "record": {"order_id": 1},
        "first_seen": seen,
        "last_seen": seen,
    }
    return FlowError.objects.create(**{**defaults, **fields})


# Runs ----------------------------------------------------------------------------------


def runs_shown(client, integration, query: str) -> set[int]:
    html = client.get(f"{reverse('runs:tab', args=[integration.pk])}?{query}").content.decode()
    return {int(pk) for pk in re.findall(r'id="run-(\d+)"', html)}


def runs_listed(client, integration, query: str) -> set[int]:
    response = client.get(f"/api/v1/integrations/{integration.pk}/runs?{query}")
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_the_runs_tab_and_the_api_list_the_same_runs_for_a_query(monitor_client, sandbox):
    flow = build_flow(sandbox)
    other = build_flow(sandbox)
    ok = make_run(flow)
    failed = make_run(flow, status=RunStatus.FAILED)
    test = make_run(flow, mode=RunMode.TEST, trigger=RunTrigger.TEST)
    elsewhere = make_run(other)
    old = make_run(flow, days_ago=10)
    old_day = (timezone.now() - timedelta(days=10)).date()
    today = timezone.now().date()
    expected = {
        "": {ok.pk, failed.pk, test.pk, elsewhere.pk, old.pk},
        f"flow={other.lineage_id}": {elsewhere.pk},
        f"flow={flow.pk}": {ok.pk, failed.pk, test.pk, old.pk},
        "flow=not-a-flow": set(),
        "status=failed": {failed.pk},
        "mode=test": {test.pk},
        f"since={today}": {ok.pk, failed.pk, test.pk, elsewhere.pk},
        f"since={old_day}&until={old_day}": {old.pk},  # a date takes in its whole day
        "until=2000-01-01T00:00:00Z": set(),
        f"status=succeeded&mode=live&flow={flow.lineage_id}": {ok.pk, old.pk},
    }
    for query, ids in expected.items():
        assert runs_shown(monitor_client, sandbox, query) == ids, query
        assert runs_listed(monitor_client, sandbox, query) == ids, query


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("status=exploded", "status", "not one of the available choices"),
        ("mode=dry", "mode", "not one of the available choices"),
        ("since=last-week", "since", "Enter a date (YYYY-MM-DD) or an ISO 8601 date-time."),
        ("since=2026-05-02&until=2026-05-01", "until", "swap the dates"),
    ],
)
def test_a_bad_runs_filter_is_explained_and_lists_nothing(
    monitor_client, sandbox, query, field, message
):
    make_run(build_flow(sandbox))
    page = monitor_client.get(
        f"{reverse('runs:tab', args=[sandbox.pk])}?{query}",
        headers={"HX-Request": "true", "HX-Target": "runs-table"},
    )
    html = page.content.decode()
    assert message in html and 'role="alert"' in html and "a filter is not valid" in html
    assert runs_shown(monitor_client, sandbox, query) == set()
    api = monitor_client.get(f"/api/v1/integrations/{sandbox.pk}/runs?{query}")
    assert api.status_code == 400
    assert list(api.json()["errors"]) == [field]
    assert message in " ".join(api.json()["errors"][field])


# Errors --------------------------------------------------------------------------------


def errors_shown(client, integration, query: str) -> set[int]:
    page = client.get(f"{reverse('runs:errors', args=[integration.pk])}?tab=open&{query}")
    return {int(pk) for pk in re.findall(r'id="error-(\d+)"', page.content.decode())}


def errors_listed(client, integration, query: str) -> set[int]:
    response = client.get(f"/api/v1/integrations/{integration.pk}/errors?state=open&{query}")
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def csv_ids(response) -> set[int]:
    assert response.status_code == 200, response
    text = b"".join(response.streaming_content).decode()
    return {int(row["id"]) for row in csv.DictReader(io.StringIO(text))}


def errors_in_csvs(client, integration, query: str) -> tuple[set[int], set[int]]:
    page_csv = client.get(f"{reverse('runs:errors_csv', args=[integration.pk])}?state=open&{query}")
    api_csv = client.get(f"/api/v1/integrations/{integration.pk}/errors.csv?state=open&{query}")
    return csv_ids(page_csv), csv_ids(api_csv)


def test_the_errors_tab_the_api_and_both_csvs_list_the_same_errors_for_a_query(
    dev_client, developer, sandbox
):
    flow = build_flow(sandbox)
    other = build_flow(sandbox)
    first_step = flow.steps.order_by("position").first()
    http = make_error(flow, assignee=developer)
    old = make_error(flow, days_ago=10, message="Customer c4@example.com is unknown")
    mapping = make_error(
        flow,
        kind=ErrorKind.MAPPING,
        step_lineage_id=first_step.lineage_id,
        step_name=first_step.name,
    )
    elsewhere = make_error(other)
    make_error(flow, state=ErrorState.RESOLVED)  # never on the open tab
    old_day = (timezone.now() - timedelta(days=10)).date()
    expected = {
        "": {http.pk, old.pk, mapping.pk, elsewhere.pk},
        f"flow={other.lineage_id}": {elsewhere.pk},
        f"step={first_step.lineage_id}": {mapping.pk},
        "kind=mapping": {mapping.pk},
        "assignee=dev": {http.pk},
        "assignee=none": {old.pk, mapping.pk, elsewhere.pk},
        "q=c4%40example": {old.pk},
        f"since={old_day}&until={old_day}": {old.pk},
        f"flow={flow.lineage_id}&kind=http": {http.pk, old.pk},
    }
    for query, ids in expected.items():
        assert errors_shown(dev_client, sandbox, query) == ids, query
        assert errors_listed(dev_client, sandbox, query) == ids, query
        assert errors_in_csvs(dev_client, sandbox, query) == (ids, ids), query


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("kind=cosmic", "kind", "not one of the available choices"),
        ("until=2026-13-01", "until", "That date does not exist."),
        ("since=2026-05-02&until=2026-05-01", "until", "swap the dates"),
    ],
)
def test_a_bad_errors_filter_is_explained_and_lists_nothing(
    dev_client, sandbox, query, field, message
):
    make_error(build_flow(sandbox))
    page = dev_client.get(f"{reverse('runs:errors', args=[sandbox.pk])}?{query}")
    assert message in page.content.decode() and "a filter is not valid" in page.content.decode()
    assert errors_shown(dev_client, sandbox, query) == set()

    api = dev_client.get(f"/api/v1/integrations/{sandbox.pk}/errors?{query}")
    assert api.status_code == 400 and list(api.json()["errors"]) == [field]

    for csv_url in (
        reverse("runs:errors_csv", args=[sandbox.pk]),
        f"/api/v1/integrations/{sandbox.pk}/errors.csv",
    ):
        refused = dev_client.get(f"{csv_url}?{query}")
        assert refused.status_code == 400, csv_url
        assert field in refused.content.decode() and "id,state" not in refused.content.decode()
