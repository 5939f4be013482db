"""The runs API per docs/api.md: start, list, detail, errors, cancel; who may do what."""

import pytest

from integrations.models import AccessLevel, Environment
from runs.models import Run, RunStatus
from runs.services import MASK, run_execute
from tests.api.conftest import token_client
from tests.factories import GrantFactory, IntegrationFactory, UserFactory
from tests.runs.conftest import ERP_TOKEN, build_flow

pytestmark = pytest.mark.django_db


def post_run(api, flow, body=None):
    return api.post(f"/api/v1/flows/{flow.pk}/runs", body or {"mode": "live"}, format="json")


def test_a_developer_who_manages_a_sandbox_starts_a_live_run_202_queued(dev_api, flow):
    response = post_run(dev_api, flow)
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "queued" and body["mode"] == "live" and body["trigger"] == "api"
    assert body["flow"] == flow.pk and body["integration"] == flow.integration_id
    assert body["output"] is None and body["steps"] == []
    assert Run.objects.get(pk=body["id"]).created_by.username == "dev"


def test_a_second_live_run_of_a_running_flow_is_409_and_changes_nothing(dev_api, flow):
    assert post_run(dev_api, flow).status_code == 202
    response = post_run(dev_api, flow)
    assert response.status_code == 409
    assert "already running" in response.json()["detail"]
    assert Run.objects.count() == 1


def test_a_monitor_may_watch_runs_but_not_start_or_cancel_them(monitor_api, dev_api, flow):
    started = post_run(dev_api, flow).json()
    response = post_run(monitor_api, flow)
    assert response.status_code == 403 and "run" in response.json()["detail"]
    assert post_run(monitor_api, flow, {"mode": "test", "records": [{"id": 1}]}).status_code == 403
    assert monitor_api.get(f"/api/v1/runs/{started['id']}").status_code == 200
    assert monitor_api.post(f"/api/v1/runs/{started['id']}/cancel").status_code == 403
    assert Run.objects.get(pk=started["id"]).status == RunStatus.QUEUED


def test_an_integration_the_user_cannot_see_is_404_everywhere(outsider_api, dev_api, flow):
    run_id = post_run(dev_api, flow).json()["id"]
    assert post_run(outsider_api, flow).status_code == 404
    assert outsider_api.get(f"/api/v1/integrations/{flow.integration_id}/runs").status_code == 404
    assert outsider_api.get(f"/api/v1/runs/{run_id}").status_code == 404
    assert outsider_api.get(f"/api/v1/runs/{run_id}/errors").status_code == 404
    assert outsider_api.post(f"/api/v1/runs/{run_id}/cancel").status_code == 404
    assert (
        dev_api.post("/api/v1/flows/999999/runs", {"mode": "live"}, format="json").status_code
        == 404
    )


def test_on_production_only_approvers_and_administrators_start_live_runs_by_hand(
    developer, approver_api, admin_api
):
    prod = IntegrationFactory(name="Prod", environment=Environment.PRODUCTION)
    GrantFactory(integration=prod, user=developer, level=AccessLevel.MANAGE)
    flow = build_flow(prod)
    dev_api = token_client(developer)
    refused = post_run(dev_api, flow)
    assert refused.status_code == 403
    # A test run sends nothing: editing rights are enough.
    test_run = post_run(dev_api, flow, {"mode": "test", "records": [{"id": 1}]})
    assert test_run.status_code == 202 and test_run.json()["trigger"] == "test"
    assert post_run(approver_api, flow).status_code == 202
    Run.objects.filter(mode="live").update(status=RunStatus.SUCCEEDED)
    assert post_run(admin_api, flow).status_code == 202


def test_a_developer_with_only_monitor_access_cannot_run(dev_api, flow):
    viewer = UserFactory(username="vic")
    GrantFactory(integration=flow.integration, user=viewer, level=AccessLevel.MONITOR)
    api = token_client(viewer)
    assert post_run(api, flow).status_code == 403
    assert post_run(api, flow, {"mode": "test", "records": [{"id": 1}]}).status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mode": "sideways"}, "mode"),
        ({"mode": "test", "records": "x"}, "records"),
        ({"mode": "test", "records": [1]}, "records[0]"),
        ({"mode": "test", "records": []}, "records"),
        ({"mode": "live", "records": [{"id": 1}]}, "records"),
    ],
)
def test_bad_input_is_400_with_the_field_and_creates_nothing(dev_api, flow, body, field):
    response = post_run(dev_api, flow, body)
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not Run.objects.exists()


def test_a_test_run_without_records_or_samples_is_400(dev_api, flow):
    response = post_run(dev_api, flow, {"mode": "test"})
    assert response.status_code == 400 and "samples" in response.json()["detail"]
    assert "samples" in response.json()["errors"]["records"][0]


def test_a_disabled_flow_is_400(dev_api, flow):
    flow.enabled = False
    flow.save()
    response = post_run(dev_api, flow)
    assert response.status_code == 400 and "disabled" in response.json()["detail"]
    assert "disabled" in response.json()["errors"]["non_field_errors"][0]


