"""The engine over an in-process transport (httpx.MockTransport): no network, no waiting."""

from __future__ import annotations

import json

import httpx
import pytest

from runs.engine import BlockedURL, execute
from tests.runs.flows import CACHE, ERP, FLOW, document, export, importer

ORDERS = [{"id": i, "sku": f"S{i % 3}", "qty": i + 1} for i in range(250)]


class Shop:
    """A storefront paging by `page` (100 a page) and an ERP that refuses qty 7 with 422."""

    def __init__(self, orders=ORDERS, page_size=100):
        self.orders = orders
        self.page_size = page_size
        self.received: list = []
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host == "shop.test":
            page = int(request.url.params.get("page", "1"))
            chunk = self.orders[(page - 1) * self.page_size : page * self.page_size]
            return httpx.Response(200, json={"data": chunk})
        body = json.loads(request.content)
        batch = body if isinstance(body, list) else [body]
        if any(r.get("qty") == 7 for r in batch):
            return httpx.Response(422, text='{"error": "qty 7 is not sold"}')
        self.received.extend(batch)
        return httpx.Response(201, json={"ok": True})


def paged_export(**config):
    return export(records_path="data", paging={"type": "page", "param": "page"}, **config)


def run(doc, handler, **kw):
    kw.setdefault("sleep", lambda s: None)
    return execute(doc, FLOW, transport=httpx.MockTransport(handler), **kw)


def test_a_flow_reads_every_page_and_sends_every_record():
    orders = [{"id": i, "qty": 1} for i in range(250)]
    shop = Shop(orders=orders)
    report = run(document(paged_export(), importer()), shop)
    assert report.status == "succeeded"
    assert (report.records_in, report.records_out, report.pages) == (250, 250, 3)
    assert shop.received == orders
    assert report.samples == orders[:20]


def test_a_4xx_fails_only_that_record_and_the_run_is_partial():
    shop = Shop()
    report = run(document(paged_export(), importer()), shop)
    assert report.status == "partial"
    assert report.records_in == 250
    assert report.records_out == 249
    assert len(shop.received) == 249
    (error,) = report.errors
    assert error.record_index == 6
    assert error.record == {"id": 6, "sku": "S0", "qty": 7}
    assert error.kind == "http" and error.http_status == 422
    assert "qty 7 is not sold" in error.response_excerpt
    export_step, import_step = report.steps
    assert (export_step.records_out, import_step.records_in, import_step.errors) == (250, 250, 1)
    assert import_step.http_calls == 250


def test_lookup_through_a_cache_and_transform_build_the_sent_record():
    shop = Shop(orders=[{"id": 1, "sku": "S1", "qty": 2}])
    doc = document(
        export(records_path="data"),
        {
            "kind": "lookup",
            "config": {"mappings": [{"source": "sku", "target": "item", "lookup_cache": CACHE}]},
        },
        {
            "kind": "transform",
            "config": {
                "mappings": [
                    {"source": "id", "target": "order.ref"},
                    {"source": "item", "target": "lines[0].item"},
                    {"source": "qty", "target": "lines[0].qty"},
                ]
            },
        },
        importer(),
    )
    report = run(doc, shop, caches={CACHE: {"S1": "ITEM-1"}})
    assert report.status == "succeeded"
    assert shop.received == [{"order": {"ref": 1}, "lines": [{"item": "ITEM-1", "qty": 2}]}]


def test_bearer_credentials_reach_the_request_and_never_the_report():
    shop = Shop(orders=[{"id": 1, "qty": 1}])
    doc = document(export(records_path="data"), importer())
    doc["resources"][ERP]["config"]["auth"] = {"type": "bearer"}
    report = run(doc, shop, credentials={ERP: {"token": "s3cret"}})
    assert report.status == "succeeded"
    assert shop.requests[-1].headers["authorization"] == "Bearer s3cret"
    assert "s3cret" not in repr(report)


def test_a_disabled_flow_fails_before_any_request():
    shop = Shop()
    report = run(document(paged_export(), importer(), enabled=False), shop)
    assert report.status == "failed"
    assert "disabled" in report.message
    assert shop.requests == []


def test_a_blocked_target_fails_the_export_clearly():
    def guard(url):
        raise BlockedURL("private address")

    shop = Shop()
    report = run(document(paged_export(), importer()), shop, url_guard=guard)
    assert report.status == "failed"
    assert "refused: private address" in report.message
    assert shop.requests == []
    assert report.errors[0].kind == "connection"


@pytest.mark.parametrize("mode", ["live", "test"])
def test_given_records_skip_the_export(mode):
    shop = Shop()
    records = [{"id": 1, "qty": 1}, {"id": 2, "qty": 2}]
    report = run(document(paged_export(), importer()), shop, records=records, mode=mode)
    assert report.status == "succeeded"
    assert not any(r.url.host == "shop.test" for r in shop.requests)
    if mode == "test":
        assert shop.requests == []
        assert report.output == [{"step": "s2", "records": records}]
    else:
        assert shop.received == records
