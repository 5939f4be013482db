"""The Errors tab, one error, retries and the revision page's "retry with the fix", as a
user sees them; counts that link into the list from the flow page, Runs tab and tiles."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from audit.models import Event
from integrations.models import Flow, FlowStep, Integration
from revisions import services as revision_services
from runs import error_selectors
from runs.models import ErrorRetry, ErrorState, FlowError
from tests.runs.conftest import build_flow, run_once
from tests.runs.test_filters import make_error

pytestmark = pytest.mark.django_db


def test_the_errors_tab_lists_open_errors_with_filters_and_links_from_the_flow_pages(
    live_flow, erp, dev_client
):
    erp.reject = {2, 4}
    run_once(live_flow)
    integration = live_flow.integration
    page = dev_client.get(reverse("runs:errors", args=[integration.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert html.count('class="error-row"') == 2 and "answered HTTP 422" in html
    assert 'value="retry"' in html and 'value="resolve"' in html
    step = FlowStep.objects.get(flow=live_flow, name="Send to ERP")
    filtered = dev_client.get(
        reverse("runs:errors", args=[integration.pk]) + f"?step={step.lineage_id}&q=c4%40"
    )
    assert filtered.content.decode().count('class="error-row"') == 1
    # Counts wherever the flow and step appear, each a link into the list.
    flow_page = dev_client.get(reverse("integrations:flow", args=[integration.pk, live_flow.pk]))
    assert f"?step={step.lineage_id}" in flow_page.content.decode()
    assert "2 open errors" in flow_page.content.decode()
    flows_tab = dev_client.get(reverse("integrations:flows", args=[integration.pk]))
    assert f"?flow={live_flow.lineage_id}" in flows_tab.content.decode()
    runs_tab = dev_client.get(reverse("runs:tab", args=[integration.pk]))
    assert 'data-testid="errors-summary"' in runs_tab.content.decode()
    home = dev_client.get(reverse("integrations:home"))
    assert reverse("runs:errors", args=[integration.pk]) in home.content.decode()


def test_a_monitor_sees_the_errors_but_no_retry_resolve_or_assign(live_flow, erp, monitor_client):
    erp.reject = {2}
    run_once(live_flow)
    error = FlowError.objects.get()
    html = monitor_client.get(reverse("runs:errors", args=[live_flow.integration_id])).content
    assert b'class="error-row"' in html and b'value="retry"' not in html
    detail = monitor_client.get(reverse("runs:error", args=[error.pk])).content.decode()
    assert "no customer account" in detail and "Retry from" not in detail
    refused = monitor_client.post(
        reverse("runs:error", args=[error.pk]), {"action": "resolve", "comment": "x"}
    )
    assert refused.status_code == 403
    assert FlowError.objects.get().state == "open"


def test_resolving_many_from_the_list_with_a_comment(live_flow, erp, dev_client):
    erp.reject = {1, 2, 3}
    run_once(live_flow)
    ids = [str(pk) for pk in FlowError.objects.values_list("pk", flat=True)[:2]]
    response = dev_client.post(
        reverse("runs:errors_bulk", args=[live_flow.integration_id]),
        {"action": "resolve", "ids": ids, "comment": "Known: test orders"},
    )
    assert response.status_code == 302
    assert FlowError.objects.filter(state="resolved").count() == 2
    assert Event.objects.filter(action="error_resolved").count() == 2


def test_resolving_all_matching_the_filters(live_flow, erp, dev_client):
    erp.reject = {1, 2, 3}
    run_once(live_flow)
    dev_client.post(
        reverse("runs:errors_bulk", args=[live_flow.integration_id]),
        {"action": "resolve", "all_matching": "1", "query": "tab=open&q=c2%40"},
    )
    assert list(
        FlowError.objects.filter(state="resolved").values_list("record__order_id", flat=True)
    ) == [2]


def test_editing_the_record_on_the_error_page_and_retrying_resolves_it(
    live_flow, erp, dev_client, django_capture_on_commit_callbacks
):
    erp.reject = {2}
    run_once(live_flow)
    error = FlowError.objects.get()
    page = dev_client.get(reverse("runs:error", args=[error.pk])).content.decode()
    assert "Retry from Send to ERP" in page
    erp.received.clear()
    edited = '{"order_id": 200, "amount": 20, "email": "c2@example.com", "password": "••••••"}'
    with django_capture_on_commit_callbacks(execute=True):
        response = dev_client.post(
            reverse("runs:error", args=[error.pk]), {"action": "retry", "record": edited}
        )
    assert response.status_code == 302
    retry = ErrorRetry.objects.get()
    assert response["Location"] == reverse("runs:error_retry", args=[retry.pk])
    assert erp.received == [
        {"order_id": 200, "amount": 20, "email": "c2@example.com", "password": "pw2"}
    ]
    shown = dev_client.get(response["Location"]).content.decode()
    assert "1 of 1" in shown and "now succeed" in shown
    assert FlowError.objects.get().state == "resolved"


def test_a_record_that_is_not_json_is_refused_and_nothing_is_retried(live_flow, erp, dev_client):
    erp.reject = {2}
    run_once(live_flow)
    error = FlowError.objects.get()
    response = dev_client.post(
        reverse("runs:error", args=[error.pk]), {"action": "retry", "record": "{not json"}
    )
    assert response.status_code == 400 and "not valid JSON" in response.content.decode()
    assert not ErrorRetry.objects.exists()


def _merge_fix(integration: Integration, developer, capture) -> object:
    """Clone the integration, fix the import step's mapping in the clone, pull, merge."""
    with capture(execute=True):
        clone = revision_services.integration_clone(
            source=integration, user=developer, name="Orders sandbox fix"
        )
    clone = Integration.objects.get(pk=clone.pk)
    step = FlowStep.objects.get(flow__integration=clone, name="Send to ERP")
    step.config = {**step.config, "mappings": _mappings("order_id")}
    step.save()
    with capture(execute=True):
        pull = revision_services.pull_create(target=integration, source=clone, user=developer)
    pull.refresh_from_db()
    assert pull.status == "ready", pull.error
    with capture(execute=True):
        revision_services.merge_start(revision=pull, user=developer)
    pull.refresh_from_db()
    assert pull.status == "completed", pull.error
    return pull


