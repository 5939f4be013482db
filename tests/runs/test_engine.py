"""The engine over an in-process transport (httpx.MockTransport): no network, no waiting."""

from __future__ import annotations

import json

import httpx
import pytest

from runs.engine import BlockedURL, execute
from tests.runs.flows import CACHE, ERP, FLOW, SHOP, document, export, importer

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


def test_a_lookup_failing_half_way_keeps_the_record_as_it_entered_for_a_retry():
    # The lookup adds to copies of its records: what entered it stays as it was.
    entered = {"id": 1, "sku": "S1", "where": {"region": "north"}}
    shop = Shop(orders=[entered])
    doc = document(
        export(records_path="data"),
        {
            "kind": "lookup",
            "config": {
                "mappings": [
                    {"source": "sku", "target": "where.item", "lookup_cache": CACHE},
                    {"source": "where.region", "target": "zone", "lookup_cache": CACHE},
                ]
            },
        },
        importer(),
    )
    report = run(doc, shop, caches={CACHE: {"S1": "ITEM-1"}})
    assert report.status == "failed"
    assert "'north' is not in lookup cache" in report.errors[0].message
    assert report.errors[0].retry_record == entered
    assert report.errors[0].record == entered
    assert shop.received == []


def test_a_lookup_adds_to_copies_and_leaves_the_records_it_was_given_as_they_were():
    given = [{"id": 1, "sku": "S1", "where": {"region": "north"}}]
    before = json.loads(json.dumps(given))
    passed = []
    doc = document(
        {
            "kind": "lookup",
            "config": {
                "mappings": [
                    {"source": "sku", "target": "where.item", "lookup_cache": CACHE},
                    {"source": "where", "target": "copy"},
                    {"source": "id", "target": "copy.id"},
                ]
            },
        },
        importer(),
    )
    report = execute(
        doc,
        FLOW,
        mode="test",
        records=given,
        caches={CACHE: {"S1": "ITEM-1"}},
        on_passed=lambda step, records: passed.extend(records),
        watch_steps=["s1"],
    )
    assert report.status == "succeeded"
    assert report.output[0]["records"] == [
        {
            "id": 1,
            "sku": "S1",
            "where": {"region": "north", "item": "ITEM-1"},
            # a value read is a copy: writing into it later leaves where it came from alone
            "copy": {"region": "north", "item": "ITEM-1", "id": 1},
        }
    ]
    assert given == before
    assert passed == before  # the step's records as they entered it


def test_a_lookup_over_http_that_fails_keeps_the_record_as_it_entered_for_a_retry():
    def handle(request):
        if request.url.path.startswith("/api/customers/"):
            return httpx.Response(503, text="down")
        return httpx.Response(201)

    lookup = {
        "kind": "lookup",
        "connection": SHOP,
        "config": {
            "mappings": [{"source": "sku", "target": "item", "lookup_cache": CACHE}],
            "path": "/customers/{record.customer}",
            "target": "customer_detail",
        },
    }
    doc = document(lookup, importer())
    doc["resources"][SHOP]["config"]["retry"] = {"max_attempts": 1}
    entered = {"id": 2, "customer": "c9", "sku": "S1"}
    report = execute(
        doc,
        FLOW,
        records=[entered],
        caches={CACHE: {"S1": "ITEM-1"}},
        transport=httpx.MockTransport(handle),
    )
    assert report.status == "failed"
    assert report.errors[0].http_status == 503
    assert report.errors[0].record == {**entered, "item": "ITEM-1"}  # as the GET saw it
    assert report.errors[0].retry_record == entered


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


# --- retries --------------------------------------------------------------------------


