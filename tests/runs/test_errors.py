"""Error management over real HTTP: a local pytest-httpserver plays the shop and the ERP.

A live run's failed records become open errors (duplicates fold); a retry sends them again
from the failing step on with the flow as it is now; resolve and assign are audited; who
may do what follows the one role table.
"""

from __future__ import annotations

import pytest

from audit.models import Event
from integrations.models import AccessLevel, Environment, FlowStep
from runs.errors import errors_prune_retry_data, errors_retry_execute, retry_data_of
from runs.models import ErrorRetry, ErrorState, FlowError
from runs.services import MASK
from tests.api.conftest import token_client
from tests.factories import GrantFactory, IntegrationFactory, UserFactory
from tests.runs.conftest import ERP_TOKEN, build_flow, run_once

pytestmark = pytest.mark.django_db


def retry(api, integration, ids, records=None, capture=None):
    body = {"ids": ids}
    if records is not None:
        body["records"] = records
    with capture(execute=True):
        response = api.post(
            f"/api/v1/integrations/{integration.pk}/errors/retry", body, format="json"
        )
    return response


def test_failed_records_of_a_live_run_become_open_errors_with_masked_records(live_flow, erp):
    erp.reject = {2, 4}
    run = run_once(live_flow)
    assert run.status == "partial"
    errors = list(FlowError.objects.order_by("record_index"))
    assert [(e.kind, e.http_status, e.state, e.occurrences) for e in errors] == [
        ("http", 422, "open", 1),
        ("http", 422, "open", 1),
    ]
    first = errors[0]
    assert first.step_name == "Send to ERP" and first.flow_name == "Orders to ERP"
    assert first.record["order_id"] == 2 and first.record["password"] == MASK
    assert "no customer account" in first.response_excerpt
    # The retry data is the record as it entered the failing step, unmasked, encrypted.
    assert retry_data_of(first)["password"] == "pw2"
    assert "@example.com" not in first.retry_data


def test_the_same_record_failing_the_same_way_again_folds_into_one_error(live_flow, erp):
    erp.reject = {3}
    run_once(live_flow)
    second = run_once(live_flow)
    error = FlowError.objects.get()
    assert error.occurrences == 2 and error.run_id == second.pk
    assert error.last_seen >= error.first_seen


def test_a_retry_of_a_422_the_target_now_accepts_resolves_the_error(
    live_flow, erp, dev_api, django_capture_on_commit_callbacks
):
    erp.reject = {2}
    run_once(live_flow)
    error = FlowError.objects.get()
    erp.reject = set()
    erp.received.clear()
    response = retry(
        dev_api, live_flow.integration, [error.pk], capture=django_capture_on_commit_callbacks
    )
    assert response.status_code == 202, response.json()
    assert response.json()["status"] == "queued"
    # Sent again from the failing step on: the ERP got the mapped record, once.
    assert erp.received == [
        {"order_id": 2, "amount": 20, "email": "c2@example.com", "password": "pw2"}
    ]
    error.refresh_from_db()
    assert (error.state, error.resolved_by, error.retries) == ("resolved", "retry", 1)
    done = ErrorRetry.objects.get(pk=response.json()["id"])
    assert (done.status, done.succeeded, done.failed) == ("succeeded", 1, 0)
    body = dev_api.get(f"/api/v1/error-retries/{done.pk}").json()
    assert body["status"] == "succeeded" and body["succeeded"] == 1


def test_a_retry_that_fails_again_keeps_the_error_open_with_one_more_retry(
    live_flow, erp, dev_api, django_capture_on_commit_callbacks
):
    erp.reject = {2}
    run_once(live_flow)
    error = FlowError.objects.get()
    response = retry(
        dev_api, live_flow.integration, [error.pk], capture=django_capture_on_commit_callbacks
    )
    assert response.status_code == 202
    error.refresh_from_db()
    assert (error.state, error.retries, error.http_status) == ("open", 1, 422)
    assert ErrorRetry.objects.get().status == "failed"


def test_edited_retry_data_is_what_gets_sent_and_masked_values_stay_what_they_were(
    live_flow, erp, dev_api, django_capture_on_commit_callbacks
):
    erp.reject = {2}
    run_once(live_flow)
    error = FlowError.objects.get()
    erp.received.clear()
    edited = {
        "order_id": 2,
        "amount": 25,
        "email": "fixed@example.com",
        "password": MASK,  # as the editor shows it
    }
    erp.reject = {2}
    # The edit also gives the order a new id the ERP accepts.
    edited["order_id"] = 22
    response = retry(
        dev_api,
        live_flow.integration,
        [error.pk],
        records={str(error.pk): edited},
        capture=django_capture_on_commit_callbacks,
    )
    assert response.status_code == 202, response.json()
    assert erp.received == [
        {"order_id": 22, "amount": 25, "email": "fixed@example.com", "password": "pw2"}
    ]
    error.refresh_from_db()
    assert error.state == "resolved"


