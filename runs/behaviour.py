"""What a pull's change does: the behavioural diff of two documents. Pure Python, no Django.

    result = behaviour_diff(ours, theirs, changed, records_for, hooks=..., caches=...)

`ours` is the target's document as it is, `theirs` the merged result with the current
resolutions (both `revisions.document` documents). `changed` holds the lineage ids the
pull changes. Every flow the change touches (the flow itself, one of its steps, a script
one of its steps' hooks calls, a lookup cache one of its mappings uses; looked up in both
documents) runs the same records through both documents with `runs.engine.execute` in
test mode: exports skipped, imports reporting what they would send instead of sending.
Then, per input record, what the imports would send is compared field by field.

The result (stored as it is and served by the API):

    {"flows": [{"lineage_id", "name", "change": "modified"/"added"/"deleted",
                "samples": n, "sample_source": "given"/"target"/"source"/"none",
                "same": n,
                "different": [{"record_index", "fields": [{path, ours, theirs,
                                                          ours_missing, theirs_missing}]}],
                "errors": {"ours": [error], "theirs": [error]}, "errors_unchanged": n}],
     "totals": {"flows", "records", "outputs", "same", "different", "new_errors",
                "fixed_errors"}}

An error is `{step, step_name, record_index, kind, message}`; `errors.theirs` are those
the change brings (a hook that now throws, a mapping that now fails), `errors.ours` those
it takes away. A flow that cannot run at all on one side (its document lacks it, a step
is misconfigured) reports that as one error of kind `flow` on that side. A record is the
same when both sides would send equal records and fail it with equal errors.

Lookup caches: both sides translate through the same `caches` (the target's entries; a
pull never carries data), so only configuration differences show.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx
import orjson

from runs.engine import execute
from runs.report import RunReport

SIDES = ("ours", "theirs")
MAX_DIFFERENT_SHOWN = 200  # records per flow whose field diff is kept
MAX_FIELDS_SHOWN = 100  # differing fields kept per record

_ABSENT: Any = object()


def _steps_of(document: Mapping[str, Any], flow_id: str) -> list[tuple[str, Mapping[str, Any]]]:
    return [
        (lid, body)
        for lid, body in (document.get("resources") or {}).items()
        if body.get("type") == "step" and str(body.get("flow")) == flow_id
    ]


def _dependencies(document: Mapping[str, Any], flow_id: str) -> set[str]:
    """The lineage ids a flow's behaviour depends on in one document."""
    found = {flow_id}
    for lid, body in _steps_of(document, flow_id):
        found.add(lid)
        config = body.get("config") if isinstance(body.get("config"), dict) else {}
        hooks = config.get("hooks") if isinstance(config.get("hooks"), dict) else {}
        found.update(str(s) for s in hooks.values() if s)
        for m in config.get("mappings") or []:
            if isinstance(m, dict) and m.get("lookup_cache"):
                found.add(str(m["lookup_cache"]))
    return found


def flows_touched(
    ours: Mapping[str, Any], theirs: Mapping[str, Any], changed: Iterable[str]
) -> list[tuple[str, str, str]]:
    """[(flow lineage id, name, change)] of the flows whose behaviour `changed` can alter,
    by name. `change` is "added" (only in theirs), "deleted" (only in ours) or "modified"."""
    changed = {str(c) for c in changed}
    out = []
    flows: dict[str, tuple[str, bool, bool]] = {}
    for side, doc in (("ours", ours), ("theirs", theirs)):
        for lid, body in (doc.get("resources") or {}).items():
            if body.get("type") == "flow":
                name, in_ours, in_theirs = flows.get(lid, ("", False, False))
                flows[lid] = (
                    body.get("name") or name or lid,
                    in_ours or side == "ours",
                    in_theirs or side == "theirs",
                )
    for lid, (name, in_ours, in_theirs) in flows.items():
        deps = _dependencies(ours, lid) | _dependencies(theirs, lid)
        if deps & changed:
            change = "modified" if in_ours and in_theirs else "added" if in_theirs else "deleted"
            out.append((lid, name, change))
    return sorted(out, key=lambda f: (f[1].lower(), f[0]))


# Comparing one record's outputs -------------------------------------------------------------


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key in sorted(value):
            _flatten(value[key], f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list) and value:
        for i, item in enumerate(value):
            _flatten(item, f"{prefix}[{i}]", out)
    else:
        out[prefix] = value


