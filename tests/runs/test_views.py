"""The Runs tab, run detail with live progress, starting runs from a flow, home health."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from integrations.models import AccessLevel, Environment, StepKind
from runs import histogram
from runs.models import FlowSample, Run, RunError, RunMode, RunStatus, RunStep, RunTrigger
from tests.factories import (
    ConnectionFactory,
    FlowFactory,
    GrantFactory,
    IntegrationFactory,
    StepFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def make_run(integration, flow, **fields) -> Run:
    created_at = fields.pop("created_at", None)
    defaults = {
        "integration": integration,
        "flow": flow,
        "flow_lineage_id": flow.lineage_id,
        "flow_name": flow.name,
        "mode": RunMode.LIVE,
        "trigger": RunTrigger.MANUAL,
        "status": RunStatus.SUCCEEDED,
    }
    run = Run.objects.create(**{**defaults, **fields})
    if created_at is not None:
        Run.objects.filter(pk=run.pk).update(created_at=created_at)
        run.refresh_from_db()
    return run


def shop_flow(integration, name="Orders to ERP", **fields):
    """Transform + import: a test run needs no network (imports only report)."""
    erp = ConnectionFactory(
        integration=integration,
        name=f"ERP for {name}",
        config={"base_url": "http://127.0.0.1:8102", "retry": {"max_attempts": 1}},
        credentials={},
    )
    flow = FlowFactory(integration=integration, name=name, **fields)
    StepFactory(
        flow=flow,
        name="Shape the order",
        position=1,
        kind=StepKind.TRANSFORM,
        config={
            "mappings": [
                {"source": "name", "target": "external_id"},
                {"source": "customer.email", "target": "entity.email"},
            ]
        },
    )
    StepFactory(
        flow=flow,
        name="Create sales order",
        position=2,
        kind=StepKind.IMPORT,
        connection=erp,
        config={"method": "POST", "path": "/sales-orders/", "batch_size": 1},
    )
    return flow


@pytest.fixture
def flow(integration):
    return shop_flow(integration)


@pytest.fixture
def outsider_client(db):
    client = Client()
    client.force_login(UserFactory(username="stranger"))
    return client


# The Runs tab ------------------------------------------------------------------------


def test_runs_tab_is_in_the_integration_tab_bar(dev_client, integration):
    page = dev_client.get(reverse("integrations:flows", args=[integration.pk])).content.decode()
    assert reverse("runs:tab", args=[integration.pk]) in page


def test_runs_tab_lists_runs_newest_first_with_counts(monitor_client, integration, flow):
    older = make_run(integration, flow, records_in=7, records_out=5, errors=2)
    newer = make_run(integration, flow, status=RunStatus.FAILED, message="Export failed: 500")
    response = monitor_client.get(reverse("runs:tab", args=[integration.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert html.index(f'id="run-{newer.pk}"') < html.index(f'id="run-{older.pk}"')
    assert "Export failed: 500" in html and "Failed" in html
    assert f"{reverse('runs:detail', args=[older.pk])}#errors" in html


def test_runs_tab_filters_by_flow_status_mode_and_date(monitor_client, integration, flow):
    other = shop_flow(integration, name="Refunds to memos")
    now = timezone.now()
    live_ok = make_run(integration, flow)
    failed = make_run(integration, flow, status=RunStatus.FAILED)
    test = make_run(integration, flow, mode=RunMode.TEST, trigger=RunTrigger.TEST)
    refunds = make_run(integration, other)
    old = make_run(integration, flow, created_at=now - timedelta(days=10))
    url = reverse("runs:tab", args=[integration.pk])

    def shown(**query):
        html = monitor_client.get(url, query).content.decode()
        return {int(pk) for pk in re.findall(r'id="run-(\d+)"', html)}

    assert shown() == {live_ok.pk, failed.pk, test.pk, refunds.pk, old.pk}
    assert shown(flow=str(other.lineage_id)) == {refunds.pk}
    assert shown(status="failed") == {failed.pk}
    assert shown(mode="test") == {test.pk}
    day = (now - timedelta(days=10)).date().isoformat()
    assert shown(since=day, until=day) == {old.pk}
    assert old.pk not in shown(since=(now - timedelta(days=1)).date().isoformat())


def test_runs_tab_filter_answers_htmx_with_the_table_only(monitor_client, integration, flow):
    make_run(integration, flow, status=RunStatus.FAILED)
    response = monitor_client.get(
        reverse("runs:tab", args=[integration.pk]),
        {"status": "succeeded"},
        headers={"HX-Request": "true", "HX-Target": "runs-table"},
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="runs-table"')
    assert "No runs match these filters" in html
    assert "HX-Request" in response["Vary"]


def test_dates_the_wrong_way_round_are_explained(monitor_client, integration, flow):
    make_run(integration, flow)
    response = monitor_client.get(
        reverse("runs:tab", args=[integration.pk]), {"since": "2026-05-02", "until": "2026-05-01"}
    )
    assert "swap the dates" in response.content.decode()


def test_open_run_row_polls_and_the_poll_stops_with_286_once_final(
    monitor_client, integration, flow
):
    run = make_run(
        integration,
        flow,
        status=RunStatus.RUNNING,
        started_at=timezone.now(),
        progress={"page": 3, "records": 150, "errors": 2},
    )
    html = monitor_client.get(reverse("runs:tab", args=[integration.pk])).content.decode()
    progress = reverse("runs:progress", args=[run.pk])
    assert f'hx-get="{progress}?part=row"' in html
    assert "Page 3 · 150 records · 2 errors" in html

    polled = monitor_client.get(progress, {"part": "row"})
    assert polled.status_code == 200 and "Page 3" in polled.content.decode()

    Run.objects.filter(pk=run.pk).update(
        status=RunStatus.SUCCEEDED, records_in=150, records_out=150, ended_at=timezone.now()
    )
    final = monitor_client.get(progress, {"part": "row"})
    assert final.status_code == 286
    body = final.content.decode()
    assert "Succeeded" in body and "hx-trigger" not in body


@pytest.mark.parametrize(
    ("status", "badge"),
    [
        (RunStatus.SUCCEEDED, '<span aria-hidden="true">✓</span>Succeeded</span>'),
        (RunStatus.FAILED, '<span aria-hidden="true">✕</span>Failed</span>'),
        (RunStatus.PARTIAL, '<span aria-hidden="true">!</span>Partial</span>'),
        (RunStatus.CANCELED, 'data-status="canceled">Canceled</span>'),
    ],
)
def test_a_finished_runs_badge_carries_its_mark_and_a_failure_reads_as_an_error(
    monitor_client, integration, flow, status, badge
):
    run = make_run(integration, flow, status=status, message="What happened.")
    html = monitor_client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert badge in html
    failed = status == RunStatus.FAILED
    assert ('run-message-full message message-error"' in html) is failed
    assert ('run-message-full message message-info"' in html) is not failed


def test_run_page_polls_its_body_while_open_and_stops_when_final(monitor_client, integration, flow):
    run = make_run(integration, flow, status=RunStatus.QUEUED)
    html = monitor_client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert 'id="run-body"' in html and "Waiting for a worker" in html
    assert f'hx-get="{reverse("runs:progress", args=[run.pk])}"' in html
    Run.objects.filter(pk=run.pk).update(status=RunStatus.CANCELED, message="Canceled.")
    final = monitor_client.get(reverse("runs:progress", args=[run.pk]))
    assert final.status_code == 286 and "Canceled" in final.content.decode()


# Run detail --------------------------------------------------------------------------


def test_run_detail_shows_the_step_timeline_and_the_errors(monitor_client, integration, flow):
    run = make_run(
        integration,
        flow,
        status=RunStatus.PARTIAL,
        records_in=50,
        records_out=48,
        errors=2,
        retries=3,
        pages=2,
        started_at=timezone.now() - timedelta(seconds=4),
        ended_at=timezone.now(),
    )
    hist = histogram.empty()
    for ms in [40] * 18 + [700, 900]:
        histogram.observe(hist, ms)
    step = flow.steps.get(position=2)
    RunStep.objects.create(
        run=run,
        lineage_id=step.lineage_id,
        position=2,
        name="Create sales order",
        kind="import",
        records_in=50,
        records_out=48,
        errors=2,
        duration_ms=2345,
        http_calls=53,
        http_retries=3,
        histogram=hist,
    )
    RunError.objects.create(
        run=run,
        step_lineage_id=step.lineage_id,
        step_name="Create sales order",
        record_index=6,
        kind="http",
        message="POST /sales-orders/ answered HTTP 422",
        http_status=422,
        record={"external_id": "#1007", "entity": {"email": "jun.novak@example.com"}},
        response_excerpt='{"error": "Customer jun.novak@example.com is on credit hold."}',
    )
    RunError.objects.create(
        run=run,
        step_lineage_id=step.lineage_id,
        step_name="Create sales order",
        record_index=-1,
        kind="script",
        message="preSavePage hook: TypeError: order.line_items is undefined",
        script_line=4,
    )
    html = monitor_client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert "Create sales order" in html
    for figure in ("50", "48", "53", "2,345 ms"):
        assert figure in html
    p50, p95 = histogram.percentile(hist, 50), histogram.percentile(hist, 95)
    assert f"{p50:.0f} ms" in html and f"{p95:.0f} ms" in html
    assert "answered HTTP 422" in html and "record 7" in html
    assert "jun.novak@example.com" in html and "credit hold" in html
    assert "line 4" in html and "whole page" in html
    assert "Cancel run" not in html  # final, and a monitor may not run


def test_run_detail_of_a_test_run_shows_what_each_import_would_send(
    monitor_client, integration, flow
):
    step = flow.steps.get(position=2)
    run = make_run(
        integration,
        flow,
        mode=RunMode.TEST,
        trigger=RunTrigger.TEST,
        output=[{"step": str(step.lineage_id), "records": [{"external_id": "#1"}, {"x": 2}]}],
    )
    html = monitor_client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert "What the import steps would send" in html
    assert "Create sales order" in html and "would send 2 records" in html
    assert (
        "Record 1" in html
        and "Record 2" in html
        and "&quot;external_id&quot;: &quot;#1&quot;" in html
    )


def test_user_without_access_gets_404_everywhere(outsider_client, integration, flow):
    run = make_run(integration, flow, status=RunStatus.RUNNING)
    for url in (
        reverse("runs:tab", args=[integration.pk]),
        reverse("runs:detail", args=[run.pk]),
        reverse("runs:progress", args=[run.pk]),
        reverse("runs:test_run", args=[integration.pk, flow.pk]),
    ):
        assert outsider_client.get(url).status_code == 404, url
    assert (
        outsider_client.post(reverse("runs:run_now", args=[integration.pk, flow.pk])).status_code
        == 404
    )
    assert outsider_client.post(reverse("runs:cancel", args=[run.pk])).status_code == 404
    assert Run.objects.count() == 1 and Run.objects.get().status == RunStatus.RUNNING


# Starting and canceling runs ---------------------------------------------------------


def test_monitor_cannot_start_a_run_nor_a_test_run(monitor_client, integration, flow):
    assert (
        monitor_client.post(reverse("runs:run_now", args=[integration.pk, flow.pk])).status_code
        == 403
    )
    test_url = reverse("runs:test_run", args=[integration.pk, flow.pk])
    assert monitor_client.post(test_url, {"records": '[{"name": "#1"}]'}).status_code == 403
    assert not Run.objects.exists()


def test_developer_may_not_run_a_production_flow_live_by_hand(dev_client, integration, flow):
    response = dev_client.post(reverse("runs:run_now", args=[integration.pk, flow.pk]))
    assert response.status_code == 403
    assert not Run.objects.exists()


def test_run_now_starts_a_live_run_and_opens_it(
    approver_client, approver, integration, flow, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = approver_client.post(reverse("runs:run_now", args=[integration.pk, flow.pk]))
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "runs:detail", args=[run.pk]
    )
    assert (run.mode, run.trigger, run.status, run.created_by) == (
        RunMode.LIVE,
        RunTrigger.MANUAL,
        RunStatus.QUEUED,
        approver,
    )
    assert len(queued) == 1  # the task goes out when the transaction commits

    again = approver_client.post(
        reverse("runs:run_now", args=[integration.pk, flow.pk]), follow=True
    )
    assert "already running live" in again.content.decode()
    assert Run.objects.count() == 1


def test_run_now_of_a_disabled_flow_is_refused_with_the_reason(approver_client, integration):
    flow = shop_flow(integration, name="Stock levels", enabled=False)
    response = approver_client.post(
        reverse("runs:run_now", args=[integration.pk, flow.pk]), follow=True
    )
    assert "disabled" in response.content.decode()
    assert not Run.objects.exists()


def test_developer_runs_a_sandbox_flow_live(
    dev_client, developer, django_capture_on_commit_callbacks
):
    sandbox = IntegrationFactory(name="Shop sandbox", environment=Environment.SANDBOX)
    GrantFactory(integration=sandbox, user=developer, level=AccessLevel.MANAGE)
    flow = shop_flow(sandbox)
    with django_capture_on_commit_callbacks(execute=False):
        response = dev_client.post(reverse("runs:run_now", args=[sandbox.pk, flow.pk]))
    assert response.status_code == 302
    assert Run.objects.get().created_by == developer


def test_approver_cancels_a_queued_run(approver_client, integration, flow):
    run = make_run(integration, flow, status=RunStatus.QUEUED)
    page = approver_client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert "Cancel run" in page
    response = approver_client.post(reverse("runs:cancel", args=[run.pk]), follow=True)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELED
    assert "canceled" in response.content.decode()


def test_canceling_a_finished_run_says_why_and_changes_nothing(approver_client, integration, flow):
    run = make_run(integration, flow, status=RunStatus.SUCCEEDED)
    response = approver_client.post(reverse("runs:cancel", args=[run.pk]), follow=True)
    assert "already ended" in response.content.decode()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED


def test_test_run_with_pasted_records_shows_what_imports_would_send(
    dev_client, integration, flow, django_capture_on_commit_callbacks
):
    records = (
        '[{"name": "#1001", "customer": {"email": "ana@example.com"}},'
        ' {"name": "#1002", "customer": {"email": "ben@example.com"}}]'
    )
    url = reverse("runs:test_run", args=[integration.pk, flow.pk])
    assert "Test run of Orders to ERP" in dev_client.get(url).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = dev_client.post(url, {"records": records})
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "runs:detail", args=[run.pk]
    )
    run.refresh_from_db()
    assert (run.mode, run.status) == (RunMode.TEST, RunStatus.SUCCEEDED), run.message
    html = dev_client.get(response["Location"]).content.decode()
    assert "would send 2 records" in html and "nothing was sent" in html
    assert html.index("#1001") < html.index("#1002")
    assert "ana@example.com" in html and "&quot;external_id&quot;" in html


@pytest.mark.parametrize(
    ("pasted", "message"),
    [
        ('[{"name": "#1"', "not valid JSON"),
        ('"just a string"', "JSON array"),
        ("[1, 2]", "Record 1 is not a JSON object"),
        ("[]", "at least one record"),
    ],
)
def test_bad_records_get_a_clear_error_and_start_nothing(
    dev_client, integration, flow, pasted, message
):
    response = dev_client.post(
        reverse("runs:test_run", args=[integration.pk, flow.pk]), {"records": pasted}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    assert pasted.replace('"', "&quot;") in html  # what was typed is kept to fix
    assert not Run.objects.exists()


def test_test_run_without_records_or_saved_samples_says_to_paste_some(
    dev_client, integration, flow
):
    response = dev_client.post(reverse("runs:test_run", args=[integration.pk, flow.pk]), {})
    assert response.status_code == 400
    assert "no saved samples" in response.content.decode()
    assert not Run.objects.exists()


# The flow page and the home tiles ----------------------------------------------------


def test_flow_page_shows_run_buttons_schedule_and_last_runs(approver_client, integration, flow):
    runs = [make_run(integration, flow, status=s) for s in ("succeeded", "partial", "failed")]
    html = approver_client.get(
        reverse("integrations:flow", args=[integration.pk, flow.pk])
    ).content.decode()
    assert reverse("runs:run_now", args=[integration.pk, flow.pk]) in html
    assert reverse("runs:test_run", args=[integration.pk, flow.pk]) in html
    assert "*/15 * * * *" in html and "next run" in html
    for run in runs:
        assert reverse("runs:detail", args=[run.pk]) in html
    assert "Partial" in html and "Failed" in html


def test_flow_page_hides_run_buttons_from_a_monitor(monitor_client, integration, flow):
    html = monitor_client.get(
        reverse("integrations:flow", args=[integration.pk, flow.pk])
    ).content.decode()
    assert reverse("runs:run_now", args=[integration.pk, flow.pk]) not in html
    assert reverse("runs:test_run", args=[integration.pk, flow.pk]) not in html
    assert "This flow has not run yet" in html


def test_home_tiles_show_last_run_status_and_errors_in_24_hours(
    monitor, monitor_client, integration, flow
):
    make_run(integration, flow, errors=40, created_at=timezone.now() - timedelta(days=3))
    make_run(integration, flow, status=RunStatus.PARTIAL, errors=3)
    make_run(integration, flow, status=RunStatus.FAILED, errors=2)
    quiet = IntegrationFactory(name="Quiet one")
    GrantFactory(integration=quiet, user=monitor, level=AccessLevel.MONITOR)
    response = monitor_client.get(reverse("integrations:home"))
    html = response.content.decode()
    tile = html[html.index(f'data-integration="{integration.pk}"') :]
    tile = tile[: tile.index("</li>")]
    assert "Failed" in tile and "5 errors in 24 h" in tile
    quiet_tile = html[html.index(f'data-integration="{quiet.pk}"') :]
    assert "No runs yet" in quiet_tile[: quiet_tile.index("</li>")]


def test_home_tile_health_costs_the_same_queries_for_more_tiles(
    monitor, monitor_client, integration, flow, django_assert_max_num_queries
):
    make_run(integration, flow)
    monitor_client.get(reverse("integrations:home"))  # warm caches (sessions, content types)
    # Both measured views start from an empty cache: the home page keeps per-version parts
    # there (tiles, unread notifications), and the writes below make new keys.
    cache.clear()
    with CaptureQueriesContext(connection) as few:
        monitor_client.get(reverse("integrations:home"))
    for i in range(5):
        other = IntegrationFactory(name=f"More {i}")
        GrantFactory(integration=other, user=monitor, level=AccessLevel.MONITOR)
        make_run(other, shop_flow(other, name=f"Flow {i}"), errors=1)
    cache.clear()
    with django_assert_max_num_queries(len(few.captured_queries)):
        monitor_client.get(reverse("integrations:home"))


def test_test_run_with_the_saved_samples_when_nothing_is_pasted(
    dev_client, integration, flow, django_capture_on_commit_callbacks
):
    FlowSample.objects.create(
        integration=integration,
        flow_lineage_id=flow.lineage_id,
        records=[{"name": "#3001", "customer": {"email": "kai@example.com"}}],
    )
    url = reverse("runs:test_run", args=[integration.pk, flow.pk])
    assert "Saved samples: 1 record" in dev_client.get(url).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = dev_client.post(url, {"records": ""})
    run = Run.objects.get()
    assert run.mode == RunMode.TEST and run.input_records is None
    html = dev_client.get(response["Location"]).content.decode()
    assert "would send 1 record" in html and "#3001" in html


def test_errors_page_through_in_place(monitor_client, integration, flow):
    run = make_run(integration, flow, status=RunStatus.PARTIAL, errors=30)
    step = flow.steps.get(position=2)
    RunError.objects.bulk_create(
        RunError(
            run=run,
            step_lineage_id=step.lineage_id,
            step_name="Create sales order",
            record_index=i,
            kind="http",
            http_status=422,
            message=f"Order number {i:03d} refused",
        )
        for i in range(30)
    )
    url = reverse("runs:detail", args=[run.pk])
    first = monitor_client.get(url).content.decode()
    assert "Order number 000 refused" in first and "Order number 025 refused" not in first
    second = monitor_client.get(
        url, {"errors_page": 2}, headers={"HX-Request": "true", "HX-Target": "run-errors"}
    ).content.decode()
    assert second.lstrip().startswith('<section id="run-errors"')
    assert "Order number 025 refused" in second and "Order number 000 refused" not in second


def test_runs_tab_costs_the_same_queries_for_more_runs(
    monitor_client, integration, flow, approver, django_assert_max_num_queries
):
    url = reverse("runs:tab", args=[integration.pk])
    make_run(integration, flow, created_by=approver)
    monitor_client.get(url)
    with CaptureQueriesContext(connection) as few:
        monitor_client.get(url)
    for _ in range(20):
        make_run(integration, flow, created_by=approver, errors=1)
    with django_assert_max_num_queries(len(few.captured_queries)):
        html = monitor_client.get(url).content.decode()
    assert html.count('class="run-row') == 21


@pytest.mark.parametrize(
    "status, shown",
    [
        (RunStatus.SUCCEEDED, "✓ Succeeded"),
        (RunStatus.PARTIAL, "! Partial"),
        (RunStatus.FAILED, "✕ Failed"),
        (RunStatus.CANCELED, ">Canceled"),
    ],
)
def test_a_home_tile_marks_its_last_run_as_every_run_badge_does(
    monitor_client, integration, flow, status, shown
):
    """The tile's mark comes from STATUS_MARKS, like the run pages': a partial run is
    marked too (it had none), a canceled one carries no mark."""
    make_run(integration, flow, status=status)
    html = monitor_client.get(reverse("integrations:home")).content.decode()
    tile = html[html.index(f'data-integration="{integration.pk}"') :]
    health = tile[tile.index('data-testid="tile-health"') :]
    assert shown in health[: health.index("</span></a>")]