def test_bad_retry_input_is_refused_with_400_and_nothing_is_queued(live_flow, erp, dev_api):
    erp.reject = {2}
    run_once(live_flow)
    error = FlowError.objects.get()
    url = f"/api/v1/integrations/{live_flow.integration_id}/errors/retry"
    for body, field in [
        ({"ids": []}, "ids"),
        ({"ids": [error.pk + 1000]}, "ids"),
        ({"ids": [error.pk], "records": {str(error.pk): [1, 2]}}, "records"),
        ({"ids": [error.pk], "records": {"999999": {"a": 1}}}, "records"),
    ]:
        response = dev_api.post(url, body, format="json")
        assert response.status_code == 400, body
        assert any(k.startswith(field) for k in response.json()["errors"]), response.json()
    assert not ErrorRetry.objects.exists()


def test_resolve_with_a_comment_is_audited_and_leaves_the_error_resolved_by_the_user(
    live_flow, erp, dev_api, developer
):
    erp.reject = {1, 2}
    run_once(live_flow)
    ids = list(FlowError.objects.values_list("pk", flat=True))
    response = dev_api.post(
        f"/api/v1/integrations/{live_flow.integration_id}/errors/resolve",
        {"ids": ids, "comment": "Customer accounts fixed by hand"},
        format="json",
    )
    assert response.status_code == 200 and response.json() == {"resolved": 2}
    listed = dev_api.get(
        f"/api/v1/integrations/{live_flow.integration_id}/errors?state=resolved"
    ).json()["results"]
    assert {e["resolved_by"] for e in listed} == {"dev"}
    assert {e["comment"] for e in listed} == {"Customer accounts fixed by hand"}
    events = Event.objects.filter(action="error_resolved")
    assert events.count() == 2 and {e.username for e in events} == {"dev"}
    assert {"field": "comment", "old": None, "new": "Customer accounts fixed by hand"} in (
        events.first().changes
    )


def test_assigning_an_error_is_audited_and_needs_someone_who_can_see_it(
    live_flow, erp, dev_api, monitor, outsider
):
    erp.reject = {1}
    run_once(live_flow)
    error = FlowError.objects.get()
    response = dev_api.patch(
        f"/api/v1/errors/{error.pk}", {"assignee": monitor.username}, format="json"
    )
    assert response.status_code == 200 and response.json()["assignee"] == monitor.username
    event = Event.objects.get(action="error_assigned")
    assert event.changes == [{"field": "assignee", "old": None, "new": monitor.username}]
    refused = dev_api.patch(
        f"/api/v1/errors/{error.pk}", {"assignee": outsider.username}, format="json"
    )
    assert refused.status_code == 400 and "assignee" in refused.json()["errors"]
    error.refresh_from_db()
    assert error.assignee == monitor
    listed = dev_api.get(
        f"/api/v1/integrations/{live_flow.integration_id}/errors?assignee={monitor.username}"
    ).json()["results"]
    assert [e["id"] for e in listed] == [error.pk]


def test_monitors_see_errors_but_may_not_retry_resolve_or_assign(
    live_flow, erp, monitor_api, outsider_api
):
    erp.reject = {1}
    run_once(live_flow)
    error = FlowError.objects.get()
    base = f"/api/v1/integrations/{live_flow.integration_id}/errors"
    listed = monitor_api.get(base)
    assert listed.status_code == 200 and [e["id"] for e in listed.json()["results"]] == [error.pk]
    assert monitor_api.post(f"{base}/retry", {"ids": [error.pk]}, format="json").status_code == 403
    assert (
        monitor_api.post(f"{base}/resolve", {"ids": [error.pk]}, format="json").status_code == 403
    )
    assert (
        monitor_api.patch(
            f"/api/v1/errors/{error.pk}", {"assignee": None}, format="json"
        ).status_code
        == 403
    )
    assert outsider_api.get(base).status_code == 404
    assert outsider_api.get(f"/api/v1/errors/{error.pk}").status_code == 404
    error.refresh_from_db()
    assert error.state == "open" and error.assignee is None


def test_retrying_on_protected_production_needs_the_run_action(
    httpserver, erp, developer, approver, django_capture_on_commit_callbacks
):
    prod = IntegrationFactory(name="Prod", environment=Environment.PRODUCTION, protected=True)
    GrantFactory(integration=prod, user=developer, level=AccessLevel.MANAGE)
    flow = build_flow(
        prod,
        shop_url=httpserver.url_for("/shop").rstrip("/"),
        erp_url=httpserver.url_for("/erp").rstrip("/"),
    )
    erp.reject = {3}
    run_once(flow)
    error = FlowError.objects.get()
    erp.reject = set()
    dev = retry(
        token_client(developer), prod, [error.pk], capture=django_capture_on_commit_callbacks
    )
    assert dev.status_code == 403
    # The developer may still resolve: that sends nothing.
    assert (
        token_client(approver)
        .post(f"/api/v1/integrations/{prod.pk}/errors/retry", {"ids": [error.pk]}, format="json")
        .status_code
        == 202
    )


