"""The pure diff engine on hand-written documents: what a reviewer sees and what merges."""

from __future__ import annotations

import pytest

from revisions.diff import (
    ChangesetError,
    apply_changes,
    diff,
    format_path,
    parse_path,
    resolution_applies,
    three_way,
    with_resolutions,
)

FLOW = "00000000-0000-4000-8000-00000000000f"
STEP = "00000000-0000-4000-8000-00000000000a"
CONN = "00000000-0000-4000-8000-00000000000c"


def base_doc():
    return {
        "integration": {"description": "d", "documentation": ""},
        "resources": {
            CONN: {
                "type": "connection",
                "name": "API",
                "kind": "http",
                "config": {"base_url": "https://prod", "timeout": 30},
            },
            FLOW: {
                "type": "flow",
                "name": "Orders",
                "description": "",
                "enabled": True,
                "schedule": "0 * * * *",
            },
            STEP: {
                "type": "step",
                "name": "Map",
                "flow": FLOW,
                "position": 1,
                "kind": "import",
                "connection": CONN,
                "config": {
                    "mappings": [
                        {"source": "a", "target": "b", "lookup_cache": None},
                        {"source": "c", "target": "d", "lookup_cache": None},
                    ]
                },
            },
        },
    }


def edited(d, lid, **fields):
    out = {"integration": dict(d["integration"]), "resources": dict(d["resources"])}
    out["resources"][lid] = {**d["resources"][lid], **fields}
    return out


def test_a_mapping_change_is_one_field_path_with_all_three_values():
    base = base_doc()
    config = {
        "mappings": [
            {"source": "a", "target": "B2", "lookup_cache": None},
            base["resources"][STEP]["config"]["mappings"][1],
        ]
    }
    theirs = edited(base, STEP, config=config)
    [res] = three_way(base, base, theirs, parents={"step": "flow"})["resources"]
    assert (res["action"], res["type"], res["parent"]) == ("modified", "step", FLOW)
    assert res["fields"] == [
        {
            "path": "config.mappings[0].target",
            "base": "b",
            "ours": "b",
            "theirs": "B2",
            "conflict": False,
            "resolution": None,
        }
    ]


def test_a_list_whose_length_changed_is_compared_whole():
    base = base_doc()
    theirs = edited(base, STEP, config={"mappings": []})
    [res] = three_way(base, base, theirs)["resources"]
    assert [f["path"] for f in res["fields"]] == ["config.mappings"]


def test_a_key_added_on_one_side_is_marked_absent_elsewhere():
    base = base_doc()
    theirs = edited(base, CONN, config={**base["resources"][CONN]["config"], "retries": 3})
    [res] = three_way(base, base, theirs)["resources"]
    [field] = res["fields"]
    assert field["path"] == "config.retries" and field["absent"] == ["base", "ours"]
    assert apply_changes(base, three_way(base, base, theirs)) == theirs


def test_same_change_on_both_sides_is_no_change_and_no_conflict():
    base = base_doc()
    both = edited(base, FLOW, schedule="*/5 * * * *")
    assert three_way(base, both, both)["resources"] == []


def test_local_changes_are_not_listed_and_survive_the_merge():
    base = base_doc()
    ours = edited(base, FLOW, schedule="ours")
    theirs = edited(base, CONN, name="Theirs API")
    changes = three_way(base, ours, theirs)
    assert [r["lineage_id"] for r in changes["resources"]] == [CONN]
    merged = apply_changes(ours, changes)
    assert merged["resources"][FLOW]["schedule"] == "ours"
    assert merged["resources"][CONN]["name"] == "Theirs API"


def test_deleted_by_theirs_and_changed_by_ours_is_a_whole_resource_conflict():
    base = base_doc()
    ours = edited(base, FLOW, schedule="ours")
    theirs = {
        "integration": base["integration"],
        "resources": {k: v for k, v in base["resources"].items() if k != FLOW},
    }
    changes = three_way(base, ours, theirs)
    [res] = [r for r in changes["resources"] if r["lineage_id"] == FLOW]
    assert res["action"] == "deleted"
    assert [f["path"] for f in res["fields"] if f["conflict"]] == ["schedule"]
    with pytest.raises(ChangesetError, match="not resolved"):
        apply_changes(ours, changes)
    # Any choice on it decides the whole resource.
    keep = with_resolutions(changes, [{"lineage_id": FLOW, "path": "schedule", "choose": "ours"}])
    assert keep["summary"]["unresolved"] == 0
    assert apply_changes(ours, keep)["resources"][FLOW]["schedule"] == "ours"
    drop = with_resolutions(changes, [{"lineage_id": FLOW, "path": None, "choose": "theirs"}])
    assert FLOW not in apply_changes(ours, drop)["resources"]


