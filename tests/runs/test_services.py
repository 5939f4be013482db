"""Runs with the real engine over mock HTTP systems: start, execute, store, cancel."""

import pytest

from audit.models import Event
from integrations.services import resource_update
from runs import services
from runs.models import FlowSample, Run, RunError, RunStatus, RunStep
from runs.services import MASK, RunRefused, run_cancel, run_execute, run_start
from tests.runs.conftest import ERP_TOKEN, orders

pytestmark = pytest.mark.django_db


def start(flow, user=None, **kwargs) -> Run:
    return run_start(flow=flow, user=user, **kwargs)


def test_starting_a_live_run_queues_it_audits_it_and_enqueues_the_task_on_commit(
    flow, developer, monitoring_calls, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = start(flow, developer)
    assert run.status == RunStatus.QUEUED and run.mode == "live" and run.trigger == "manual"
    assert run.flow_lineage_id == flow.lineage_id and run.created_by == developer
    assert monitoring_calls == [run.pk]
    event = Event.objects.get(resource_type="run", resource_id=run.pk)
    assert event.action == "run_started" and event.username == "dev"


@pytest.fixture
def monitoring_calls(monkeypatch):
    """What `run_flow.delay` was asked to run (the worker is not part of these tests)."""
    from runs import tasks

    calls: list[int] = []
    monkeypatch.setattr(tasks.run_flow, "delay", calls.append)
    return calls


def test_a_second_live_run_of_the_same_flow_is_refused_with_409_but_a_test_run_may_overlap(
    flow, developer
):
    first = start(flow, developer)
    with pytest.raises(RunRefused) as refused:
        start(flow, developer)
    assert refused.value.status_code == 409 and "already running" in refused.value.message
    assert Run.objects.filter(mode="live").count() == 1
    test_run = start(flow, developer, mode="test", records=[{"id": 1}])
    assert test_run.trigger == "test"
    run_cancel(run=first, user=developer)
    assert start(flow, developer).status == RunStatus.QUEUED


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"records": "nope"}, "JSON array"),
        ({"records": []}, "empty"),
        ({"records": [1, 2]}, "Record 0 is not a JSON object"),
        ({"mode": "dry"}, "mode is one of"),
        ({"mode": "test"}, "no saved samples"),
    ],
)
def test_bad_input_is_refused_with_400_and_creates_nothing(flow, developer, kwargs, message):
    with pytest.raises(RunRefused) as refused:
        start(flow, developer, **kwargs)
    assert refused.value.status_code == 400 and message in refused.value.message
    assert not Run.objects.exists() and not Event.objects.filter(resource_type="run").exists()


def test_a_disabled_flow_does_not_run(flow, developer):
    resource_update(instance=flow, data={"enabled": False})
    with pytest.raises(RunRefused, match="disabled") as refused:
        start(flow, developer)
    assert refused.value.status_code == 400 and not Run.objects.exists()


def test_a_live_run_reads_every_page_sends_every_record_and_records_its_steps(flow, systems):
    run = start(flow)
    run = run_execute(run_id=run.pk, transport=systems.transport)
    assert run.status == RunStatus.SUCCEEDED, run.message
    assert [r["order_id"] for r in systems.received] == [1, 2, 3, 4, 5]
    assert systems.received[0] == {
        "order_id": 1,
        "amount": 10,
        "email": "c1@example.com",
        "password": "pw1",
    }
    # The ERP connection's encrypted token was decrypted for the run, and only there.
    assert set(systems.auth_seen) == {f"Bearer {ERP_TOKEN}"}
    assert (run.records_in, run.records_out, run.errors, run.pages) == (5, 5, 0, 2)
    assert run.progress == {"page": 2, "records": 5, "errors": 0}
    assert run.started_at and run.ended_at and run.ended_at >= run.started_at
    steps = list(RunStep.objects.filter(run=run))
    assert [(s.name, s.kind, s.records_in, s.records_out) for s in steps] == [
        ("Read orders", "export", 5, 5),
        ("Map", "transform", 5, 5),
        ("Send to ERP", "import", 5, 5),
    ]
    assert steps[0].http_calls == 2 and steps[2].http_calls == 5
    assert sum(steps[2].histogram) == 5  # one latency observation per call


def test_a_successful_live_run_keeps_its_first_records_as_masked_samples(flow, systems, settings):
    settings.ILM_RUN_SAMPLE_SIZE = 4
    run = run_execute(run_id=start(flow).pk, transport=systems.transport)
    sample = FlowSample.objects.get(flow_lineage_id=flow.lineage_id)
    assert sample.run_id == run.pk and [r["id"] for r in sample.records] == [1, 2, 3, 4]
    assert sample.records[0]["customer"] == {"email": "c1@example.com", "password": MASK}


