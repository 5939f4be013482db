"""The benchmark workloads are what the issue asks for, and the same for the same seed.

Fast correctness checks of the generators (run in the normal suite; nothing is timed).
"""

import orjson
import pytest

from integrations.models import Connection, Flow, FlowStep, Integration, LookupCache, Script
from tests.bench import workloads
from tests.bench.measure import Row, as_markdown, fmt
from tests.bench.workloads import STRESS, TYPICAL, Shape

SMALL = Shape(
    flows=3, steps_per_flow=4, connections=2, scripts=2, lookup_caches=2, mappings_per_step=3
)


def _ids(rows, type_key):
    return {r["lineage_id"] for r in rows[type_key]}


def test_typical_integration_has_the_issues_sizes_and_valid_references():
    rows = workloads.generate(TYPICAL, seed=1)
    sizes = {k: len(v) for k, v in rows.items()}
    assert sizes == {"connection": 10, "lookup_cache": 5, "script": 10, "flow": 50, "step": 500}
    flows, conns, caches = _ids(rows, "flow"), _ids(rows, "connection"), _ids(rows, "lookup_cache")
    for step in rows["step"]:
        assert step["flow"] in flows
        assert step["connection"] in conns
        assert len(step["config"]["mappings"]) == TYPICAL.mappings_per_step
        for mapping in step["config"]["mappings"]:
            assert mapping["source"] and mapping["target"]
            assert mapping["lookup_cache"] is None or mapping["lookup_cache"] in caches
    assert any(m["lookup_cache"] for s in rows["step"] for m in s["config"]["mappings"])
    all_ids = [r["lineage_id"] for v in rows.values() for r in v]
    assert len(all_ids) == len(set(all_ids)) == TYPICAL.resource_count


def test_stress_integration_is_about_4000_resources_and_several_megabytes():
    rows = workloads.generate(STRESS, seed=1)
    assert len(rows["flow"]) == 200
    assert len(rows["step"]) == 4000
    assert 2_000_000 < len(orjson.dumps(rows)) < 20_000_000


def test_same_seed_gives_the_same_workload_and_another_seed_another():
    assert workloads.generate(TYPICAL, seed=7) == workloads.generate(TYPICAL, seed=7)
    assert workloads.generate(TYPICAL, seed=7) != workloads.generate(TYPICAL, seed=8)
    rows = workloads.generate(TYPICAL, seed=7)
    assert workloads.plan_changes(rows, 0.2, seed=3) == workloads.plan_changes(rows, 0.2, seed=3)
    assert workloads.plan_resource_changes(rows, 50, seed=3) == workloads.plan_resource_changes(
        rows, 50, seed=3
    )


@pytest.mark.parametrize("fraction", [0.01, 0.2])
def test_changes_touch_the_fraction_of_fields_on_each_side_some_conflicting(fraction):
    rows = workloads.generate(TYPICAL, seed=2)
    units = workloads.field_count(rows)
    ours, theirs = workloads.plan_changes(rows, fraction, seed=5)
    assert len(ours) == len(theirs) == round(units * fraction)
    ours_by_field = {(c["lineage_id"], c["field"]): c["value"] for c in ours}
    theirs_by_field = {(c["lineage_id"], c["field"]): c["value"] for c in theirs}
    assert len(ours_by_field) == len(ours) and len(theirs_by_field) == len(theirs)
    both = set(ours_by_field) & set(theirs_by_field)
    assert len(both) == round(len(ours) * 0.1)
    assert all(ours_by_field[k] != theirs_by_field[k] for k in both)


def test_changes_change_values_and_keep_the_input_rows():
    rows = workloads.generate(SMALL, seed=4)
    before = orjson.dumps(rows)
    ours, _ = workloads.plan_changes(rows, 0.3, seed=1)
    changed = workloads.apply_to_rows(rows, ours)
    assert orjson.dumps(rows) == before
    assert changed != rows
    index = {r["lineage_id"]: r for v in changed.values() for r in v}
    for change in ours:
        row = index[change["lineage_id"]]
        if change["field"].startswith("config.mappings["):
            m = int(change["field"].split("[")[1].split("]")[0])
            assert row["config"]["mappings"][m]["target"] == change["value"]
        elif "." in change["field"]:
            top, key = change["field"].split(".")
            assert row[top][key] == change["value"]
        else:
            assert row[change["field"]] == change["value"]


