"""The behavioural diff from documents only: both sides run as tests, nothing is sent."""

from __future__ import annotations

import copy

import httpx

from runs.behaviour import behaviour_diff, field_changes, flows_touched
from runs.engine import HookError
from tests.runs.flows import CACHE, ERP, FLOW, document, importer, script

RECORDS = [{"id": i, "sku": f"S{i % 3}", "qty": i + 1, "name": f"Item {i}"} for i in range(20)]
SKUS = {"S0": "sku-zero", "S1": "sku-one", "S2": "sku-two"}


def mapped_importer(*mappings, **config):
    step = importer(**config)
    step["config"]["mappings"] = [
        {"source": s, "target": t, **({"lookup_cache": c} if c else {})} for s, t, c in mappings
    ]
    return step


def base_doc():
    return document(
        mapped_importer(("id", "order_id", None), ("qty", "quantity", None), ("sku", "item", CACHE))
    )


def records_for(records):
    return lambda flow_id: (copy.deepcopy(records), "given")


class NoNetwork:
    def __init__(self):
        self.requests = []

    def __call__(self, request):
        self.requests.append(request)
        return httpx.Response(500)


def diff(ours, theirs, changed, records=RECORDS, **kw):
    net = NoNetwork()
    kw.setdefault("caches", {CACHE: SKUS})
    result = behaviour_diff(
        ours, theirs, changed, records_for(records), transport=httpx.MockTransport(net), **kw
    )
    return result, net


def test_a_changed_mapping_shows_each_record_that_differs_field_by_field():
    ours = base_doc()
    theirs = copy.deepcopy(ours)
    theirs["resources"]["s1"]["config"]["mappings"][1]["source"] = "id"  # quantity ← id
    result, net = diff(ours, theirs, {"s1"})
    (flow,) = result["flows"]
    assert (flow["lineage_id"], flow["name"], flow["samples"]) == (FLOW, "Orders", 20)
    # qty is id + 1, so every record now sends a different quantity
    assert flow["same"] == 0 and len(flow["different"]) == 20
    first = flow["different"][0]
    assert first["record_index"] == 0
    assert first["fields"] == [
        {"path": "quantity", "ours": 1, "theirs": 0, "ours_missing": False, "theirs_missing": False}
    ]
    assert flow["errors"] == {"ours": [], "theirs": []}
    assert result["totals"] == {
        "flows": 1,
        "untested_flows": 0,
        "records": 20,
        "outputs": 20,
        "same": 0,
        "different": 20,
        "new_errors": 0,
        "fixed_errors": 0,
    }
    assert net.requests == []  # imports did not send, nothing else was called


def test_a_change_that_sends_the_same_records_is_identical():
    ours = base_doc()
    theirs = copy.deepcopy(ours)
    theirs["resources"]["s1"]["name"] = "Renamed import"
    result, _ = diff(ours, theirs, {"s1"})
    (flow,) = result["flows"]
    assert (flow["same"], flow["different"]) == (20, [])
    assert result["totals"]["same"] == 20


def test_only_flows_the_change_touches_run():
    ours = base_doc()
    other = "f0000000-0000-0000-0000-000000000099"
    ours["resources"][other] = {"type": "flow", "name": "Other", "enabled": True}
    ours["resources"]["x1"] = {
        "type": "step",
        "name": "x",
        "flow": other,
        "position": 1,
        "kind": "transform",
        "config": {},
    }
    theirs = copy.deepcopy(ours)
    theirs["resources"]["x1"]["config"] = {"mappings": [{"source": "id", "target": "k"}]}
    assert [f[0] for f in flows_touched(ours, theirs, {"x1"})] == [other]
    # a lookup cache's settings touch the flows whose mappings use it
    assert [f[0] for f in flows_touched(ours, theirs, {CACHE})] == [FLOW]
    # a connection alone touches no flow's output
    assert flows_touched(ours, theirs, {ERP}) == []


def test_lookup_cache_entries_come_from_the_caller_for_both_sides():
    ours = base_doc()
    theirs = copy.deepcopy(ours)
    theirs["resources"][CACHE]["settings"] = {"ttl": 5}
    result, _ = diff(ours, theirs, {CACHE}, caches={CACHE: {"S0": "a", "S1": "b", "S2": "c"}})
    (flow,) = result["flows"]
    assert flow["same"] == 20  # the same entries on both sides: only configuration shows