class Flaky:
    """Answers the ERP's requests from a script of responses, then 201."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, request):
        if request.url.host == "shop.test":
            return httpx.Response(200, json=[{"id": 1}])
        self.calls += 1
        answer = self.answers.pop(0) if self.answers else httpx.Response(201)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_429_waits_what_retry_after_says_then_succeeds_and_every_attempt_counts():
    erp = Flaky(httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(201))
    waits = []
    report = run(document(export(), importer()), erp, sleep=waits.append)
    assert report.status == "succeeded"
    assert waits == [7.0]
    step = report.steps[1]
    assert (step.http_calls, step.http_retries, report.retries) == (2, 1, 1)
    assert sum(step.histogram) == 2


def test_5xx_and_connection_errors_back_off_exponentially_with_jitter():
    erp = Flaky(
        httpx.Response(503),
        httpx.ConnectError("connection refused"),
        httpx.Response(201),
    )
    doc = document(export(), importer())
    doc["resources"][ERP]["config"]["retry"] = {"max_attempts": 5}
    waits = []
    report = run(doc, erp, sleep=waits.append, rand=lambda: 0.5)
    assert report.status == "succeeded"
    assert waits == [0.5, 1.0]  # base 0.5 s doubling, jitter factor 0.5 + 0.5
    assert erp.calls == 3


def test_retries_stop_at_max_attempts_and_the_record_fails_with_the_last_answer():
    erp = Flaky(*[httpx.Response(500, text="database is down")] * 10)
    report = run(document(export(), importer()), erp)
    assert erp.calls == 3  # the default retry.max_attempts
    assert report.status == "failed"
    (error,) = report.errors
    assert error.http_status == 500
    assert error.message == "POST http://erp.test/orders answered HTTP 500, after 3 attempts."
    assert error.response_excerpt == "database is down"


def test_a_timeout_is_an_error_of_kind_timeout():
    erp = Flaky(*[httpx.ReadTimeout("slow")] * 3)
    report = run(document(export(), importer()), erp)
    assert report.errors[0].kind == "timeout"
    assert "timed out" in report.errors[0].message


def test_a_422_is_not_retried():
    erp = Flaky(httpx.Response(422, json={"error": "bad"}))
    waits = []
    report = run(document(export(), importer()), erp, sleep=waits.append)
    assert (erp.calls, waits, report.retries) == (1, [], 0)
    assert report.errors[0].http_status == 422


# --- paging ---------------------------------------------------------------------------


def next_url_shop(pages, *, relative=True):
    """Pages linked by `links.next`; relative links on the shop's own host."""

    def handle(request):
        n = int(request.url.params.get("p", "0"))
        body = {"items": pages[n], "links": {}}
        if n + 1 < len(pages):
            body["links"]["next"] = (
                f"?p={n + 1}" if relative else f"http://shop.test/api/orders?p={n + 1}"
            )
        return httpx.Response(200, json=body)

    return handle


@pytest.mark.parametrize("relative", [True, False])
def test_next_url_paging_follows_relative_and_absolute_links(relative):
    pages = [[{"id": 1}, {"id": 2}], [{"id": 3}], [{"id": 4}]]
    doc = document(
        export(records_path="items", paging={"type": "next_url", "path": "links.next"}),
        importer(),
    )
    report = run(doc, next_url_shop(pages, relative=relative), mode="test")
    assert report.status == "succeeded"
    assert report.output[0]["records"] == [{"id": n} for n in (1, 2, 3, 4)]
    assert report.pages == 3


def test_a_next_link_that_points_back_fails_the_run_clearly():
    def handle(request):
        return httpx.Response(200, json={"items": [{"id": 1}], "next": "/api/orders?p=1"})

    doc = document(export(records_path="items", paging={"type": "next_url"}), importer())
    report = run(doc, handle, mode="test")
    assert report.status == "failed"
    assert "paging loops" in report.message
    assert report.pages == 2  # the first page and the page it pointed to, then the loop


def test_paging_that_never_ends_stops_at_max_pages():
    def handle(request):
        n = int(request.url.params.get("p", "0"))
        return httpx.Response(200, json={"items": [{"id": n}], "next": f"?p={n + 1}"})

    doc = document(export(records_path="items", paging={"type": "next_url"}), importer())
    report = run(doc, handle, mode="test", max_pages=5)
    assert report.status == "failed"
    assert (
        report.message == "Step 'step 1': stopped after 5 pages; the export's paging does not end."
    )
    assert report.records_in == 5


def test_a_body_that_is_not_json_fails_the_export_with_an_excerpt():
    report = run(
        document(export(), importer()), lambda r: httpx.Response(200, text="<html>oops</html>")
    )
    assert report.status == "failed"
    assert "did not answer JSON" in report.message
    assert report.errors[0].response_excerpt == "<html>oops</html>"


def test_records_path_that_is_not_a_list_fails_clearly():
    report = run(
        document(export(records_path="data"), importer()),
        lambda r: httpx.Response(200, json={"data": {"id": 1}}),
    )
    assert report.status == "failed"
    assert "no list of records at 'data'" in report.message