def field_changes(ours: Any, theirs: Any) -> list[dict[str, Any]]:
    """[{path, ours, theirs, ours_missing, theirs_missing}] where two outputs differ."""
    left: dict[str, Any] = {}
    right: dict[str, Any] = {}
    if ours is not _ABSENT:
        _flatten(ours, "", left)
    if theirs is not _ABSENT:
        _flatten(theirs, "", right)
    rows = []
    for path in sorted(left.keys() | right.keys()):
        a, b = left.get(path, _ABSENT), right.get(path, _ABSENT)
        if a is not _ABSENT and b is not _ABSENT and _same(a, b):
            continue
        rows.append(
            {
                "path": path or "(record)",
                "ours": None if a is _ABSENT else a,
                "theirs": None if b is _ABSENT else b,
                "ours_missing": a is _ABSENT,
                "theirs_missing": b is _ABSENT,
            }
        )
    return rows


def _same(a: Any, b: Any) -> bool:
    # 1 == 1.0 == True in Python; what an import sends is JSON, so compare the JSON
    return type(a) is type(b) and (a == b or orjson.dumps(a) == orjson.dumps(b))


def _outputs_by_record(report: RunReport, step_names: Mapping[str, str]) -> dict[int, Any]:
    """{input index: what the imports would send for it}. With one import step that is the
    record itself; with several, {step name: record}; a record that became several (or a
    hook that changed the count, index -1) gives a list."""
    per_step: dict[str, dict[int, list[Any]]] = {}
    for entry in report.output:
        step = entry["step"]
        indexes = report.output_indexes.get(step, [])
        for i, record in enumerate(entry["records"]):
            index = indexes[i] if i < len(indexes) else -1
            per_step.setdefault(step, {}).setdefault(index, []).append(record)
    several = len(step_names) > 1
    out: dict[int, Any] = {}
    for step, by_index in per_step.items():
        for index, records in by_index.items():
            value = records[0] if len(records) == 1 else records
            if several:
                out.setdefault(index, {})[step_names.get(step, step)] = value
            else:
                out[index] = value
    return out


def _errors(report: RunReport, step_names: Mapping[str, str]) -> list[dict[str, Any]]:
    if report.status == "failed" and report.message and not report.errors:
        return [
            {
                "step": "",
                "step_name": "",
                "record_index": -1,
                "kind": "flow",
                "message": report.message,
            }
        ]
    return [
        {
            "step": e.step,
            "step_name": step_names.get(e.step, ""),
            "record_index": e.record_index,
            "kind": e.kind,
            "message": e.message,
        }
        for e in report.errors
    ]


def _signature(error: Mapping[str, Any]) -> tuple[Any, ...]:
    return (error["step"], error["record_index"], error["kind"], error["message"])


# One flow, both sides ---------------------------------------------------------------------


Runner = Callable[[str, Mapping[str, Any], str, list[Any]], RunReport]