def test_a_hook_that_now_throws_is_a_new_error_and_a_fixed_one_disappears():
    ours = base_doc()
    theirs = copy.deepcopy(ours)
    ours["resources"]["sc1"] = script("old", "preSavePage", "function preSavePage(o){throw 1}")
    theirs["resources"]["sc1"] = script("new", "preSavePage", "function preSavePage(o){}")
    theirs["resources"]["s1"]["config"]["hooks"] = {"preSavePage": "sc1"}

    class Hooks:
        def __init__(self, fail):
            self.fail = fail

        def call(self, script_id, options):
            if self.fail:
                raise HookError("boom", line=1)
            return options["data"]

    result, _ = diff(ours, theirs, {"s1", "sc1"}, hooks={"ours": None, "theirs": Hooks(True)})
    (flow,) = result["flows"]
    assert flow["same"] == 0 and len(flow["different"]) == 20
    assert flow["different"][3]["fields"][0]["theirs_missing"] is True
    new = flow["errors"]["theirs"]
    assert len(new) == 20 and new[0]["kind"] == "script" and "boom" in new[0]["message"]
    assert new[0]["step_name"] == "step 1"
    assert flow["errors"]["ours"] == []
    assert result["totals"]["new_errors"] == 20

    # the other way round: the errors disappear
    back, _ = diff(theirs, ours, {"s1", "sc1"}, hooks={"ours": Hooks(True), "theirs": None})
    assert back["totals"]["fixed_errors"] == 20 and back["totals"]["new_errors"] == 0


def test_a_mapping_that_now_fails_is_a_new_error_on_the_record():
    ours = base_doc()
    theirs = copy.deepcopy(ours)
    theirs["resources"]["s1"]["config"]["mappings"][2]["source"] = "name"  # not a cache key
    result, _ = diff(ours, theirs, {"s1"})
    (flow,) = result["flows"]
    assert len(flow["errors"]["theirs"]) == 20
    assert flow["errors"]["theirs"][0]["kind"] == "mapping"
    assert "not in lookup cache" in flow["errors"]["theirs"][0]["message"]


def test_a_flow_the_pull_adds_runs_only_on_theirs():
    ours = base_doc()
    theirs = copy.deepcopy(ours)
    ours["resources"].pop(FLOW)
    result, _ = diff(ours, theirs, {FLOW})
    (flow,) = result["flows"]
    assert flow["change"] == "added"
    assert flow["errors"]["ours"][0]["kind"] == "flow"
    assert len(flow["different"]) == 20
    assert flow["different"][0]["fields"][0]["ours_missing"] is True


def test_the_documents_and_records_are_left_as_they_were():
    ours = base_doc()
    theirs = copy.deepcopy(ours)
    theirs["resources"]["s1"]["config"]["mappings"].append({"source": "qty", "target": "q.n"})
    records = copy.deepcopy(RECORDS)
    before = copy.deepcopy((ours, theirs, records))
    behaviour_diff(ours, theirs, {"s1"}, lambda f: (records, "given"), caches={CACHE: SKUS})
    assert (ours, theirs, records) == before


def test_a_flow_without_samples_is_listed_untested():
    ours = base_doc()
    theirs = copy.deepcopy(ours)
    theirs["resources"]["s1"]["name"] = "x"
    result = behaviour_diff(ours, theirs, {"s1"}, lambda f: ([], "none"))
    assert result["flows"][0]["samples"] == 0
    assert result["totals"]["flows"] == 0 and result["totals"]["untested_flows"] == 1


def test_field_changes_name_nested_paths_and_tell_missing_from_null():
    rows = field_changes({"a": {"b": 1, "c": None}}, {"a": {"b": 2}, "d": [1]})
    assert [(r["path"], r["ours"], r["theirs"]) for r in rows] == [
        ("a.b", 1, 2),
        ("a.c", None, None),
        ("d[0]", None, 1),
    ]
    assert rows[1]["theirs_missing"] and rows[2]["ours_missing"]
    assert field_changes({"n": 1}, {"n": 1.0})[0]["path"] == "n"  # JSON 1 and 1.0 differ
