"""Lists with an identity (a step's mappings, keyed by target) diff and merge element-wise.

Pure engine, no database: examples first, then hypothesis properties over generated edits
of a mapping list (CI runs them with the rest of tests/revisions).
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revisions.diff import (
    Key,
    apply_changes,
    diff,
    format_path,
    parse_path,
    resolution_applies,
    three_way,
    with_resolutions,
)
from tests.hypothesis_profiles import examples

KEYS = {"step": {"config.mappings": "target"}}
STEP = "00000000-0000-4000-8000-000000000001"
EXAMPLES = settings(
    max_examples=examples(500),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def doc(mappings, **config):
    return {
        "integration": {"description": "", "documentation": ""},
        "resources": {
            STEP: {
                "type": "step",
                "name": "Map orders",
                "kind": "transform",
                "config": {"mappings": mappings, **config},
            }
        },
    }


def m(source, target, cache=None):
    out = {"source": source, "target": target}
    if cache is not None:
        out["lookup_cache"] = cache
    return out


def mappings_of(document):
    return document["resources"][STEP]["config"]["mappings"]


def merge(base, ours, theirs, choose=None):
    """Merge theirs into ours; `choose` resolves every conflict ("ours"/"theirs")."""
    changes = three_way(base, ours, theirs, keys=KEYS)
    if choose:
        paths = {f["path"] for r in changes["resources"] for f in r["fields"] if f["conflict"]}
        changes = with_resolutions(
            changes, [{"lineage_id": STEP, "path": p, "choose": choose} for p in paths]
        )
    return changes, apply_changes(ours, changes)


BASE = [m("order.id", "id"), m("order.email", "email")]


def test_two_different_new_mappings_merge_without_conflict_in_a_stable_order():
    base = doc(BASE)
    ours = doc([*BASE, m("order.total", "total")])
    theirs = doc([*BASE, m("order.city", "city"), m("order.zip", "zip")])
    changes, merged = merge(base, ours, theirs)
    assert changes["summary"]["conflicts"] == 0
    [field, field2] = changes["resources"][0]["fields"]
    assert field["path"] == 'config.mappings[target="city"]'
    assert field["after"] == "total" and field2["after"] == "city"
    # The target's order, the source's new mappings appended in its order.
    assert [x["target"] for x in mappings_of(merged)] == ["id", "email", "total", "city", "zip"]


def test_one_side_changes_source_the_other_the_cache_of_the_same_target():
    base = doc(BASE)
    ours = doc([m("order.id", "id"), m("order.mail", "email")])
    theirs = doc([m("order.id", "id"), m("order.email", "email", "cache-1")])
    changes, merged = merge(base, ours, theirs)
    assert changes["summary"]["conflicts"] == 0
    assert [f["path"] for f in changes["resources"][0]["fields"]] == [
        'config.mappings[target="email"].lookup_cache'
    ]
    assert mappings_of(merged)[1] == m("order.mail", "email", "cache-1")


def test_a_conflict_only_where_both_changed_the_same_target_differently():
    base = doc(BASE)
    ours = doc([m("order.key", "id"), m("order.mail", "email")])
    theirs = doc([m("order.pk", "id"), m("order.mail", "email"), m("x", "y")])
    changes = three_way(base, ours, theirs, keys=KEYS)
    fields = {f["path"]: f for f in changes["resources"][0]["fields"]}
    assert set(fields) == {
        'config.mappings[target="id"].source',
        'config.mappings[target="y"]',
    }
    assert fields['config.mappings[target="id"].source']["conflict"]
    assert not fields['config.mappings[target="y"]']["conflict"]


def test_a_resolution_per_mapping_decides_that_mapping_alone():
    base = doc(BASE)
    ours = doc([m("o.id", "id", "c1"), m("o.email", "email")])
    theirs = doc([m("t.id", "id", "c2"), m("t.email", "email")])
    changes = three_way(base, ours, theirs, keys=KEYS)
    assert changes["summary"]["conflicts"] == 3  # id.source, id.lookup_cache, email.source
    resolved = with_resolutions(
        changes, [{"lineage_id": STEP, "path": 'config.mappings[target="id"]', "choose": "ours"}]
    )
    assert resolved["summary"]["unresolved"] == 1
    assert resolution_applies(changes, STEP, 'config.mappings[target="id"]')
    assert not resolution_applies(changes, STEP, 'config.mappings[target="zip"]')
    resolved = with_resolutions(
        resolved,
        [{"lineage_id": STEP, "path": 'config.mappings[target="email"]', "choose": "theirs"}],
    )
    merged = apply_changes(ours, resolved)
    assert mappings_of(merged) == [m("o.id", "id", "c1"), m("t.email", "email")]


def test_deleting_what_the_other_side_changed_is_a_conflict_of_that_mapping():
    base = doc(BASE)
    ours = doc([m("order.id", "id")])  # deleted email
    theirs = doc([m("order.id", "id"), m("order.mail", "email")])
    changes = three_way(base, ours, theirs, keys=KEYS)
    [field] = changes["resources"][0]["fields"]
    assert field["path"] == 'config.mappings[target="email"]' and field["conflict"]
    _, kept = merge(base, ours, theirs, choose="theirs")
    assert mappings_of(kept) == [m("order.id", "id"), m("order.mail", "email")]
    _, dropped = merge(base, ours, theirs, choose="ours")
    assert mappings_of(dropped) == [m("order.id", "id")]


@pytest.mark.parametrize(
    "broken",
    [
        [m("a", "id"), m("b", "id")],  # repeated identity
        [m("a", "id"), "not a mapping"],
        [m("a", "id"), {"source": "b"}],  # no identity
    ],
)
def test_a_list_that_breaks_its_identity_is_one_value(broken):
    changes = diff(doc(BASE), doc(broken), keys=KEYS)
    paths = [f["path"] for f in changes["resources"][0]["fields"]]
    # As any list: index by index when the lengths agree, else the whole list.
    assert paths and all(p.startswith(("config.mappings[0]", "config.mappings[1]")) for p in paths)
    assert apply_changes(doc(BASE), changes) == doc(broken)


def test_theirs_reordering_is_a_change_of_the_whole_list():
    changes = diff(doc(BASE), doc(list(reversed(BASE))), keys=KEYS)
    assert [f["path"] for f in changes["resources"][0]["fields"]] == ["config.mappings"]


def test_lists_without_identity_stay_whole_field():
    changes = diff(doc(BASE, fields=["a", "b"]), doc(BASE, fields=["a", "b", "c"]), keys=KEYS)
    assert [f["path"] for f in changes["resources"][0]["fields"]] == ["config.fields"]


def test_keyed_paths_round_trip():
    segments = ["config", "mappings", Key("target", 'a"b].c'), "source"]
    text = format_path(segments)
    assert text == 'config.mappings[target="a\\"b].c"].source'
    assert parse_path(text) == segments


# Properties ---------------------------------------------------------------------------

TARGETS = ["id", "email", "total", "city", "zip", "name"]
NEW_TARGETS = ["n1", "n2", "n3", "n4"]
sources = st.sampled_from(["a", "b", "c"])
caches = st.sampled_from(["c1", "c2", None])


@st.composite
def mapping_for(draw, target):
    out = {"source": draw(sources), "target": target}
    cache = draw(caches)
    if cache is not None:
        out["lookup_cache"] = cache
    return out


@st.composite
def unique_mappings(draw, pool=TARGETS):
    targets = draw(st.lists(st.sampled_from(pool), unique=True, max_size=len(pool)))
    return [draw(mapping_for(t)) for t in targets]


@st.composite
def independent_edits(draw):
    """A base list and two edits of it that touch different targets or fields.

    Returns base, ours, theirs and the expected merge (ours' order, theirs' additions
    appended in theirs' order).
    """
    base = draw(unique_mappings())
    ours, theirs, expected = [], [], []
    for item in base:
        action = draw(st.sampled_from(["keep", "ours deletes", "theirs deletes", "edit"]))
        o, t, e = dict(item), dict(item), dict(item)
        if action == "edit":
            for key, values in (("source", sources), ("lookup_cache", caches)):
                owner = draw(st.sampled_from([None, "ours", "theirs"]))
                if owner is None:
                    continue
                value = draw(values)
                for side in (e, o if owner == "ours" else t):
                    if value is None:
                        side.pop(key, None)
                    else:
                        side[key] = value
        if action != "ours deletes":
            theirs.append(t)
        if action != "theirs deletes":
            ours.append(o)
        if action not in ("ours deletes", "theirs deletes"):
            expected.append(e)
    new = draw(st.lists(st.sampled_from(NEW_TARGETS), unique=True))
    ours_new, theirs_new = [], []
    for target in new:
        (ours_new if draw(st.booleans()) else theirs_new).append(draw(mapping_for(target)))
    return base, ours + ours_new, theirs + theirs_new, expected + ours_new + theirs_new


@st.composite
def any_edit(draw, base):
    """Any edit of a list: delete, change, add anywhere, sometimes reorder."""
    out = [dict(x) for x in base]
    out = [x for x in out if draw(st.integers(0, 4))]  # deletes about one in five
    for item in out:
        if draw(st.integers(0, 2)) == 0:
            item.update(draw(mapping_for(item["target"])))
    for target in draw(st.lists(st.sampled_from(TARGETS + NEW_TARGETS), unique=True, max_size=3)):
        if all(x["target"] != target for x in out):
            out.insert(draw(st.integers(0, len(out))), draw(mapping_for(target)))
    if draw(st.integers(0, 9)) == 0:
        out = draw(st.permutations(out))
    return out


def by_target(mappings):
    return {x["target"]: x for x in mappings}


@EXAMPLES
@given(edits=independent_edits())
def test_merging_two_independent_edits_equals_applying_both(edits):
    base, ours, theirs, expected = edits
    changes, merged = merge(doc(base), doc(ours), doc(theirs))
    assert changes["summary"]["conflicts"] == 0
    assert mappings_of(merged) == expected
    # And the other way round: the same mappings, in that side's order.
    _, merged_back = merge(doc(base), doc(theirs), doc(ours))
    assert by_target(mappings_of(merged_back)) == by_target(expected)


@EXAMPLES
@given(data=st.data(), base=unique_mappings())
def test_merge_is_symmetric_when_nothing_conflicts(data, base):
    ours = data.draw(any_edit(base))
    theirs = data.draw(any_edit(base))
    one_way = three_way(doc(base), doc(ours), doc(theirs), keys=KEYS)
    other_way = three_way(doc(base), doc(theirs), doc(ours), keys=KEYS)
    if one_way["summary"]["conflicts"] or other_way["summary"]["conflicts"]:
        return
    merged = apply_changes(doc(ours), one_way)
    merged_back = apply_changes(doc(theirs), other_way)
    assert by_target(mappings_of(merged)) == by_target(mappings_of(merged_back))


@EXAMPLES
@given(data=st.data(), base=unique_mappings(), choose=st.sampled_from(["ours", "theirs"]))
def test_no_mapping_is_lost_without_a_recorded_choice(data, base, choose):
    ours = data.draw(any_edit(base))
    theirs = data.draw(any_edit(base))
    changes, merged = merge(doc(base), doc(ours), doc(theirs), choose=choose)
    chosen = [f["path"] for r in changes["resources"] for f in r["fields"] if f.get("resolution")]
    kept = by_target(mappings_of(merged))
    b, o, t = by_target(base), by_target(ours), by_target(theirs)
    for target in set(o) | set(t):
        if target in kept:
            continue
        element = f'config.mappings[target="{target}"]'
        decided = any(
            element == p or element.startswith((p + ".", p + "[")) or p.startswith(element)
            for p in chosen
        )
        # Gone without a choice only where one side deleted what the other left unchanged.
        deleted_unchanged = target in b and (
            (target not in o and t.get(target) == b[target])
            or (target not in t and o.get(target) == b[target])
        )
        assert decided or deleted_unchanged, f"{target} was lost"


@EXAMPLES
@given(a=st.lists(mapping_for("x") | mapping_for("y") | mapping_for("z"), max_size=4))
def test_applying_a_keyed_diff_gives_the_other_list(a):
    b = a[1:] + a[:1]
    assert apply_changes(doc(a), diff(doc(a), doc(b), keys=KEYS)) == doc(b)


@EXAMPLES
@given(data=st.data(), a=unique_mappings())
def test_applying_the_keyed_diff_of_any_edit_gives_the_edit(data, a):
    b = data.draw(any_edit(a))
    before = copy.deepcopy(a)
    assert apply_changes(doc(a), diff(doc(a), doc(b), keys=KEYS)) == doc(b)
    assert a == before