def compare_flow(
    flow_id: str,
    name: str,
    change: str,
    records: list[Any],
    sample_source: str,
    run: Runner,
    documents: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """Run `records` through the flow in both documents and compare record by record."""
    reports = {side: run(side, documents[side], flow_id, records) for side in SIDES}
    names: dict[str, str] = {}
    imports: dict[str, str] = {}
    for side in SIDES:
        for lid, body in _steps_of(documents[side], flow_id):
            names.setdefault(lid, body.get("name") or lid)
            if body.get("kind") == "import":
                imports.setdefault(lid, body.get("name") or lid)
    outputs = {side: _outputs_by_record(reports[side], imports) for side in SIDES}
    errors = {side: _errors(reports[side], names) for side in SIDES}
    signatures = {side: {_signature(e) for e in errors[side]} for side in SIDES}
    by_record: dict[str, dict[int, set[tuple[Any, ...]]]] = {side: {} for side in SIDES}
    for side in SIDES:
        for e in errors[side]:
            by_record[side].setdefault(e["record_index"], set()).add(_signature(e))
    indexes = set(range(len(records))) | outputs["ours"].keys() | outputs["theirs"].keys()
    same = 0
    different = []
    for index in sorted(indexes):
        a = outputs["ours"].get(index, _ABSENT)
        b = outputs["theirs"].get(index, _ABSENT)
        errs_same = by_record["ours"].get(index, set()) == by_record["theirs"].get(index, set())
        if errs_same and (a is b or (a is not _ABSENT and b is not _ABSENT and _same(a, b))):
            if 0 <= index < len(records):
                same += 1
            continue
        if len(different) < MAX_DIFFERENT_SHOWN:
            fields = field_changes(a, b)
            different.append({"record_index": index, "fields": fields[:MAX_FIELDS_SHOWN]})
        else:
            different.append({"record_index": index, "fields": []})
    return {
        "lineage_id": flow_id,
        "name": name,
        "change": change,
        "samples": len(records),
        "sample_source": sample_source,
        "same": same,
        "different": different,
        "errors": {
            "ours": [e for e in errors["ours"] if _signature(e) not in signatures["theirs"]],
            "theirs": [e for e in errors["theirs"] if _signature(e) not in signatures["ours"]],
        },
        "errors_unchanged": len(signatures["ours"] & signatures["theirs"]),
    }


def behaviour_diff(
    ours: Mapping[str, Any],
    theirs: Mapping[str, Any],
    changed: Iterable[str],
    records_for: Callable[[str], tuple[list[Any], str]],
    *,
    hooks: Mapping[str, Any] | None = None,
    caches: Mapping[str, Mapping[str, Any]] | None = None,
    credentials: Mapping[str, Mapping[str, Any]] | None = None,
    transport: httpx.BaseTransport | None = None,
    url_guard: Callable[[str], None] | None = None,
    on_flow: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """The behavioural diff of `ours` → `theirs` (see the module docstring).

    `records_for(flow lineage id)` gives the records to run and where they came from
    ("given", "target", "source" or "none"). `hooks` maps "ours"/"theirs" to a hook runner
    over that side's scripts; `caches` and `credentials` serve both sides alike.
    `on_flow(done, total)` reports progress after each flow.
    """
    touched = flows_touched(ours, theirs, changed)
    documents = {"ours": ours, "theirs": theirs}
    # One transport for every test run, made at the first request: a client of its own
    # loads the CA bundle (about 0.3 s), most of the cost of a small test run, and test
    # runs whose imports only report make no request at all.
    shared = _SharedTransport(transport)

    def run(side: str, document: Mapping[str, Any], flow_id: str, records: list[Any]):
        return execute(
            document,
            flow_id,
            mode="test",
            records=records,
            transport=shared,
            hooks=(hooks or {}).get(side),
            caches=caches or {},
            credentials=credentials or {},
            url_guard=url_guard,
            sleep=lambda s: None,  # a review does not wait out backoffs
            sample_size=0,
        )

    try:
        flows, records = _compare_all(touched, records_for, run, documents, on_flow)
    finally:
        shared.close_inner()
    return {"flows": flows, "totals": totals_of(flows, records=records)}


class _SharedTransport(httpx.BaseTransport):
    """The given transport (or a real one, made when first needed) shared by every test
    run; the engine's per-run client closing it does not close it."""

    def __init__(self, given: httpx.BaseTransport | None) -> None:
        self.given = given
        self.own: httpx.HTTPTransport | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.given is not None:
            return self.given.handle_request(request)
        if self.own is None:
            self.own = httpx.HTTPTransport()
        return self.own.handle_request(request)

    def close(self) -> None:
        pass

    def close_inner(self) -> None:
        if self.own is not None:
            self.own.close()


def _compare_all(
    touched: list[tuple[str, str, str]],
    records_for: Callable[[str], tuple[list[Any], str]],
    run: Runner,
    documents: Mapping[str, Mapping[str, Any]],
    on_flow: Callable[[int, int], None] | None,
) -> tuple[list[dict[str, Any]], int]:
    flows = []
    seen: set[bytes] = set()
    for n, (flow_id, name, change) in enumerate(touched, start=1):
        records, source = records_for(flow_id)
        for r in records:
            seen.add(orjson.dumps(r, option=orjson.OPT_SORT_KEYS))
        if records:
            flows.append(compare_flow(flow_id, name, change, records, source, run, documents))
        else:
            flows.append(
                {
                    "lineage_id": flow_id,
                    "name": name,
                    "change": change,
                    "samples": 0,
                    "sample_source": source,
                    "same": 0,
                    "different": [],
                    "errors": {"ours": [], "theirs": []},
                    "errors_unchanged": 0,
                }
            )
        if on_flow is not None:
            on_flow(n, len(touched))
    return flows, len(seen)


def totals_of(flows: list[Mapping[str, Any]], *, records: int) -> dict[str, int]:
    """The summary line's figures."""
    tested = [f for f in flows if f["samples"]]
    return {
        "flows": len(tested),
        "untested_flows": len(flows) - len(tested),
        "records": records,
        "outputs": sum(f["samples"] for f in tested),
        "same": sum(f["same"] for f in tested),
        "different": sum(
            sum(1 for d in f["different"] if 0 <= d["record_index"] < f["samples"]) for f in tested
        ),
        "new_errors": sum(len(f["errors"]["theirs"]) for f in flows),
        "fixed_errors": sum(len(f["errors"]["ours"]) for f in flows),
    }
