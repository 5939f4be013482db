"""Flow runs on a real Celery worker over Redis, against real HTTP servers.

A worker killed with SIGKILL mid-run (after page 1 was sent, while page 2 is being read)
leaves the task unacknowledged (acks late); Redis delivers it again after the visibility
timeout, and the next worker finds the run `running`: it marks it failed as interrupted
instead of running it again. The run ends once and no record is sent twice.
"""

from __future__ import annotations

import json
import threading

import pytest
from werkzeug import Request, Response

from integrations.models import AccessLevel, Environment
from runs.models import Run, RunStatus
from runs.services import run_start
from tests.factories import GrantFactory, IntegrationFactory
from tests.integration.workers import wait_for
from tests.runs.conftest import build_flow, orders

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

VISIBILITY_TIMEOUT = 3


class Shop:
    """A storefront whose page 2 hangs until released, and an ERP that records what it got."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.page_requests: list[int] = []
        self.received: list[dict] = []
        self.in_page_two = threading.Event()
        self.release = threading.Event()

    def orders(self, request: Request) -> Response:
        page = int(request.args.get("page", "1"))
        self.page_requests.append(page)
        body: dict = {"orders": orders(3, start=3 * (page - 1) + 1) if page <= 2 else []}
        if page == 2:
            self.in_page_two.set()
            self.release.wait(timeout=120)
        if page < 2:
            body["next"] = f"{self.url}/orders?page={page + 1}"
        return Response(json.dumps(body), content_type="application/json")

    def sales_order(self, request: Request) -> Response:
        self.received.append(json.loads(request.get_data()))
        return Response('{"ok": true}', status=201, content_type="application/json")


@pytest.fixture
def shop(httpserver):
    shop = Shop(httpserver.url_for("").rstrip("/"))
    httpserver.expect_request("/orders").respond_with_handler(shop.orders)
    httpserver.expect_request("/sales-orders", method="POST").respond_with_handler(shop.sales_order)
    yield shop
    shop.release.set()


def test_sigkill_mid_run_ends_the_run_once_as_interrupted_and_sends_nothing_twice(
    shop, developer, start_worker
):
    integration = IntegrationFactory(name="Shop → ERP", environment=Environment.SANDBOX)
    GrantFactory(integration=integration, user=developer, level=AccessLevel.MANAGE)
    flow = build_flow(integration, shop_url=shop.url, erp_url=shop.url)

    doomed = start_worker()
    run = run_start(flow=flow, user=developer)
    wait_for(shop.in_page_two.is_set, what="the worker to read page 2", workers=[doomed])
    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING
    assert [r["order_id"] for r in shop.received] == [1, 2, 3]  # page 1 was sent
    doomed.kill()

    rescuer = start_worker(
        CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT), ILM_TEST_RESTORE_EVERY_SECOND="1"
    )
    ended = wait_for(
        lambda: Run.objects.filter(pk=run.pk, status__in=["failed", "succeeded"]).first(),
        what="the redelivered run to end",
        workers=[rescuer],
    )
    assert ended.status == RunStatus.FAILED and ended.message.startswith("Interrupted")
    assert ended.ended_at is not None
    # Not run a second time: page 1 was read once, its records were sent once.
    assert shop.page_requests == [1, 2]
    assert [r["order_id"] for r in shop.received] == [1, 2, 3]
    assert Run.objects.filter(flow_lineage_id=flow.lineage_id).count() == 1
    # The flow is free for the next live run, which the rescuer runs to the end.
    shop.release.set()
    again = run_start(flow=flow, user=developer)
    done = wait_for(
        lambda: Run.objects.filter(pk=again.pk, status__in=["succeeded", "failed"]).first(),
        what="the next run to end",
        workers=[rescuer],
    )
    assert done.status == RunStatus.SUCCEEDED, done.message
    assert [r["order_id"] for r in shop.received] == [1, 2, 3, 1, 2, 3, 4, 5, 6]


def test_a_run_started_through_the_worker_succeeds_and_records_its_steps(
    shop, developer, celery_worker
):
    shop.release.set()
    integration = IntegrationFactory(name="Shop → ERP", environment=Environment.SANDBOX)
    flow = build_flow(integration, shop_url=shop.url, erp_url=shop.url)
    run = run_start(flow=flow, user=developer)
    done = wait_for(
        lambda: Run.objects.filter(pk=run.pk, status__in=["succeeded", "failed"]).first(),
        what="the run to end",
        workers=[celery_worker],
    )
    assert done.status == RunStatus.SUCCEEDED, done.message
    assert (done.records_in, done.records_out, done.pages) == (6, 6, 2)
    assert done.steps.count() == 3