def test_resource_changes_touch_distinct_resources_and_refuse_too_many():
    rows = workloads.generate(TYPICAL, seed=3)
    changes = workloads.plan_resource_changes(rows, 500, seed=9)
    assert len({c["lineage_id"] for c in changes}) == 500
    with pytest.raises(ValueError, match="cannot change"):
        workloads.plan_resource_changes(rows, TYPICAL.resource_count + 1, seed=9)


@pytest.mark.django_db
def test_create_integration_writes_rows_with_lineage_ids_and_history():
    rows = workloads.generate(SMALL, seed=11)
    integration = workloads.create_integration(rows, name="Bench small")
    for model, key in (
        (Connection, "connection"),
        (LookupCache, "lookup_cache"),
        (Script, "script"),
        (Flow, "flow"),
        (FlowStep, "step"),
    ):
        stored = {
            str(x)
            for x in model.objects.filter(integration=integration).values_list(
                "lineage_id", flat=True
            )
        }
        assert stored == _ids(rows, key)
        assert model.history.filter(integration_id=integration.pk).count() == len(rows[key])
    step = FlowStep.objects.select_related("flow", "connection").get(
        integration=integration, lineage_id=rows["step"][0]["lineage_id"]
    )
    assert str(step.flow.lineage_id) == rows["step"][0]["flow"]
    assert str(step.connection.lineage_id) == rows["step"][0]["connection"]
    assert step.config == rows["step"][0]["config"]


@pytest.mark.django_db
def test_apply_changes_writes_the_edits_with_history_and_one_version_bump():
    rows = workloads.generate(SMALL, seed=12)
    integration = workloads.create_integration(rows, name="Bench small")
    version = Integration.objects.get(pk=integration.pk).version
    ours, _ = workloads.plan_changes(rows, 0.25, seed=2)
    history_before = FlowStep.history.filter(integration_id=integration.pk).count()
    changed = workloads.apply_changes(integration, ours)
    expected = workloads.apply_to_rows(rows, ours)
    assert changed == len({c["lineage_id"] for c in ours})
    assert Integration.objects.get(pk=integration.pk).version == version + 1
    conn_lineage = {
        c.pk: str(c.lineage_id) for c in Connection.objects.filter(integration=integration)
    }
    for step_row in expected["step"]:
        step = FlowStep.objects.get(integration=integration, lineage_id=step_row["lineage_id"])
        assert (step.name, step.kind, step.config) == (
            step_row["name"],
            step_row["kind"],
            step_row["config"],
        )
        assert conn_lineage[step.connection_id] == step_row["connection"]
    for flow_row in expected["flow"]:
        flow = Flow.objects.get(integration=integration, lineage_id=flow_row["lineage_id"])
        assert (flow.name, flow.description, flow.enabled, flow.schedule) == (
            flow_row["name"],
            flow_row["description"],
            flow_row["enabled"],
            flow_row["schedule"],
        )
    step_edits = {c["lineage_id"] for c in ours if c["type"] == "step"}
    assert FlowStep.history.filter(integration_id=integration.pk).count() == history_before + len(
        step_edits
    )


def test_results_table_says_pass_miss_and_formats_units():
    ok = Row("1", "ratio", "×", [120.0, 90.0, 150.0], goal="≥ 100×", check=lambda v: v >= 100)
    miss = Row("2", "ratio", "×", [4.0], goal="≤ 3×", check=lambda v: v <= 3)
    plain = Row("3", "time", "s", [0.0042])
    empty = Row("4", "time", "s", [])
    assert (ok.verdict, miss.verdict, plain.verdict, empty.verdict) == (
        "PASS",
        "MISS",
        "",
        "NOT RUN",
    )
    assert fmt(0.0042, "s") == "4.2 ms" and fmt(2.5, "s") == "2.50 s" and fmt(250, "×") == "250×"
    md = as_markdown([ok, miss])
    assert "| 1 | ratio | 120× | 90.0× | 150× | 3 | ≥ 100× | PASS |" in md
    assert "MISS" in md
