"""Properties of the pure diff engine, on generated documents (no database)."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revisions.diff import (
    INTEGRATION_KEY,
    MISSING,
    apply_changes,
    diff,
    format_path,
    parse_path,
    three_way,
    with_resolutions,
)
from tests.hypothesis_profiles import examples

# 500 examples per property in `make test` and CI, 50 in `make test-fast`
# (tests/hypothesis_profiles.py).
EXAMPLES = settings(
    max_examples=examples(500),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

LIDS = [f"00000000-0000-4000-8000-{i:012d}" for i in range(1, 9)]
TYPES = ["connection", "flow", "step", "script", "lookup_cache"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.text(alphabet="ab.[]\"' x", max_size=3),
)
keys = st.text(alphabet='abc.[]" _-1', min_size=1, max_size=3)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)),
    max_leaves=4,
)
bodies = st.fixed_dictionaries(
    {
        "type": st.sampled_from(TYPES),
        "name": st.text(max_size=5),
        "config": st.dictionaries(keys, json_values, max_size=3),
    },
    optional={"flow": st.sampled_from(LIDS), "position": st.integers(1, 4)},
)
documents = st.fixed_dictionaries(
    {
        "integration": st.fixed_dictionaries(
            {"description": st.text(max_size=4), "documentation": st.text(max_size=4)}
        ),
        "resources": st.dictionaries(st.sampled_from(LIDS), bodies, max_size=5),
    }
)


@EXAMPLES
@given(a=documents, b=documents)
def test_applying_the_diff_of_a_to_b_gives_b(a, b):
    before = copy.deepcopy(a)
    assert apply_changes(a, diff(a, b)) == b
    assert a == before  # the input is not changed


@EXAMPLES
@given(a=documents)
def test_the_diff_of_a_document_with_itself_is_empty(a):
    changes = diff(a, copy.deepcopy(a))
    assert changes["resources"] == []
    assert changes["summary"]["added"] == changes["summary"]["modified"] == 0


@EXAMPLES
@given(base=documents, theirs=documents)
def test_three_way_without_local_edits_gives_theirs(base, theirs):
    changes = three_way(base, copy.deepcopy(base), theirs)
    assert changes["summary"]["conflicts"] == 0
    assert apply_changes(base, changes) == theirs


@EXAMPLES
@given(base=documents, ours=documents)
def test_three_way_without_remote_edits_gives_ours(base, ours):
    changes = three_way(base, ours, copy.deepcopy(base))
    assert changes["resources"] == []
    assert apply_changes(ours, changes) == ours


@EXAMPLES
@given(base=documents, ours=documents, theirs=documents)
def test_choosing_theirs_everywhere_gives_theirs_and_ours_everywhere_keeps_ours(base, ours, theirs):
    changes = three_way(base, ours, theirs)
    all_theirs = with_resolutions(
        changes,
        [
            {"lineage_id": r["lineage_id"], "path": f["path"], "choose": "theirs"}
            for r in changes["resources"]
            for f in r["fields"]
            if f["conflict"]
        ],
    )
    assert all_theirs["summary"]["unresolved"] == 0
    merged = apply_changes(ours, all_theirs)
    # Every path the changeset lists now holds theirs' value.
    for res in changes["resources"]:
        lid = res["lineage_id"]
        if lid == INTEGRATION_KEY:
            body = merged["integration"]
        else:
            body = merged["resources"].get(lid, MISSING)
        if res["action"] == "deleted":
            assert body is MISSING
            continue
        for f in res["fields"]:
            expected = MISSING if "theirs" in f.get("absent", ()) else f["theirs"]
            assert _get(body, parse_path(f["path"])) == expected
    left_out = with_resolutions(
        changes,
        [
            {"lineage_id": r["lineage_id"], "path": None, "choose": "ours"}
            for r in changes["resources"]
        ],
    )
    assert left_out["summary"]["unresolved"] == 0
    assert apply_changes(ours, left_out) == ours


@EXAMPLES
@given(path=st.lists(st.one_of(keys, st.integers(0, 20)), min_size=1, max_size=5))
def test_paths_round_trip(path):
    if isinstance(path[0], int):
        path[0] = str(path[0])
    assert parse_path(format_path(path)) == path


def _get(value, path):
    for seg in path:
        if isinstance(value, dict):
            value = value.get(seg, MISSING)
        elif isinstance(value, list) and isinstance(seg, int) and seg < len(value):
            value = value[seg]
        else:
            return MISSING
    return value


# Disjoint and overlapping edits on a flat structure whose leaves are known. ----------

LEAVES = [("name",), ("enabled",), ("config", "url"), ("config", "timeout"), ("config", "x.y")]
leaf_values = st.one_of(st.integers(0, 3), st.sampled_from(["a", "b"]), st.just(MISSING))


def _flat_doc(draw_values: dict) -> dict:
    resources = {}
    for lid, leaves in draw_values.items():
        body: dict = {"type": "connection", "config": {}}
        for leaf, value in leaves.items():
            if value is MISSING:
                continue
            if leaf[0] == "config":
                body["config"][leaf[1]] = value
            else:
                body[leaf[0]] = value
        resources[lid] = body
    return {"integration": {"description": "", "documentation": ""}, "resources": resources}


@st.composite
def edit_scenarios(draw):
    """A base plus edits by ours and theirs, each (lid, leaf) → new value, or whole deletes."""
    lids = draw(st.lists(st.sampled_from(LIDS), min_size=1, max_size=4, unique=True))
    base = {lid: {leaf: draw(leaf_values) for leaf in LEAVES} for lid in lids}
    slots = [(lid, leaf) for lid in lids for leaf in LEAVES]
    ours_edits = draw(st.dictionaries(st.sampled_from(slots), leaf_values, max_size=6))
    theirs_edits = draw(st.dictionaries(st.sampled_from(slots), leaf_values, max_size=6))
    ours_deletes = draw(st.sets(st.sampled_from(lids), max_size=1))
    theirs_deletes = draw(st.sets(st.sampled_from(lids), max_size=1))
    return base, ours_edits, theirs_edits, ours_deletes, theirs_deletes


def _edited(base: dict, edits: dict, deletes: set) -> dict:
    values = copy.deepcopy(base)
    for (lid, leaf), value in edits.items():
        values[lid][leaf] = value
    for lid in deletes:
        values.pop(lid)
    return values


@EXAMPLES
@given(scenario=edit_scenarios())
def test_disjoint_edits_on_both_sides_both_survive(scenario):
    base, ours_edits, theirs_edits, ours_deletes, theirs_deletes = scenario
    touched_by_ours = {lid for lid, _ in ours_edits} | ours_deletes
    # Make the edits disjoint: theirs leaves alone every slot ours touched, and resources
    # one side deletes are untouched by the other.
    theirs_edits = {
        (lid, leaf): v
        for (lid, leaf), v in theirs_edits.items()
        if (lid, leaf) not in ours_edits and lid not in ours_deletes
    }
    theirs_deletes = {lid for lid in theirs_deletes if lid not in touched_by_ours}
    ours_edits = {k: v for k, v in ours_edits.items() if k[0] not in theirs_deletes}
    b = _flat_doc(base)
    o = _flat_doc(_edited(base, ours_edits, ours_deletes))
    t = _flat_doc(_edited(base, theirs_edits, theirs_deletes))
    changes = three_way(b, o, t)
    assert changes["summary"]["conflicts"] == 0
    expected = _edited(base, {**ours_edits, **theirs_edits}, ours_deletes | theirs_deletes)
    assert apply_changes(o, changes) == _flat_doc(expected)


def _leaf_path(leaf: tuple) -> str:
    return format_path(list(leaf))


@EXAMPLES
@given(scenario=edit_scenarios())
def test_conflicts_are_exactly_where_both_sides_changed_a_path_differently(scenario):
    base, ours_edits, theirs_edits, ours_deletes, theirs_deletes = scenario
    ours_vals = _edited(base, ours_edits, ours_deletes)
    theirs_vals = _edited(base, theirs_edits, theirs_deletes)
    changes = three_way(_flat_doc(base), _flat_doc(ours_vals), _flat_doc(theirs_vals))

    expected: set[tuple[str, str]] = set()
    for lid, leaves in base.items():
        o, t = ours_vals.get(lid), theirs_vals.get(lid)
        if o is None and t is None:
            continue
        if o is None or t is None:
            # One side deleted: a conflict where the other side changed a leaf.
            survivor = o if o is not None else t
            if _flat_doc({lid: survivor}) != _flat_doc({lid: leaves}):
                expected |= {
                    (lid, _leaf_path(leaf)[: len(leaf[0])])
                    for leaf in LEAVES
                    if survivor[leaf] != leaves[leaf]
                }
            continue
        for leaf in LEAVES:
            if o[leaf] != leaves[leaf] and t[leaf] != leaves[leaf] and o[leaf] != t[leaf]:
                expected.add((lid, _leaf_path(leaf)))
    found = {
        (r["lineage_id"], f["path"])
        for r in changes["resources"]
        for f in r["fields"]
        if f["conflict"]
    }
    # Whole-resource conflicts list top-level fields; compare those at the top level.
    assert found == expected


def test_the_integration_fields_are_one_entry():
    a = {"integration": {"description": "a", "documentation": ""}, "resources": {}}
    b = {"integration": {"description": "b", "documentation": ""}, "resources": {}}
    changes = diff(a, b)
    [entry] = changes["resources"]
    assert entry["lineage_id"] == INTEGRATION_KEY
    assert entry["type"] == "integration"
    assert entry["fields"][0]["path"] == "description"
