"""Properties of the engine (hypothesis): paging, retries, paths, histograms."""

from __future__ import annotations

import copy

import httpx
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runs import histogram
from runs.engine import _MISSING, execute, get_path, parse_path, set_path
from runs.mapping import MappingSpec, compile_mappings, not_in_cache
from tests.hypothesis_profiles import examples
from tests.runs.flows import ERP, FLOW, document, export, importer

FAST = settings(
    max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _pages(records, size):
    return [records[i : i + size] for i in range(0, len(records), size)]


@FAST
@given(
    count=st.integers(0, 120),
    size=st.integers(1, 30),
    kind=st.sampled_from(["next_url", "page"]),
)
def test_paging_never_loses_or_repeats_a_record(count, size, kind):
    records = [{"id": i} for i in range(count)]
    pages = _pages(records, size)

    def handle(request):
        if kind == "page":
            n = int(request.url.params["page"])
            return httpx.Response(200, json={"rows": pages[n - 1] if n <= len(pages) else []})
        n = int(request.url.params.get("after", "0"))
        body = {"rows": pages[n] if n < len(pages) else []}
        if n + 1 < len(pages):
            body["next"] = f"/api/orders?after={n + 1}"
        return httpx.Response(200, json=body)

    paging = {"type": "page", "param": "page"} if kind == "page" else {"type": "next_url"}
    doc = document(export(records_path="rows", paging=paging), importer())
    report = execute(doc, FLOW, mode="test", transport=httpx.MockTransport(handle))
    assert report.status == "succeeded"
    sent = report.output[0]["records"] if report.output else []
    assert sent == records
    assert report.records_in == count


ANSWERS = st.sampled_from([200, 201, 429, 500, 502, 503, 422, 404, "connect", "timeout"])


@FAST
@given(answers=st.lists(ANSWERS, min_size=1, max_size=10), cap=st.integers(1, 6))
def test_retries_never_exceed_the_cap(answers, cap):
    calls = []
    waits = []

    def handle(request):
        if request.url.host == "shop.test":
            return httpx.Response(200, json=[{"id": 1}])
        answer = answers[len(calls)] if len(calls) < len(answers) else 201
        calls.append(answer)
        if answer == "connect":
            raise httpx.ConnectError("refused")
        if answer == "timeout":
            raise httpx.ReadTimeout("slow")
        return httpx.Response(answer, headers={"Retry-After": "1"} if answer == 429 else {})

    doc = document(export(), importer())
    doc["resources"][ERP]["config"]["retry"] = {"max_attempts": cap}
    report = execute(
        doc, FLOW, transport=httpx.MockTransport(handle), sleep=waits.append, rand=lambda: 0.99
    )
    step = report.steps[1]
    assert 1 <= len(calls) <= cap
    assert step.http_calls == len(calls)
    assert step.http_retries == report.retries == len(calls) - 1
    assert len(waits) == len(calls) - 1
    assert all(0 <= w <= 60 for w in waits)
    done = calls[-1] in (200, 201)
    assert report.status == ("succeeded" if done else "failed")


KEYS = st.text(alphabet="abcxyz_", min_size=1, max_size=4)
PATHS = st.tuples(KEYS).flatmap(
    lambda head: st.lists(st.one_of(KEYS, st.integers(0, 3)), max_size=4).map(
        lambda rest: head + tuple(rest)
    )
)
VALUES = st.one_of(st.none(), st.integers(), st.text(max_size=5), st.booleans())


def _text(path):
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else key)
    return out


@FAST
@given(path=PATHS, value=VALUES)
def test_mapping_paths_get_what_set_put(path, value):
    text = _text(path)
    assert parse_path(text) == path
    record = set_path({}, text, value)
    assert get_path(record, text) == value


