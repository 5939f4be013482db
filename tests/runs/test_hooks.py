"""JavaScript hooks in a real V8 isolate (mini-racer), alone and inside a run."""

from __future__ import annotations

import json

import httpx
import pytest

from runs.engine import execute, scripts_of
from runs.hooks import HookError, V8HookRunner
from tests.runs.flows import FLOW, document, export, importer, script

UPPER = """function preMap(options) {
  return options.data.map(function (r) { r.name = r.name.toUpperCase(); return r; });
}"""

THROWS = """function preMap(options) {
  var first = options.data[0];
  throw new Error("no price on " + first.id);
}"""


def runner(code, function="preMap", **kw):
    return V8HookRunner({"sc1": {"name": "hook", "function": function, "code": code}}, **kw)


def test_a_hook_transforms_the_page():
    with runner(UPPER) as hooks:
        out = hooks.call("sc1", {"data": [{"name": "ada"}, {"name": "bo"}], "errors": []})
    assert out == [{"name": "ADA"}, {"name": "BO"}]


def test_a_thrown_error_gives_the_message_and_the_script_line():
    with runner(THROWS) as hooks, pytest.raises(HookError) as caught:
        hooks.call("sc1", {"data": [{"id": 7}]})
    assert caught.value.message == "Error: no price on 7"
    assert caught.value.line == 3


def test_an_endless_loop_is_stopped_at_the_time_limit_and_the_isolate_goes_on():
    code = "function preMap(o) { if (o.spin) { while (true) {} } return o.data; }"
    with runner(code, time_limit_ms=200) as hooks:
        with pytest.raises(HookError, match="time limit of 200 ms"):
            hooks.call("sc1", {"data": [], "spin": True})
        assert hooks.call("sc1", {"data": [1]}) == [1]


def test_a_memory_hog_is_stopped_at_the_memory_limit_and_the_next_call_starts_clean():
    code = """function preMap(o) {
      if (o.hog) { var a = []; while (true) { a.push(new Array(100000).fill(1)); } }
      return o.data;
    }"""
    with runner(code, memory_limit_mb=32, time_limit_ms=20000) as hooks:
        with pytest.raises(HookError, match="memory limit of 32 MB"):
            hooks.call("sc1", {"data": [], "hog": True})
        assert hooks.call("sc1", {"data": [2]}) == [2]


def test_a_long_run_of_different_pages_stays_under_the_memory_limit():
    # Fig 8 broke at page 738 of 1,000: each page went in as JavaScript source, which V8
    # keeps compiled, so distinct pages of 100 small records piled up past 64 MB.
    with runner(UPPER, memory_limit_mb=16) as hooks:
        for page in range(400):
            data = [{"name": f"customer {page}-{i}", "note": "x" * 400} for i in range(100)]
            out = hooks.call("sc1", {"data": data, "errors": []})
            assert out[0]["name"] == f"CUSTOMER {page}-0"


@pytest.mark.parametrize(
    ("call", "refusal"),
    [
        ("require('fs')", "ReferenceError: require is not defined"),
        ("fetch('http://example.com')", "ReferenceError: fetch is not defined"),
        ("process.env", "ReferenceError: process is not defined"),
        ("new XMLHttpRequest()", "ReferenceError: XMLHttpRequest is not defined"),
        ("setTimeout(function () {}, 0)", "TypeError: setTimeout is not a function"),
    ],
)
def test_scripts_have_no_require_fetch_process_or_timers(call, refusal):
    code = f"function preMap(o) {{\n  {call};\n  return o.data;\n}}"
    with runner(code) as hooks, pytest.raises(HookError) as caught:
        hooks.call("sc1", {"data": []})
    assert caught.value.message == refusal
    assert caught.value.line == 2


def test_a_missing_function_and_a_syntax_error_are_reported_on_call():
    scripts = {
        "a": {"name": "wrong name", "function": "preMap", "code": "function postMap(o) {}"},
        "b": {
            "name": "broken",
            "function": "preMap",
            "code": "function preMap(o) {\n  return (;\n}",
        },
        "c": {"name": "good", "function": "preMap", "code": "function preMap(o) { return 1; }"},
    }
    with V8HookRunner(scripts) as hooks:
        with pytest.raises(HookError, match=r"'wrong name' has no function preMap\(\)"):
            hooks.call("a", {})
        with pytest.raises(HookError) as caught:
            hooks.call("b", {})
        assert "SyntaxError" in caught.value.message and caught.value.line == 2
        with pytest.raises(HookError, match="not in this integration"):
            hooks.call("zzz", {})
        assert hooks.call("c", {}) == 1


def test_two_scripts_may_define_the_same_function_name():
    scripts = {
        "a": {"name": "a", "function": "preMap", "code": "function preMap(o) { return 'a'; }"},
        "b": {"name": "b", "function": "preMap", "code": "function preMap(o) { return 'b'; }"},
    }
    with V8HookRunner(scripts) as hooks:
        assert (hooks.call("a", {}), hooks.call("b", {})) == ("a", "b")


# --- hooks inside a run ---------------------------------------------------------------


def shop(orders, received):
    def handle(request):
        if request.url.host == "shop.test":
            return httpx.Response(200, json=orders)
        received.append(json.loads(request.content))
        return httpx.Response(201)

    return handle


