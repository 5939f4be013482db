"""Auto-resolve (Celigo's): a later live run that takes a record through the step where it
failed resolves that error by `auto`; the same record failing there again in another way
leaves only its newest error open. Retries and test runs never auto-resolve, and another
integration's errors (a clone shares lineage ids) are left alone. Retention of retry data
counts per step of each integration."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import override_settings

from audit.models import Event
from integrations.models import FlowStep
from runs.errors import errors_prune_retry_data
from runs.models import FlowError, RunMode
from runs.services import run_execute, run_start
from tests.factories import IntegrationFactory
from tests.runs.conftest import orders, run_once

pytestmark = pytest.mark.django_db


def test_a_record_the_target_takes_on_a_later_run_resolves_its_error_by_auto(
    live_flow, erp, dev_api
):
    erp.reject = {2, 4}
    run_once(live_flow)
    assert FlowError.objects.filter(state="open").count() == 2
    # Someone opened the customer account for order 2 in the ERP; order 4 still fails.
    erp.reject = {4}
    second = run_once(live_flow)
    two = FlowError.objects.get(record__order_id=2)
    four = FlowError.objects.get(record__order_id=4)
    assert (two.state, two.resolved_by, two.resolved_by_user) == ("resolved", "auto", None)
    assert two.resolved_at is not None and two.retries == 0
    assert two.resolve_comment == f"Run #{second.pk} took this record through the step."
    assert (four.state, four.occurrences) == ("open", 2)  # folded, not resolved
    listed = dev_api.get(
        f"/api/v1/integrations/{live_flow.integration_id}/errors?state=resolved"
    ).json()["results"]
    assert [(e["id"], e["resolved_by"]) for e in listed] == [(two.pk, "auto")]
    event = Event.objects.get(action="error_resolved", resource_id=two.pk)
    assert {"field": "resolved_by", "old": None, "new": "auto"} in event.changes
    assert {"field": "run", "old": None, "new": second.pk} in event.changes


def test_the_same_record_failing_again_in_another_way_keeps_only_its_newest_error(live_flow, erp):
    erp.reject = {3}
    run_once(live_flow)
    old = FlowError.objects.get()
    # The import now posts to a path the ERP does not serve: the same record fails at the
    # same step with another message.
    step = FlowStep.objects.get(flow=live_flow, name="Send to ERP")
    step.config = {**step.config, "path": "/sales-orders-v2"}
    step.save()
    again = run_once(live_flow)
    old.refresh_from_db()
    assert (old.state, old.resolved_by) == ("resolved", "auto")
    assert old.resolve_comment.startswith(f"Run #{again.pk} failed this record at this step")
    newest = FlowError.objects.filter(state="open")
    assert newest.count() == 5  # every order fails at the new path; one error each
    assert newest.get(record__order_id=3).message != old.message


def test_a_test_run_sends_nothing_and_resolves_nothing(live_flow, erp):
    erp.reject = {1}
    run_once(live_flow)
    erp.reject = set()
    test_run = run_start(flow=live_flow, user=None, mode=RunMode.TEST, records=orders(1))
    test_run = run_execute(run_id=test_run.pk)
    assert test_run.status == "succeeded"
    assert FlowError.objects.get().state == "open"


def test_another_integrations_error_of_the_same_step_and_record_stays_open(live_flow, erp):
    erp.reject = {5}
    run_once(live_flow)
    mine = FlowError.objects.get()
    # A clone keeps the step's lineage id: its error of the same record is its own.
    other = IntegrationFactory(name="Clone")
    theirs = FlowError.objects.get(pk=mine.pk)
    theirs.pk = None
    theirs.integration = other
    theirs.run = None
    theirs.save()
    erp.reject = set()
    run_once(live_flow)
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.resolved_by == "auto" and theirs.state == "open"


def test_a_whole_page_failure_has_no_record_and_is_never_auto_resolved(live_flow, erp, httpserver):
    erp.reject = set()
    httpserver.clear()
    httpserver.expect_request("/shop/orders").respond_with_data("down", status=503)
    run_once(live_flow)
    page_error = FlowError.objects.get()
    assert page_error.record_key == "" and page_error.record_index == -1
    httpserver.clear()
    httpserver.expect_request("/shop/orders").respond_with_json({"orders": orders(2)})
    httpserver.expect_request("/erp/sales-orders", method="POST").respond_with_handler(erp.handle)
    run_once(live_flow)
    page_error.refresh_from_db()
    assert page_error.state == "open"


# Retention -----------------------------------------------------------------------------


def test_retry_data_is_kept_per_step_of_each_integration_newest_first(live_flow, erp):
    erp.reject = {1, 2, 3, 4, 5}
    run_once(live_flow)
    other = IntegrationFactory(name="Clone")
    for error in FlowError.objects.order_by("pk"):  # a clone's errors of the same step
        error.pk = None
        error.integration = other
        error.run = None
        error.save()
    newest = list(
        FlowError.objects.filter(integration=live_flow.integration)
        .order_by("-last_seen", "-pk")
        .values_list("pk", flat=True)[:2]
    )
    assert errors_prune_retry_data(keep=2) == 6
    for integration in (live_flow.integration, other):
        kept = FlowError.objects.filter(integration=integration, retry_data__isnull=False)
        assert kept.count() == 2
    assert set(
        FlowError.objects.filter(
            integration=live_flow.integration, retry_data__isnull=False
        ).values_list("pk", flat=True)
    ) == set(newest)
    assert FlowError.objects.count() == 10  # summaries stay
    assert errors_prune_retry_data(keep=2) == 0  # idempotent


def test_the_prune_command_follows_the_setting_and_refuses_a_negative_keep(live_flow, erp):
    from io import StringIO

    from django.core.management.base import CommandError

    erp.reject = {1, 2, 3, 4, 5}
    run_once(live_flow)
    out = StringIO()
    with override_settings(ILM_ERROR_RETRY_DATA_PER_STEP=4):
        call_command("prune_error_retry_data", stdout=out)
    assert "Dropped the retry data of 1 error(s); kept 4 per step." in out.getvalue()
    with pytest.raises(CommandError):
        call_command("prune_error_retry_data", "--keep", "-1")
    assert FlowError.objects.filter(retry_data__isnull=False).count() == 4
