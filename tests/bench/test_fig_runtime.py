"""Figure 8's workload is sound: the flow moves every record and the bare loop the same."""

from __future__ import annotations

from tests.bench import fig_runtime


def test_the_benchmark_flow_and_the_bare_loop_move_every_record():
    m = fig_runtime.measure(records=250, runs=1)
    assert len(m["flow"]) == len(m["bare"]) == len(m["ratio"]) == 1
    assert len(m["flow_cpu"]) == len(m["bare_cpu"]) == len(m["cpu_ratio"]) == 1
    assert m["flow_cpu"][0] > 0 and m["bare_cpu"][0] > 0
    assert {"http", "hooks", "mapping", "total"} <= set(m["split"][0])
    assert len(m["hook"]) == len(m["hook_cpu"]) == 10


def test_the_benchmark_flow_has_the_issues_four_steps_and_twenty_mappings():
    doc = fig_runtime.document("http://127.0.0.1:1")
    steps = sorted(
        (r for r in doc["resources"].values() if r["type"] == "step"), key=lambda r: r["position"]
    )
    assert [s["kind"] for s in steps] == ["export", "lookup", "transform", "import"]
    assert len(steps[2]["config"]["mappings"]) == 20
    assert steps[2]["config"]["hooks"] == {"preMap": fig_runtime.HOOK}
    assert steps[3]["config"]["batch_size"] == 100