def hooked_flow(hook_code, hook="preMap"):
    return document(
        export(),
        importer(hooks={hook: "sc1"}),
        sc1=script("hook", hook, hook_code),
    )


def test_a_pre_map_hook_changes_what_is_sent_once_per_page():
    received = []
    orders = [{"id": 1, "name": "ada"}, {"id": 2, "name": "bo"}]
    doc = hooked_flow(UPPER)
    with V8HookRunner(scripts_of(doc)) as hooks:
        report = execute(
            doc, FLOW, transport=httpx.MockTransport(shop(orders, received)), hooks=hooks
        )
    assert report.status == "succeeded"
    assert received == [{"id": 1, "name": "ADA"}, {"id": 2, "name": "BO"}]
    assert report.steps[1].split_ms["hooks"] > 0


def test_a_throwing_hook_fails_the_pages_records_with_its_message_and_line():
    received = []
    orders = [{"id": 7}, {"id": 8}]
    doc = hooked_flow(THROWS)
    with V8HookRunner(scripts_of(doc)) as hooks:
        report = execute(
            doc, FLOW, transport=httpx.MockTransport(shop(orders, received)), hooks=hooks
        )
    assert received == []
    assert report.status == "failed"
    assert [(e.record_index, e.record, e.kind, e.script_line) for e in report.errors] == [
        (0, {"id": 7}, "script", 3),
        (1, {"id": 8}, "script", 3),
    ]
    assert report.errors[0].message == "preMap hook: Error: no price on 7"


def test_hook_errors_returned_with_the_data_fail_only_those_records():
    code = """function preSavePage(o) {
      return {data: o.data, errors: [{index: 1, message: "missing email"}]};
    }"""
    received = []
    orders = [{"id": 1}, {"id": 2}, {"id": 3}]
    doc = hooked_flow(code, hook="preSavePage")
    with V8HookRunner(scripts_of(doc)) as hooks:
        report = execute(
            doc, FLOW, transport=httpx.MockTransport(shop(orders, received)), hooks=hooks
        )
    assert report.status == "partial"
    assert received == [{"id": 1}, {"id": 3}]
    (error,) = report.errors
    assert (error.record_index, error.record, error.message) == (
        1,
        {"id": 2},
        "preSavePage hook: missing email",
    )


def test_a_flow_with_hooks_but_no_hook_runner_fails_those_records_clearly():
    received = []
    doc = hooked_flow(UPPER)
    report = execute(doc, FLOW, transport=httpx.MockTransport(shop([{"id": 1}], received)))
    assert report.status == "failed"
    assert received == []
    assert report.errors[0].message == "preMap hook: this run has no hook runner."


def _marker(name):
    return script(
        name,
        name,
        f"function {name}(o) {{ return o.data.map(function (r) {{"
        f" r.seen = (r.seen || []).concat([{name!r}]); return r; }}); }}",
    )


def test_the_four_hooks_run_once_per_page_in_order_around_mapping_and_sending():
    received = []
    names = ["preMap", "postMap", "preSavePage", "postSubmit"]
    doc = document(
        export(),
        importer(
            hooks={n: f"h-{n}" for n in names},
            mappings=[{"source": "id", "target": "ref"}, {"source": "seen", "target": "seen"}],
        ),
        **{f"h-{n}": _marker(n) for n in names},
    )
    orders = [{"id": 1}, {"id": 2}]

    class Counting(V8HookRunner):
        calls: list[str] = []

        def call(self, script_lineage_id, options):
            self.calls.append(script_lineage_id)
            return super().call(script_lineage_id, options)

    with Counting(scripts_of(doc)) as hooks:
        report = execute(
            doc, FLOW, transport=httpx.MockTransport(shop(orders, received)), hooks=hooks
        )
    # preMap ran before the mappings (its mark was mapped), postMap and preSavePage after,
    # and postSubmit after sending: what was sent does not carry its mark
    assert received == [
        {"ref": 1, "seen": ["preMap", "postMap", "preSavePage"]},
        {"ref": 2, "seen": ["preMap", "postMap", "preSavePage"]},
    ]
    assert Counting.calls == [f"h-{n}" for n in names]  # once each for the one page
    assert report.status == "succeeded" and report.records_out == 2


def test_hooks_keep_their_time_limit_while_an_asyncio_loop_runs_in_the_thread():
    """An ASGI server or Playwright's sync API runs a loop in the caller's thread: the
    isolate must not bind to it (mini-racer would refuse time limits there)."""
    import asyncio
    import threading

    scripts = {
        "s": {
            "name": "s",
            "function": "preMap",
            "code": (
                "function preMap(o) {\n  return o.data.map(function (r) { r.x = 1; return r; });\n}"
            ),
        }
    }

    async def inside_a_loop():
        with V8HookRunner(scripts) as runner:
            return runner.call("s", {"data": [{"a": 1}], "errors": [], "settings": {}})

    # On a thread of its own: this test's thread may already run a loop (Playwright's).
    result: list = []
    thread = threading.Thread(target=lambda: result.append(asyncio.run(inside_a_loop())))
    thread.start()
    thread.join()
    assert result == [[{"a": 1, "x": 1}]]