def test_rejected_records_make_a_partial_run_with_masked_errors(flow, systems):
    systems.reject_ids = {2, 5}
    run = run_execute(run_id=start(flow).pk, transport=systems.transport)
    assert run.status == RunStatus.PARTIAL
    assert (run.records_out, run.errors) == (3, 2)
    errors = list(RunError.objects.filter(run=run).order_by("record_index"))
    assert [(e.record_index, e.kind, e.http_status) for e in errors] == [
        (1, "http", 422),
        (4, "http", 422),
    ]
    first = errors[0]
    assert first.step_name == "Send to ERP"
    assert first.record["order_id"] == 2 and first.record["password"] == MASK
    assert "no customer account" in first.response_excerpt
    # The ERP echoed the bearer token back: it is masked in what is stored.
    assert ERP_TOKEN not in first.response_excerpt and ERP_TOKEN not in first.message
    # A partial run keeps no samples (they come from successful runs only).
    assert not FlowSample.objects.exists()


def test_only_the_first_errors_are_kept_but_all_are_counted(flow, systems, settings):
    settings.ILM_RUN_MAX_ERRORS = 2
    systems.reject_ids = {1, 2, 3, 4}
    run = run_execute(run_id=start(flow).pk, transport=systems.transport)
    assert run.errors == 4 and RunError.objects.filter(run=run).count() == 2


def test_a_test_run_sends_nothing_and_reports_what_each_import_would_send(flow, systems):
    run = start(flow, mode="test", records=[{"id": 7, "total": 70, "customer": {}}])
    run = run_execute(run_id=run.pk, transport=systems.transport)
    assert run.status == RunStatus.SUCCEEDED, run.message
    assert systems.calls == 0 and systems.received == []
    (out,) = run.output
    assert out["records"] == [{"order_id": 7, "amount": 70}]
    import_step = RunStep.objects.get(run=run, kind="import")
    assert out["step"] == str(import_step.lineage_id)


def test_a_test_run_without_records_uses_the_saved_samples(flow, systems):
    run_execute(run_id=start(flow).pk, transport=systems.transport)
    systems.received.clear()
    run = run_execute(run_id=start(flow, mode="test").pk, transport=systems.transport)
    assert run.status == RunStatus.SUCCEEDED and systems.received == []
    assert [r["order_id"] for r in run.output[0]["records"]] == [1, 2, 3, 4, 5]
    assert run.output[0]["records"][0]["password"] == MASK  # samples are stored masked


def test_a_redelivered_run_that_ended_is_not_run_again(flow, systems):
    run = start(flow)
    run_execute(run_id=run.pk, transport=systems.transport)
    calls = systems.calls
    again = run_execute(run_id=run.pk, transport=systems.transport)
    assert again.status == RunStatus.SUCCEEDED and systems.calls == calls
    assert RunStep.objects.filter(run=run).count() == 3


def test_a_run_found_running_after_a_crash_is_failed_as_interrupted_and_not_run_twice(
    flow, systems
):
    run = start(flow)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    run = run_execute(run_id=run.pk, transport=systems.transport)
    assert run.status == RunStatus.FAILED and run.message.startswith("Interrupted")
    assert systems.calls == 0 and run.ended_at is not None
    # The flow is free again: a new live run may start.
    assert start(flow).status == RunStatus.QUEUED


def test_canceling_a_queued_run_ends_it_before_anything_is_sent(flow, systems, developer):
    run = start(flow)
    run = run_cancel(run=run, user=developer)
    assert run.status == RunStatus.CANCELED
    run = run_execute(run_id=run.pk, transport=systems.transport)
    assert run.status == RunStatus.CANCELED and systems.calls == 0
    event = Event.objects.get(resource_type="run", action="run_canceled")
    assert event.username == "dev"


def test_canceling_a_running_run_stops_it_between_pages(flow, systems, developer):
    run = start(flow)
    systems.pages = [orders(2), orders(2, start=3), orders(2, start=5)]

    def cancel_during_first_page(page: int) -> None:
        if page == 1:
            run_cancel(run=Run.objects.get(pk=run.pk), user=developer)

    systems.on_page = cancel_during_first_page
    done = run_execute(run_id=run.pk, transport=systems.transport)
    assert done.status == RunStatus.CANCELED
    # The page being worked on finished; no later page was read or sent.
    assert [r["order_id"] for r in systems.received] == [1, 2]
    assert done.records_out == 2


def test_canceling_a_run_that_ended_is_a_conflict(flow, systems, developer):
    run = run_execute(run_id=start(flow).pk, transport=systems.transport)
    with pytest.raises(RunRefused) as refused:
        run_cancel(run=run, user=developer)
    assert refused.value.status_code == 409


def test_the_ssrf_guard_refuses_private_targets_when_production_settings_say_so(
    flow, systems, settings
):
    settings.ILM_RUN_ALLOW_PRIVATE = False
    run = run_execute(run_id=start(flow).pk, transport=systems.transport)
    assert run.status == RunStatus.FAILED and systems.calls == 0
    assert "refused" in run.message
    assert RunError.objects.get(run=run).kind == "connection"
    settings.ILM_RUN_ALLOWED_HOSTS = ["127.0.0.1"]
    run = run_execute(run_id=start(flow).pk, transport=systems.transport)
    assert run.status == RunStatus.SUCCEEDED, run.message