def test_filters_search_and_csv_share_one_filterset(live_flow, erp, dev_api):
    erp.reject = {2, 5}
    run_once(live_flow)
    base = f"/api/v1/integrations/{live_flow.integration_id}/errors"
    step = FlowStep.objects.get(flow=live_flow, name="Send to ERP")
    assert len(dev_api.get(f"{base}?step={step.lineage_id}").json()["results"]) == 2
    assert len(dev_api.get(f"{base}?flow={live_flow.pk}&kind=http").json()["results"]) == 2
    assert dev_api.get(f"{base}?kind=script").json()["results"] == []
    found = dev_api.get(f"{base}?q=c5%40example").json()["results"]
    assert [e["record"]["order_id"] for e in found] == [5]
    csv = dev_api.get(f"{base}.csv?q=c5%40example")
    assert csv.status_code == 200
    text = b"".join(csv.streaming_content).decode()
    lines = text.strip().splitlines()
    assert lines[0].startswith("id,state,flow") and len(lines) == 2 and "c5@example.com" in lines[1]
    assert "pw5" not in text and ERP_TOKEN not in text


def test_retry_data_is_kept_for_the_most_recent_errors_of_a_step_only(live_flow, erp):
    erp.reject = {1, 2, 3, 4, 5}
    run_once(live_flow)
    assert errors_prune_retry_data(keep=2) == 3
    kept = FlowError.objects.filter(retry_data__isnull=False).count()
    assert kept == 2 and FlowError.objects.count() == 5  # summaries stay


def test_a_retry_delivered_twice_does_not_send_twice(
    live_flow, erp, developer, django_capture_on_commit_callbacks
):
    from runs.errors import errors_retry_start

    erp.reject = {2}
    run_once(live_flow)
    error = FlowError.objects.get()
    erp.reject = set()
    erp.received.clear()
    made = errors_retry_start(integration=live_flow.integration, user=developer, ids=[error.pk])
    errors_retry_execute(retry_id=made.pk)
    again = errors_retry_execute(retry_id=made.pk)
    assert again.status == "succeeded" and len(erp.received) == 1


def test_a_retry_of_an_error_resolved_meanwhile_sends_nothing(live_flow, erp, developer):
    from runs.errors import errors_resolve, errors_retry_start

    erp.reject = {2}
    run_once(live_flow)
    error = FlowError.objects.get()
    made = errors_retry_start(integration=live_flow.integration, user=developer, ids=[error.pk])
    errors_resolve(integration=live_flow.integration, user=developer, ids=[error.pk])
    erp.received.clear()
    done = errors_retry_execute(retry_id=made.pk)
    assert erp.received == [] and done.skipped == 1
    assert FlowError.objects.get().state == ErrorState.RESOLVED


@pytest.fixture
def other_manager(db, sandbox):
    user = UserFactory(username="mia")
    GrantFactory(integration=sandbox, user=user, level=AccessLevel.MANAGE)
    return user


def test_the_prune_command_keeps_retry_data_for_the_most_recent_errors_per_step(live_flow, erp):
    from io import StringIO

    from django.core.management import call_command

    erp.reject = {1, 2, 3, 4, 5}
    run_once(live_flow)
    out = StringIO()
    call_command("prune_error_retry_data", "--keep", "3", stdout=out)
    assert "Dropped the retry data of 2 error(s); kept 3 per step." in out.getvalue()
    assert FlowError.objects.filter(retry_data__isnull=False).count() == 3


def test_the_error_list_pages_with_next_links_and_no_count(
    live_flow, erp, dev_api, django_assert_max_num_queries
):
    erp.reject = {1, 2, 3, 4, 5}
    run_once(live_flow)
    base = f"/api/v1/integrations/{live_flow.integration_id}/errors?page_size=2"
    with django_assert_max_num_queries(6):
        first = dev_api.get(base).json()
    assert len(first["results"]) == 2 and "page=2" in first["next"]
    third = dev_api.get(f"{base}&page=3").json()
    assert len(third["results"]) == 1 and third["next"] is None
    seen = {e["id"] for e in first["results"]} | {e["id"] for e in third["results"]}
    seen |= {e["id"] for e in dev_api.get(f"{base}&page=2").json()["results"]}
    assert len(seen) == 5
    assert dev_api.get(f"{base}&page=4").status_code == 404
    # An offset PostgreSQL refuses (past ±15:59) is read in UTC, not sent as given.
    assert dev_api.get(f"{base}&since=2026-12-02T00:00:00-19:23").status_code == 200
    assert len(dev_api.get(f"{base}&until=3553-09-12T17:44:11-19:23").json()["results"]) == 2
    # A page number past any database offset is the same "Invalid page.", not a 500.
    huge = dev_api.get(f"{base}&page=99999999999999999999")
    assert huge.status_code == 404 and huge.json()["detail"] == "Invalid page."