@FAST
@given(first=PATHS, second=PATHS, a=VALUES, b=VALUES)
def test_setting_one_path_keeps_another_that_is_not_its_prefix(first, second, a, b):
    if first[: len(second)] == second or second[: len(first)] == first:
        return
    record = set_path(set_path({}, first, a), second, b)
    # the second write may replace a container on the first path only where they share
    # a prefix whose next keys are of different kinds (a list where an object was)
    shared = 0
    while shared < min(len(first), len(second)) and first[shared] == second[shared]:
        shared += 1
    if type(first[shared]) is type(second[shared]):
        assert get_path(record, first) == a
    assert get_path(record, second) == b


@FAST
@given(
    a=st.lists(st.floats(0, 100000, allow_nan=False), max_size=50),
    b=st.lists(st.floats(0, 100000, allow_nan=False), max_size=50),
)
def test_histograms_merge_like_the_timings_they_count(a, b):
    ha, hb, hab = histogram.empty(), histogram.empty(), histogram.empty()
    for ms in a:
        histogram.observe(ha, ms)
        histogram.observe(hab, ms)
    for ms in b:
        histogram.observe(hb, ms)
        histogram.observe(hab, ms)
    assert histogram.merge(ha, hb) == hab
    if a or b:
        p50 = histogram.percentile(hab, 50)
        p95 = histogram.percentile(hab, 95)
        assert 0 <= p50 <= p95 <= histogram.BUCKETS_MS[-1]
    else:
        assert histogram.percentile(hab, 50) is None


JSONISH = st.recursive(
    st.one_of(st.none(), st.integers(), st.text(max_size=3)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)),
    max_leaves=8,
)


CACHE = {"a": "A", "x": {"in": "cache"}, "1": 1, "null": None}


def _by_the_general_walk(specs, record, *, build):
    """The mapping rule spelled out with get_path / set_path, one mapping after another.

    Mappings work on values: what a mapping reads is a copy, so a later write into it
    changes only the place it was written to (the general walk in place would write
    through to the record, the cache or the other place too, or make a cycle)."""
    target = {} if build else copy.deepcopy(record)
    for spec in specs:
        value = get_path(record if build else target, spec.source, _MISSING)
        if value is _MISSING:
            continue
        if spec.cache is not None:
            key = value if isinstance(value, str) else orjson.dumps(value).decode()
            value = spec.cache.get(key, _MISSING)
            if value is _MISSING:
                raise LookupError(not_in_cache(spec.source_text, key, spec.cache_name))
        target = set_path(target, spec.target, copy.deepcopy(value))
    return target


def _outcome(fn):
    try:
        return "ok", fn()
    except (LookupError, TypeError, AttributeError) as exc:
        return type(exc), str(exc)


SPECS = st.lists(
    st.builds(
        MappingSpec,
        source=st.one_of(st.just(()), PATHS),
        target=st.one_of(st.just(()), PATHS),
        cache=st.one_of(st.none(), st.just(CACHE)),
        source_text=st.just("src"),
        cache_name=st.just("Cache"),
    ),
    max_size=4,
)


@FAST
@given(
    specs=SPECS,
    record=st.one_of(st.dictionaries(KEYS, JSONISH, max_size=4), JSONISH),
    build=st.booleans(),
)
def test_compiled_mappings_do_what_the_general_walk_does_and_never_change_what_they_read(
    specs, record, build
):
    apply = compile_mappings(specs, build=build, missing=_MISSING)
    given_record, cache = copy.deepcopy(record), copy.deepcopy(CACHE)
    expected = _outcome(lambda: _by_the_general_walk(specs, copy.deepcopy(record), build=build))
    assert _outcome(lambda: apply(given_record)) == expected
    assert given_record == record  # what entered the step stays as it was (retry data)
    assert cache == CACHE


def test_compiled_mappings_take_keys_from_the_document_as_values_not_code():
    key = "x'] ; __import__('os').system('false') ; ['"
    apply = compile_mappings(
        [MappingSpec(source=(key,), target=(key, 0))], build=True, missing=_MISSING
    )
    assert apply({key: 1}) == {key: [1]}
