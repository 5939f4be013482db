"""Reads for the flow page and the home tiles: last runs, health of many integrations."""

from datetime import timedelta

import pytest
from django.utils import timezone

from runs.filters import RunFilter
from runs.models import Run, RunStatus
from runs.selectors import integration_health, last_runs, run_detail, runs_of
from runs.services import run_execute, run_start
from tests.factories import IntegrationFactory
from tests.runs.conftest import build_flow

pytestmark = pytest.mark.django_db


def test_health_of_many_integrations_in_two_queries(sandbox, systems, django_assert_num_queries):
    flow = build_flow(sandbox)
    systems.reject_ids = {1, 2}
    run_execute(run_id=run_start(flow=flow, user=None).pk, transport=systems.transport)
    old = run_start(flow=flow, user=None, mode="test", records=[{"id": 1}])
    Run.objects.filter(pk=old.pk).update(
        status=RunStatus.FAILED, errors=50, created_at=timezone.now() - timedelta(days=2)
    )
    quiet = IntegrationFactory(name="Never ran")
    others = [IntegrationFactory(name=f"Other {i}") for i in range(5)]
    ids = [sandbox.pk, quiet.pk, *(o.pk for o in others)]
    with django_assert_num_queries(2):  # the newest run of each; the last day's runs
        health = integration_health(ids, timezone.now())
    assert health[sandbox.pk]["last_status"] == "partial"
    assert health[sandbox.pk]["errors_24h"] == 2  # the 2-day-old failed run is not counted
    assert health[sandbox.pk]["runs_24h"] == 1
    assert health[quiet.pk] == {
        "last_status": None,
        "last_run_at": None,
        "errors_24h": 0,
        "runs_24h": 0,
        "failed_24h": 0,
    }


def test_last_runs_are_the_flows_newest_first_and_follow_its_lineage(sandbox, systems):
    flow = build_flow(sandbox)
    other = build_flow(sandbox)
    runs = []
    for _ in range(3):
        run = run_execute(run_id=run_start(flow=flow, user=None).pk, transport=systems.transport)
        runs.append(run)
    run_start(flow=other, user=None)
    assert [r.pk for r in last_runs(flow, n=2)] == [runs[2].pk, runs[1].pk]
    by_flow = RunFilter({"flow": str(flow.pk)}, queryset=runs_of(sandbox)).qs
    assert list(by_flow.values_list("pk", flat=True)) == [r.pk for r in reversed(runs)]
    assert RunFilter({"flow": "not-a-flow"}, queryset=runs_of(sandbox)).qs.count() == 0


def test_run_detail_gives_percentiles_per_step(sandbox, systems):
    flow = build_flow(sandbox)
    run = run_execute(run_id=run_start(flow=flow, user=None).pk, transport=systems.transport)
    detail = run_detail(run)
    export, transform, send = detail["steps"]
    assert transform["http"] == {"calls": 0, "retries": 0, "p50_ms": None, "p95_ms": None}
    assert send["http"]["calls"] == 5 and send["http"]["p50_ms"] is not None
    assert detail["kept_errors"] == 0 and detail["error_count"] == 0