def _mappings(order_key: str) -> list[dict[str, str]]:
    return [
        {"source": "order_id", "target": order_key},
        {"source": "amount", "target": "amount"},
        {"source": "email", "target": "email"},
    ]


def test_retry_with_the_fix_after_a_merge_of_a_mapping_fix_turns_errors_into_successes(
    live_flow, erp, developer, dev_client, django_capture_on_commit_callbacks
):
    # The import step maps the order id to a field the ERP does not know: every order fails.
    step = FlowStep.objects.get(flow=live_flow, name="Send to ERP")
    step.config = {**step.config, "mappings": _mappings("orderid")}
    step.save()
    run_once(live_flow)
    assert FlowError.objects.filter(state="open").count() == 5
    pull = _merge_fix(live_flow.integration, developer, django_capture_on_commit_callbacks)

    detail = dev_client.get(reverse("revisions:detail", args=[pull.pk])).content.decode()
    assert "Retry 5 open errors of the flows this change touched" in detail
    erp.received.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = dev_client.post(reverse("runs:revision_retry_offer", args=[pull.pk]))
    assert response.status_code == 302
    assert sorted(r["order_id"] for r in erp.received) == [1, 2, 3, 4, 5]
    assert FlowError.objects.filter(state="resolved", resolved_by="retry").count() == 5
    retry = ErrorRetry.objects.get()
    assert retry.revision_id == pull.pk
    detail = dev_client.get(reverse("revisions:detail", args=[pull.pk])).content.decode()
    assert re.search(r"<strong>5 of 5</strong>\s*now succeed", detail)


def test_a_merge_that_touches_no_flow_with_errors_offers_nothing(
    live_flow, erp, developer, dev_client, django_capture_on_commit_callbacks
):
    erp.reject = {2}
    run_once(live_flow)
    other = Flow.objects.create(integration=live_flow.integration, name="Other flow")
    assert other.pk
    with django_capture_on_commit_callbacks(execute=True):
        clone = revision_services.integration_clone(
            source=live_flow.integration, user=developer, name="Clone"
        )
    Flow.objects.filter(integration_id=clone.pk, name="Other flow").update(description="x")
    for f in Flow.objects.filter(integration_id=clone.pk, name="Other flow"):
        f.description = "Changed"
        f.save()
    with django_capture_on_commit_callbacks(execute=True):
        pull = revision_services.pull_create(
            target=live_flow.integration, source=clone, user=developer
        )
    pull.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        revision_services.merge_start(revision=pull, user=developer)
    detail = dev_client.get(reverse("revisions:detail", args=[pull.pk])).content.decode()
    assert "have no open errors to retry" in detail
    assert 'data-testid="retry-with-fix"' not in detail


def test_the_pages_csv_download_uses_the_same_filters(live_flow, erp, dev_client, monitor_client):
    erp.reject = {2, 4}
    run_once(live_flow)
    url = reverse("runs:errors_csv", args=[live_flow.integration_id]) + "?state=open&q=c4%40"
    response = monitor_client.get(url)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    lines = b"".join(response.streaming_content).decode().strip().splitlines()
    assert len(lines) == 2 and '""order_id"":4' in lines[1] and "c4@example.com" in lines[1]


def test_the_home_tile_counts_open_errors_up_to_a_cap_and_then_says_more_than(
    sandbox, dev_client, monkeypatch, django_assert_max_num_queries
):
    """A tile counts at most OPEN_COUNT_CAP open errors (reading a million to count them
    slowed every home page); past it, "More than N open errors"; resolved ones never."""
    flow = build_flow(sandbox)
    for _ in range(3):
        make_error(flow)
    make_error(flow, state=ErrorState.RESOLVED)
    quiet = Integration.objects.create(name="No errors")
    with django_assert_max_num_queries(1):
        counts = error_selectors.open_counts_by_integration([sandbox.pk, quiet.pk])
    assert counts == {sandbox.pk: 3}
    assert "3 open errors" in dev_client.get(reverse("integrations:home")).content.decode()

    monkeypatch.setattr(error_selectors, "OPEN_COUNT_CAP", 2)
    assert error_selectors.open_counts_by_integration([sandbox.pk]) == {sandbox.pk: 3}
    home = dev_client.get(reverse("integrations:home")).content.decode()
    assert "More than 2 open errors" in home and "3 open errors" not in home


def test_the_retry_offer_reads_the_merged_state_only_when_errors_could_be_retried(
    sandbox, monkeypatch
):
    """Working out which flows a merge touched reads every body of the merged state; a
    merge where no retryable error is open must not pay for it."""
    from types import SimpleNamespace

    read = []
    monkeypatch.setattr(error_selectors, "flows_touched", lambda r: read.append(r) or set())
    merged = SimpleNamespace(integration_id=sandbox.pk)
    flow = build_flow(sandbox)
    make_error(flow, retry_data=None)  # open, but nothing to retry with
    assert error_selectors.retry_offer_count(merged) == (0, 0) and read == []
    make_error(flow, retry_data="sealed")
    error_selectors.retry_offer_count(merged)
    assert read == [merged]