def test_deleted_by_ours_and_changed_by_theirs_comes_back_only_if_chosen():
    base = base_doc()
    ours = {
        "integration": base["integration"],
        "resources": {k: v for k, v in base["resources"].items() if k != CONN},
    }
    theirs = edited(base, CONN, name="Renamed")
    changes = three_way(base, ours, theirs)
    [res] = changes["resources"]
    assert res["action"] == "added" and changes["summary"]["unresolved"] == 1
    back = with_resolutions(changes, [{"lineage_id": CONN, "path": None, "choose": "theirs"}])
    assert apply_changes(ours, back)["resources"][CONN] == theirs["resources"][CONN]
    stay = with_resolutions(changes, [{"lineage_id": CONN, "path": None, "choose": "ours"}])
    assert CONN not in apply_changes(ours, stay)["resources"]


def test_ignored_paths_are_neither_shown_nor_carried():
    base = base_doc()
    theirs = edited(base, CONN, config={"base_url": "https://sandbox", "timeout": 5})
    changes = three_way(base, base, theirs, ignore={"connection": ["config.base_url"]})
    [res] = changes["resources"]
    assert [f["path"] for f in res["fields"]] == ["config.timeout"]
    merged = apply_changes(base, changes)
    assert merged["resources"][CONN]["config"] == {"base_url": "https://prod", "timeout": 5}
    only_ignored = edited(base, CONN, config={"base_url": "https://sandbox", "timeout": 30})
    assert three_way(base, base, only_ignored, ignore={"connection": ["config"]})["resources"] == []


def test_leaving_a_modified_resource_out_and_taking_it_back():
    base = base_doc()
    ours = edited(base, FLOW, schedule="ours")
    theirs = edited(base, FLOW, schedule="theirs")
    changes = three_way(base, ours, theirs)
    out = with_resolutions(changes, [{"lineage_id": FLOW, "path": None, "choose": "ours"}])
    assert out["summary"]["unresolved"] == 0 and not out["resources"][0]["included"]
    assert apply_changes(ours, out) == ours
    back = with_resolutions(
        changes,
        [
            {"lineage_id": FLOW, "path": None, "choose": "ours"},
            {"lineage_id": FLOW, "path": None, "choose": "theirs"},
        ],
    )
    assert back["summary"]["unresolved"] == 1


def test_summary_counts_by_type():
    base = base_doc()
    theirs = edited(base, FLOW, name="Renamed")
    theirs["resources"]["00000000-0000-4000-8000-0000000000aa"] = {"type": "script", "name": "S"}
    del theirs["resources"][STEP]
    summary = diff(base, theirs)["summary"]
    assert (summary["added"], summary["modified"], summary["deleted"]) == (1, 1, 1)
    assert summary["by_type"]["step"]["deleted"] == 1
    assert summary["by_type"]["flow"]["modified"] == 1


def test_equal_hashes_are_skipped_without_comparing_bodies():
    base = base_doc()
    theirs = edited(base, FLOW, name="Renamed")
    hashes = {lid: lid for lid in base["resources"]}  # stand-ins: equal hashes say "unchanged"
    assert diff(base, theirs, hashes=(hashes, hashes))["resources"] == []


def test_resolution_applies_only_to_conflicts_in_the_changeset():
    base = base_doc()
    changes = three_way(base, edited(base, FLOW, schedule="o"), edited(base, FLOW, schedule="t"))
    assert resolution_applies(changes, FLOW, "schedule")
    assert not resolution_applies(changes, FLOW, "name")
    assert not resolution_applies(changes, CONN, None)


@pytest.mark.parametrize(
    "segments",
    [["config", "mappings", 0, "source"], ["config", "a.b", "[x]"], ["name"], ["config", 'q"']],
)
def test_paths_are_readable_and_parse_back(segments):
    text = format_path(segments)
    assert parse_path(text) == segments
    if segments == ["config", "mappings", 0, "source"]:
        assert text == "config.mappings[0].source"