# --- progress, cancel, limits ---------------------------------------------------------


def test_progress_after_each_page_and_cancel_between_pages():
    shop = Shop()
    seen = []
    report = run(
        document(paged_export(), importer()),
        shop,
        on_page=lambda r: seen.append((r.pages, r.records_in)),
        should_cancel=lambda: len(seen) == 2,
    )
    assert report.status == "canceled"
    assert seen == [(1, 100), (2, 200)]
    assert len(shop.received) == 199  # what was sent stays sent (one 422)
    assert report.message == "Canceled after 2 page(s)."


def test_only_the_first_max_errors_are_kept_but_all_are_counted():
    orders = [{"id": i, "qty": 7} for i in range(30)]
    report = run(document(paged_export(), importer()), Shop(orders=orders), max_errors=10)
    assert report.status == "failed"
    assert report.error_count == 30
    assert [e.record_index for e in report.errors] == list(range(10))
    assert report.steps[1].errors == 30


def test_batches_send_arrays_and_a_refused_batch_fails_all_its_records():
    orders = [{"id": i, "qty": i} for i in range(1, 26)]
    shop = Shop(orders=orders)
    report = run(document(paged_export(), importer(batch_size=10)), shop)
    assert report.steps[1].http_calls == 3
    assert [e.record_index for e in report.errors] == list(range(10))  # qty 7 in the first ten
    assert shop.received == orders[10:]
    assert report.status == "partial"


def test_placeholders_in_the_path_take_the_records_values_url_quoted():
    shop = Shop(orders=[{"id": "A/1", "qty": 1}, {"qty": 2}])
    report = run(document(export(records_path="data"), importer(path="/orders/{record.id}")), shop)
    assert shop.requests[-1].url.raw_path == b"/orders/A%2F1"
    assert report.errors[0].record_index == 1
    assert report.errors[0].message == "The record has no 'id'."
    assert report.errors[0].kind == "mapping"


def test_a_lookup_over_http_puts_the_body_at_target_and_a_404_fails_that_record():
    def handle(request):
        if request.url.host == "shop.test" and request.url.path == "/api/orders":
            return httpx.Response(
                200, json=[{"id": 1, "customer": "c1"}, {"id": 2, "customer": "c9"}]
            )
        if request.url.path == "/api/customers/c1":
            return httpx.Response(200, json={"email": "a@example.com"})
        if request.url.path == "/api/customers/c9":
            return httpx.Response(404, text="no such customer")
        return httpx.Response(201)

    lookup = {
        "kind": "lookup",
        "connection": SHOP,
        "config": {"path": "/customers/{record.customer}", "target": "customer_detail"},
    }
    report = run(document(export(), lookup), handle)
    assert report.status == "partial"
    assert report.records_out == 1
    assert report.errors[0].http_status == 404
    assert report.errors[0].record == {"id": 2, "customer": "c9"}
    assert report.steps[1].http_calls == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["resources"].pop(FLOW), "is not in this integration"),
        (lambda d: [d["resources"].pop(k) for k in ("s1", "s2")], "has no steps"),
        (lambda d: d["resources"][ERP].update(kind="ftp"), "the runtime speaks http"),
        (lambda d: d["resources"]["s2"].update(connection=None), "needs a connection"),
        (
            lambda d: d["resources"][ERP]["config"].update(auth={"type": "bearer"}),
            "bearer auth but has no token",
        ),
        (lambda d: d["resources"]["s2"]["config"].update(hooks={"onEvery": "x"}), "hooks must"),
        (lambda d: d["resources"]["s1"].update(position=9), "export can only be a flow's first"),
    ],
)
def test_a_flow_that_cannot_run_fails_before_any_request(change, message):
    doc = document(export(), importer())
    change(doc)
    shop = Shop()
    report = run(doc, shop)
    assert report.status == "failed"
    assert message in report.message
    assert shop.requests == []


def test_given_records_are_not_changed_by_the_run():
    records = [{"id": 1, "sku": "S1", "qty": 1}]
    doc = document(
        {
            "kind": "lookup",
            "config": {"mappings": [{"source": "sku", "target": "item", "lookup_cache": CACHE}]},
        },
        importer(),
    )
    report = run(doc, Shop(), records=records, mode="test", caches={CACHE: {"S1": "I1"}})
    assert records == [{"id": 1, "sku": "S1", "qty": 1}]
    assert report.output[0]["records"] == [{"id": 1, "sku": "S1", "qty": 1, "item": "I1"}]