def test_run_detail_shows_steps_with_http_figures_and_the_errors_are_masked(dev_api, flow, systems):
    systems.reject_ids = {3}
    run_id = post_run(dev_api, flow).json()["id"]
    run_execute(run_id=run_id, transport=systems.transport)

    body = dev_api.get(f"/api/v1/runs/{run_id}").json()
    assert body["status"] == "partial"
    assert (body["records_in"], body["records_out"], body["errors"]) == (5, 4, 1)
    assert body["started_at"] and body["ended_at"]
    kinds = [(s["name"], s["kind"]) for s in body["steps"]]
    assert kinds == [("Read orders", "export"), ("Map", "transform"), ("Send to ERP", "import")]
    http = body["steps"][2]["http"]
    assert http["calls"] == 5 and http["retries"] == 0
    assert http["p50_ms"] is not None and http["p95_ms"] >= http["p50_ms"]

    errors = dev_api.get(f"/api/v1/runs/{run_id}/errors").json()
    (error,) = errors["results"]
    assert errors["next"] is None
    assert error["step"] == body["steps"][2]["lineage_id"] and error["record_index"] == 2
    assert error["kind"] == "http" and error["http_status"] == 422
    assert error["record"]["order_id"] == 3 and error["record"]["password"] == MASK
    page = str(errors)
    assert ERP_TOKEN not in page and "pw3" not in page


def test_a_test_run_reports_what_the_imports_would_send(dev_api, flow, systems):
    response = post_run(dev_api, flow, {"mode": "test", "records": [{"id": 9, "total": 90}]})
    run_id = response.json()["id"]
    run_execute(run_id=run_id, transport=systems.transport)
    body = dev_api.get(f"/api/v1/runs/{run_id}").json()
    assert body["status"] == "succeeded" and systems.calls == 0
    assert body["output"][0]["records"] == [{"order_id": 9, "amount": 90}]


def test_runs_list_newest_first_with_filters(dev_api, flow, systems):
    other = build_flow(flow.integration)
    first = post_run(dev_api, flow).json()["id"]
    run_execute(run_id=first, transport=systems.transport)
    second = post_run(dev_api, other, {"mode": "test", "records": [{"id": 1}]}).json()["id"]
    url = f"/api/v1/integrations/{flow.integration_id}/runs"

    def ids(query=""):
        response = dev_api.get(url + query)
        assert response.status_code == 200, response.json()
        return [r["id"] for r in response.json()["results"]]

    assert ids() == [second, first]
    assert ids(f"?flow={flow.pk}") == [first]
    assert ids(f"?flow={flow.lineage_id}") == [first]
    assert ids("?status=succeeded") == [first]
    assert ids("?mode=test") == [second]
    assert ids("?since=2000-01-01T00:00:00Z&until=2100-01-01T00:00:00Z") == [second, first]
    assert ids("?until=2000-01-01T00:00:00Z") == []
    bad = dev_api.get(url + "?status=exploded")
    assert bad.status_code == 400 and "status" in bad.json()["errors"]
    # An id no row can have, or digits that are not ASCII, match nothing (no 500, and on
    # PostgreSQL no aborted transaction for what follows).
    assert ids("?flow=99999999999999999999") == []
    assert ids("?flow=%C2%B2") == []
    assert ids() == [second, first]


def test_cancel_a_queued_run_and_a_second_cancel_is_409(dev_api, flow):
    run_id = post_run(dev_api, flow).json()["id"]
    response = dev_api.post(f"/api/v1/runs/{run_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    again = dev_api.post(f"/api/v1/runs/{run_id}/cancel")
    assert again.status_code == 409 and "already ended" in again.json()["detail"]


def test_starting_and_canceling_runs_are_in_the_audit_log(dev_api, admin_api, flow):
    run_id = post_run(dev_api, flow).json()["id"]
    dev_api.post(f"/api/v1/runs/{run_id}/cancel")
    response = admin_api.get("/api/v1/audit?resource_type=run")
    assert response.status_code == 200, response.json()
    events = response.json()["results"]
    assert [(e["action"], e["user"], e["source"]) for e in events] == [
        ("run_canceled", "dev", "api"),
        ("run_started", "dev", "api"),
    ]
    assert all(e["resource_id"] == run_id for e in events)
    assert {"field": "mode", "old": None, "new": "live"} in events[1]["changes"]


def test_the_runs_list_costs_the_same_queries_for_many_runs(
    dev_api, flow, systems, django_assert_max_num_queries
):
    for _ in range(8):
        run_execute(run_id=post_run(dev_api, flow).json()["id"], transport=systems.transport)
    url = f"/api/v1/integrations/{flow.integration_id}/runs"
    # token and user, the integration, the count, the runs, their steps: not one per run
    with django_assert_max_num_queries(6):
        response = dev_api.get(url)
    assert len(response.json()["results"]) == 8
    assert all(len(r["steps"]) == 3 for r in response.json()["results"])
