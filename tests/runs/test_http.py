"""The engine over real HTTP: a local pytest-httpserver plays the shop and the ERP."""

from __future__ import annotations

import json
import ssl
import time

import pytest
from werkzeug import Request, Response

from runs.engine import execute
from runs.netguard import make_url_guard
from tests.runs.flows import ERP, FLOW, SHOP, connection, document, export, importer

ORDERS = [{"id": i, "total": i * 10} for i in range(1, 121)]


def flow(httpserver, *steps, erp=None, shop=None):
    doc = document(*steps)
    doc["resources"][SHOP] = connection("Shop", httpserver.url_for("/shop"), **(shop or {}))
    doc["resources"][ERP] = connection("ERP", httpserver.url_for("/erp"), **(erp or {}))
    return doc


def paged_orders(request: Request) -> Response:
    page = int(request.args.get("page", "1"))
    size = int(request.args.get("per_page", "50"))
    chunk = ORDERS[(page - 1) * size : page * size]
    return Response(json.dumps({"orders": chunk}), content_type="application/json")


def collect(into):
    def handle(request: Request) -> Response:
        into.extend(
            request.get_json() if isinstance(request.get_json(), list) else [request.get_json()]
        )
        return Response("{}", status=201, content_type="application/json")

    return handle


def answers(*responses: Response):
    """A handler answering with the given responses in turn, then 201 (and the count)."""
    queue = list(responses)
    seen = []

    def handle(request: Request) -> Response:
        seen.append(request.get_json())
        return queue.pop(0) if queue else Response("{}", status=201)

    handle.seen = seen
    return handle


def test_an_export_with_paging_and_an_import_in_batches(httpserver):
    received = []
    httpserver.expect_request("/shop/orders").respond_with_handler(paged_orders)
    httpserver.expect_request("/erp/sales-orders", method="POST").respond_with_handler(
        collect(received)
    )
    doc = flow(
        httpserver,
        export(
            "/orders",
            query={"per_page": 50},
            records_path="orders",
            paging={"type": "page", "param": "page", "start": 1},
        ),
        importer("/sales-orders", batch_size=25),
        erp={"headers": {"X-Tenant": "acme"}},
    )
    report = execute(doc, FLOW, credentials={})
    assert report.status == "succeeded"
    assert received == ORDERS
    assert (report.records_in, report.records_out, report.pages) == (120, 120, 3)
    export_step, import_step = report.steps
    assert export_step.http_calls == 4  # three pages and the empty one that ends paging
    assert import_step.http_calls == 5  # 50 + 50 + 20 records in batches of 25
    assert sum(import_step.histogram) == 5
    tenants = {r.headers.get("X-Tenant") for r, _ in httpserver.log if r.path.startswith("/erp")}
    assert tenants == {"acme"}


def test_basic_auth_and_header_auth_reach_the_server(httpserver):
    httpserver.expect_request("/shop/orders", headers={"X-Api-Key": "k-123"}).respond_with_json(
        [{"id": 1}]
    )
    httpserver.expect_request("/erp/orders", method="POST").respond_with_json({}, status=201)
    doc = flow(
        httpserver,
        export("/orders"),
        importer("/orders"),
        shop={"auth": {"type": "header", "header": "X-Api-Key"}},
        erp={"auth": {"type": "basic"}},
    )
    report = execute(
        doc, FLOW, credentials={SHOP: {"value": "k-123"}, ERP: {"username": "u", "password": "p"}}
    )
    assert report.status == "succeeded"
    erp_request = next(r for r, _ in httpserver.log if r.path == "/erp/orders")
    assert erp_request.authorization.username == "u"
    assert erp_request.authorization.password == "p"


def test_429_with_retry_after_then_success(httpserver):
    httpserver.expect_request("/shop/orders").respond_with_json([{"id": 1}])
    httpserver.expect_request("/erp/orders").respond_with_handler(
        answers(Response("slow down", status=429, headers={"Retry-After": "2"}))
    )
    waits = []
    report = execute(flow(httpserver, export(), importer()), FLOW, sleep=waits.append)
    assert report.status == "succeeded"
    assert waits == [2.0]
    assert (report.steps[1].http_calls, report.retries) == (2, 1)


