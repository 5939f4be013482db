"""Hourly rollups: written as runs end, equal to a recount from the raw runs, rebuildable;
percentiles read from merged histograms are within one bucket of the exact value."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runs import histogram, rollups
from runs.models import ConnectionHourLatency, FlowDayRollup, FlowHourRollup, Run
from runs.services import run_cancel, run_execute, run_start
from tests.factories import IntegrationFactory
from tests.hypothesis_profiles import examples
from tests.runs.monitoring_data import make_run

pytestmark = pytest.mark.django_db

BASE = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
FLOWS = [uuid.UUID(int=1), uuid.UUID(int=2)]
CONNECTIONS = [uuid.UUID(int=10), uuid.UUID(int=11)]


def stored(level: rollups.Level = rollups.HOURS) -> dict:
    """The rollup rows of a level as {(integration, flow, hour or day): figures}."""
    return rollups.stored(level)


def raw(level: rollups.Level = rollups.HOURS) -> dict:
    return rollups.recount(Run.objects.prefetch_related("steps", "error_records"), level)


def comparable(table: dict) -> dict:
    """Figures without empty latency entries (a connection with no calls has no row)."""
    return {
        key: {**f, "latency": {c: h for c, h in f["latency"].items() if any(h)}}
        for key, f in table.items()
    }


run_strategy = st.fixed_dictionaries(
    {
        "flow": st.sampled_from(FLOWS),
        # Up to three days from BASE, so runs share hours and days and span midnights.
        "minutes": st.integers(min_value=0, max_value=60 * 72),
        "status": st.sampled_from(["succeeded", "partial", "failed", "canceled", "running"]),
        "mode": st.sampled_from(["live", "live", "live", "test"]),
        "records_in": st.integers(0, 500),
        "records_out": st.integers(0, 500),
        "retries": st.integers(0, 5),
        "steps": st.lists(
            st.tuples(
                st.sampled_from([*CONNECTIONS, None]),
                st.lists(st.integers(0, 4), min_size=histogram.SIZE, max_size=histogram.SIZE),
            ),
            max_size=3,
        ),
        "errors": st.lists(
            st.tuples(
                st.sampled_from(["http", "script", "mapping", "timeout", "connection"]),
                st.sampled_from([None, 404, 422, 500, 503, 302]),
                st.sampled_from(["bad", "worse"]),
            ),
            max_size=4,
        ),
        "extra_errors": st.integers(0, 3),
    }
)


@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(runs=st.lists(run_strategy, max_size=12))
def test_rollups_written_as_runs_end_equal_a_recount_from_the_raw_runs(runs):
    Run.objects.all().delete()
    for level in rollups.LEVELS:
        level.rollup.objects.all().delete()
        level.latency.objects.all().delete()
    integration = IntegrationFactory()
    for spec in runs:
        if spec["status"] == "running":
            spec["mode"] = "test"  # one open live run per flow; an open run is not counted
        make_run(
            integration,
            spec["flow"],
            created_at=BASE + timedelta(minutes=spec["minutes"]),
            status=spec["status"],
            mode=spec["mode"],
            records_in=spec["records_in"],
            records_out=spec["records_out"],
            retries=spec["retries"],
            steps=spec["steps"],
            errors=spec["errors"],
            extra_errors=spec["extra_errors"],
        )
    expected = comparable(raw())
    assert comparable(stored()) == expected
    # The day level is the same runs added up per UTC day.
    expected_days = comparable(raw(rollups.DAYS))
    assert comparable(stored(rollups.DAYS)) == expected_days
    counted = [s for s in runs if s["mode"] == "live" and s["status"] != "running"]
    assert sum(f["runs"] for f in expected.values()) == len(counted)
    assert sum(f["records_in"] for f in expected.values()) == sum(s["records_in"] for s in counted)
    # The rebuild from the raw runs writes the same rows, at both levels.
    rollups.rollup_rebuild()
    assert comparable(stored()) == expected
    assert comparable(stored(rollups.DAYS)) == expected_days


def exact_percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def bucket_bounds(ms: float) -> tuple[float, float]:
    i = histogram.BUCKETS_MS.index(next((b for b in histogram.BUCKETS_MS if ms <= b), 60000))
    if ms > histogram.BUCKETS_MS[-1]:
        return histogram.BUCKETS_MS[-1], math.inf
    return (histogram.BUCKETS_MS[i - 1] if i else 0.0), histogram.BUCKETS_MS[i]


@settings(max_examples=examples(200), deadline=None)
@given(
    runs=st.lists(
        st.lists(st.floats(min_value=0.1, max_value=90_000), min_size=1, max_size=40),
        min_size=1,
        max_size=10,
    ),
    q=st.sampled_from([50, 90, 95, 99]),
)
def test_a_percentile_of_merged_histograms_is_within_one_bucket_of_the_exact_value(runs, q):
    merged = histogram.empty()
    for timings in runs:
        one = histogram.empty()
        for ms in timings:
            histogram.observe(one, ms)
        merged = histogram.merge(merged, one)
    estimate = histogram.percentile(merged, q)
    low, high = bucket_bounds(exact_percentile([ms for t in runs for ms in t], q))
    if high == math.inf:
        assert estimate == histogram.BUCKETS_MS[-1]
    else:
        assert low <= estimate <= high


def test_a_run_ending_through_the_service_adds_itself_to_its_hour_in_the_same_transaction(
    flow, developer, systems
):
    systems.reject_ids = {2}
    run = run_start(flow=flow, user=developer)
    run = run_execute(run_id=run.pk, transport=systems.transport)
    assert run.status == "partial"
    row = FlowHourRollup.objects.get()
    assert (row.runs, row.partial, row.records_in, row.errors) == (1, 1, 5, 1)
    assert row.errors_http == 1 and row.http_4xx == 1
    assert row.flow_lineage_id == flow.lineage_id and row.last_run_id == run.pk
    # Response times are kept per connection: the storefront and the ERP.
    latencies = ConnectionHourLatency.objects.all()
    assert len(latencies) == 2
    assert sum(sum(lat.buckets) for lat in latencies) == systems.calls
    assert comparable(stored()) == comparable(raw())


def test_test_runs_are_not_counted_and_a_canceled_queued_run_is(flow, developer):
    test_run = run_start(flow=flow, user=developer, mode="test", records=[{"id": 1}])
    run_execute(run_id=test_run.pk)
    assert not FlowHourRollup.objects.exists()
    queued = run_start(flow=flow, user=developer)
    run_cancel(run=queued, user=developer)
    row = FlowHourRollup.objects.get()
    assert (row.runs, row.canceled, row.last_status) == (1, 1, "canceled")


def test_a_run_found_running_again_is_counted_once_as_failed(flow, developer, systems):
    run = run_start(flow=flow, user=developer)
    Run.objects.filter(pk=run.pk).update(status="running")
    run_execute(run_id=run.pk, transport=systems.transport)
    run_execute(run_id=run.pk, transport=systems.transport)
    row = FlowHourRollup.objects.get()
    assert (row.runs, row.failed) == (1, 1)


def test_the_command_rebuilds_from_a_given_hour_and_keeps_earlier_rows():
    integration = IntegrationFactory()
    make_run(integration, FLOWS[0], created_at=BASE, records_in=3)
    late = make_run(integration, FLOWS[0], created_at=BASE + timedelta(hours=5), records_in=7)
    FlowHourRollup.objects.update(records_in=999)  # both rows wrong now
    Run.objects.filter(pk=late.pk).update(records_in=8)
    call_command("monitoring_rollup", "--rebuild", "--since", "2026-11-02T05:30")
    rows = dict(FlowHourRollup.objects.values_list("hour", "records_in"))
    assert rows == {BASE: 999, BASE + timedelta(hours=5): 8}
    # The day is refolded from its hours: the kept one and the rebuilt one.
    assert list(FlowDayRollup.objects.values_list("day", "records_in")) == [(BASE, 999 + 8)]
    call_command("monitoring_rollup", "--rebuild")
    assert dict(FlowHourRollup.objects.values_list("hour", "records_in")) == {
        BASE: 3,
        BASE + timedelta(hours=5): 8,
    }
    assert list(FlowDayRollup.objects.values_list("day", "records_in")) == [(BASE, 11)]


@pytest.mark.parametrize("args", [[], ["--rebuild", "--since", "yesterday-ish"]])
def test_the_command_refuses_without_rebuild_or_with_a_bad_since(args):
    with pytest.raises(CommandError):
        call_command("monitoring_rollup", *args)