def test_prune_deletes_old_ended_runs_but_keeps_open_ones_and_the_samples_run(flow, systems):
    from datetime import timedelta

    from django.utils import timezone

    sampled = run_execute(run_id=start(flow).pk, transport=systems.transport)
    systems.reject_ids = {1}
    old = run_execute(run_id=start(flow).pk, transport=systems.transport)
    open_run = start(flow)
    later = timezone.now() + timedelta(days=1)
    assert services.runs_prune(older_than=later) == 1
    assert set(Run.objects.values_list("pk", flat=True)) == {sampled.pk, open_run.pk}
    assert not RunError.objects.filter(run_id=old.pk).exists()


def _hook(flow, code: str, function: str = "preMap"):
    from integrations.models import FlowStep
    from tests.factories import ScriptFactory

    script = ScriptFactory(integration=flow.integration, name="Tag", function=function, code=code)
    step = FlowStep.objects.get(flow=flow, kind="transform")
    resource_update(
        instance=step,
        data={"config": {**step.config, "hooks": {"preMap": str(script.lineage_id)}}},
    )
    return script


def test_a_javascript_hook_runs_once_per_page_in_v8(flow, systems):
    _hook(
        flow,
        "function preMap(options) {\n"
        "  return options.data.map(function (r) { r.total = r.total * 2; return r; });\n"
        "}",
    )
    run = run_execute(run_id=start(flow).pk, transport=systems.transport)
    assert run.status == RunStatus.SUCCEEDED, run.message
    assert [r["amount"] for r in systems.received] == [20, 40, 60, 80, 100]


def test_a_hook_that_throws_fails_that_pages_records_with_the_script_line(flow, systems):
    _hook(
        flow,
        "function preMap(options) {\n"
        "  if (options.data[0].id > 3) {\n"
        "    throw new Error('no tax rule for order ' + options.data[0].id);\n"
        "  }\n"
        "  return options.data;\n"
        "}",
    )
    run = run_execute(run_id=start(flow).pk, transport=systems.transport)
    assert run.status == RunStatus.PARTIAL
    assert [r["order_id"] for r in systems.received] == [1, 2, 3]
    errors = list(RunError.objects.filter(run=run).order_by("record_index"))
    assert [e.record_index for e in errors] == [3, 4]
    assert errors[0].kind == "script" and errors[0].script_line == 3
    assert "no tax rule for order 4" in errors[0].message
    assert errors[0].record["customer"]["password"] == MASK


def test_the_prune_command_keeps_recent_runs(flow, systems):
    import io

    from django.core.management import call_command
    from django.core.management.base import CommandError

    run_execute(run_id=start(flow).pk, transport=systems.transport)
    out = io.StringIO()
    call_command("runs_prune", "--days", "30", stdout=out)
    assert "Deleted 0 run(s)" in out.getvalue() and Run.objects.count() == 1
    with pytest.raises(CommandError, match="negative"):
        call_command("runs_prune", "--days", "-1")


def test_a_slow_worker_whose_run_was_marked_interrupted_stops_sending(flow, systems):
    run = start(flow)
    systems.pages = [orders(2), orders(2, start=3)]

    def redelivered_meanwhile(page: int) -> None:
        if page == 1:  # another delivery found the run running and failed it
            Run.objects.filter(pk=run.pk).update(
                status=RunStatus.FAILED, message=services.INTERRUPTED
            )

    systems.on_page = redelivered_meanwhile
    done = run_execute(run_id=run.pk, transport=systems.transport)
    assert done.status == RunStatus.FAILED and done.message == services.INTERRUPTED
    assert [r["order_id"] for r in systems.received] == [1, 2]  # page 2 never read
    assert not RunStep.objects.filter(run=run).exists()  # the run ended once, as failed


def test_lookup_cache_entries_are_loaded_for_the_run_and_a_miss_fails_that_record(flow, systems):
    from integrations.models import FlowStep
    from integrations.services import cache_entries_add
    from tests.factories import LookupCacheFactory

    cache = LookupCacheFactory(integration=flow.integration, name="Tiers", key_path="email")
    cache_entries_add(
        cache=cache,
        entries=[{"key": f"c{i}@example.com", "value": "gold"} for i in (1, 2, 3, 5)],
    )
    step = FlowStep.objects.get(flow=flow, kind="transform")
    mapping = {"source": "customer.email", "target": "tier", "lookup_cache": str(cache.lineage_id)}
    resource_update(
        instance=step, data={"config": {"mappings": [*step.config["mappings"], mapping]}}
    )
    run = run_execute(run_id=start(flow).pk, transport=systems.transport)
    assert run.status == RunStatus.PARTIAL
    assert [(r["order_id"], r["tier"]) for r in systems.received] == [
        (1, "gold"),
        (2, "gold"),
        (3, "gold"),
        (5, "gold"),
    ]
    (error,) = RunError.objects.filter(run=run)
    assert error.kind == "mapping" and error.record_index == 3
    assert "c4@example.com" in error.message and "Tiers" in error.message