def test_start_at_runs_the_records_from_that_step_on():
    records = [{"id": 1, "qty": 1}]
    doc = document(
        export(),
        {"kind": "transform", "config": {"mappings": [{"source": "id", "target": "x"}]}},
        importer(),
    )
    report = run(doc, Shop(), records=records, mode="test", start_at="s3")
    assert report.output == [{"step": "s3", "records": records}]


def test_a_test_run_lists_every_import_step_even_when_nothing_would_be_sent():
    doc = document(
        {
            "kind": "transform",
            "config": {"mappings": [{"source": "sku", "target": "item", "lookup_cache": CACHE}]},
        },
        importer(),
    )
    report = run(doc, Shop(), records=[{"sku": "unknown"}], mode="test", caches={CACHE: {}})
    assert report.output == [{"step": "s2", "records": []}]
    assert report.errors[0].message == "sku 'unknown' is not in lookup cache 'SKUs'."


def test_a_hook_runner_that_breaks_fails_only_that_page():
    class Broken:
        def call(self, script, options):
            raise RuntimeError("isolate gone")

    doc = document(export(), importer(hooks={"preMap": "x"}))
    report = run(doc, lambda r: httpx.Response(200, json=[{"id": 1}]), hooks=Broken())
    assert report.status == "failed"
    assert report.errors[0].message == "preMap hook could not run: RuntimeError('isolate gone')"


def test_the_engine_modules_import_no_django():
    import subprocess
    import sys

    code = (
        "import sys, runs.engine, runs.hooks, runs.netguard, runs.histogram; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_retry_after_as_an_http_date_and_a_huge_value_are_honoured_within_bounds():
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    erp = Flaky(
        httpx.Response(503, headers={"Retry-After": soon}),
        httpx.Response(429, headers={"Retry-After": "86400"}),
        httpx.Response(201),
    )
    doc = document(export(), importer())
    doc["resources"][ERP]["config"]["retry"] = {"max_attempts": 3}
    waits = []
    report = run(doc, erp, sleep=waits.append)
    assert report.status == "succeeded"
    assert 25 <= waits[0] <= 30
    assert waits[1] == 120  # a worker waits at most two minutes, whatever the server asks


def test_on_passed_hears_each_watched_steps_records_that_went_through_as_they_entered_it():
    heard: list[tuple[str, list]] = []
    shop = Shop(orders=[{"id": i, "qty": i} for i in range(5, 10)])
    report = run(
        document(
            paged_export(),
            {"kind": "transform", "config": {"mappings": [{"source": "qty", "target": "qty"}]}},
            importer(),
        ),
        shop,
        on_passed=lambda step, records: heard.append((step, records)),
        watch_steps={"s3"},
    )
    assert report.status == "partial"
    # Only the import step (s3) is watched; qty 7 was refused there, so it is not heard.
    assert [step for step, _ in heard] == ["s3"]
    assert heard[0][1] == [{"qty": 5}, {"qty": 6}, {"qty": 8}, {"qty": 9}]


def test_a_transform_writing_inside_a_value_it_placed_changes_neither_the_record_nor_the_cache():
    given = [{"id": 1, "sku": "S1", "address": {"city": "Oslo"}}, {"sku": "S1"}]
    passed = []
    doc = document(
        {
            "kind": "transform",
            "config": {
                "mappings": [
                    {"source": "address", "target": "customer"},
                    {"source": "id", "target": "customer.id"},
                    {"source": "sku", "target": "item", "lookup_cache": CACHE},
                    {"source": "id", "target": "item.ref"},
                ]
            },
        },
        importer(),
    )
    report = execute(
        doc,
        FLOW,
        mode="test",
        records=given,
        caches={CACHE: {"S1": {"name": "widget"}}},
        on_passed=lambda step, records: passed.extend(records),
        watch_steps=["s1"],
    )
    assert report.output[0]["records"] == [
        {"customer": {"city": "Oslo", "id": 1}, "item": {"name": "widget", "ref": 1}},
        {"item": {"name": "widget"}},  # not the first record's ref left in the cache
    ]
    assert passed == given  # the records as they entered the transform