def test_500_then_success(httpserver):
    httpserver.expect_request("/shop/orders").respond_with_json([{"id": 1}, {"id": 2}])
    erp = answers(Response("oops", status=500))
    httpserver.expect_request("/erp/orders").respond_with_handler(erp)
    report = execute(flow(httpserver, export(), importer()), FLOW, sleep=lambda s: None)
    assert report.status == "succeeded"
    assert erp.seen == [{"id": 1}, {"id": 1}, {"id": 2}]
    assert report.records_out == 2
    assert report.retries == 1


def test_a_server_slower_than_timeout_s_fails_the_record_as_a_timeout(httpserver):
    def slow(request):
        time.sleep(0.6)
        return Response("{}", status=201)

    httpserver.expect_request("/shop/orders").respond_with_json([{"id": 1}])
    httpserver.expect_request("/erp/orders").respond_with_handler(slow)
    doc = flow(
        httpserver,
        export(),
        importer(),
        erp={"timeout_s": 0.2, "retry": {"max_attempts": 2}},
    )
    report = execute(doc, FLOW, sleep=lambda s: None)
    assert report.status == "failed"
    (error,) = report.errors
    assert error.kind == "timeout"
    assert error.record == {"id": 1}
    assert report.steps[1].http_calls == 2


def test_malformed_json_fails_the_export_with_the_body_excerpt(httpserver):
    httpserver.expect_request("/shop/orders").respond_with_data(
        '{"orders": [{"id": 1},', content_type="application/json"
    )
    report = execute(flow(httpserver, export(records_path="orders"), importer()), FLOW)
    assert report.status == "failed"
    assert "did not answer JSON" in report.message
    assert report.errors[0].response_excerpt == '{"orders": [{"id": 1},'
    assert report.errors[0].record_index == -1


def test_an_endless_next_loop_stops_and_fails_clearly(httpserver):
    counter = {"n": 0}

    def endless(request):
        counter["n"] += 1
        body = {"orders": [{"id": counter["n"]}], "next": f"/shop/orders?cursor={counter['n']}"}
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/shop/orders").respond_with_handler(endless)
    doc = flow(httpserver, export(records_path="orders", paging={"type": "next_url"}), importer())
    report = execute(doc, FLOW, mode="test", max_pages=25)
    assert report.status == "failed"
    assert "stopped after 25 pages" in report.message
    assert counter["n"] == 25


def test_the_ssrf_guard_refuses_the_loopback_server_in_production(httpserver):
    httpserver.expect_request("/shop/orders").respond_with_json([{"id": 1}])
    guard = make_url_guard(allow_private=False, allowed_hosts=[])
    report = execute(flow(httpserver, export(), importer()), FLOW, url_guard=guard)
    assert report.status == "failed"
    assert "loopback" in report.message
    assert httpserver.log == []
    allowed = make_url_guard(allow_private=True, allowed_hosts=[])
    httpserver.expect_request("/erp/orders").respond_with_json({}, status=201)
    assert execute(flow(httpserver, export(), importer()), FLOW, url_guard=allowed).status == (
        "succeeded"
    )


@pytest.mark.parametrize("status", [400, 422])
def test_a_refused_record_carries_status_and_body_and_the_run_goes_on(httpserver, status):
    httpserver.expect_request("/shop/orders").respond_with_json([{"id": 1}, {"id": 2}])
    erp = answers(Response('{"error": "customer unknown"}', status=status))
    httpserver.expect_request("/erp/orders").respond_with_handler(erp)
    report = execute(flow(httpserver, export(), importer()), FLOW)
    assert report.status == "partial"
    (error,) = report.errors
    assert (error.record_index, error.http_status) == (0, status)
    assert "customer unknown" in error.response_excerpt
    assert erp.seen == [{"id": 1}, {"id": 2}]  # not retried; the next record still sent


def test_runs_share_one_tls_setup_that_still_verifies_certificates(httpserver, monkeypatch):
    import httpx

    from runs import engine

    made = []
    real = httpx.create_ssl_context
    monkeypatch.setattr(httpx, "create_ssl_context", lambda *a, **kw: made.append(1) or real())
    engine._tls.cache_clear()
    httpserver.expect_request("/shop/orders").respond_with_handler(paged_orders)
    httpserver.expect_request("/erp/orders", method="POST").respond_with_data("{}", status=201)
    doc = flow(httpserver, export(records_path="orders"), importer())
    for _ in range(3):
        assert execute(doc, FLOW).status == "succeeded"
    assert len(made) == 1  # the CA bundle is read once per process, not once per run
    assert engine._tls().verify_mode == ssl.CERT_REQUIRED and engine._tls().check_hostname
