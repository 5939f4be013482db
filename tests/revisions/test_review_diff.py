"""How the review screens present a changeset: word and line diffs, secrets, grouping,
row actions and the merge box's reasons."""

from types import SimpleNamespace

import pytest

from integrations.value_diff import line_diff, value_diff, word_diff
from revisions.models import ApprovalDecision, RevisionStatus, RevisionType
from revisions.review import (
    field_rows,
    group_resources,
    merge_box,
    row_actions,
    summary_of,
)


def test_word_diff_marks_only_the_changed_words():
    left, right = word_diff(
        "Send the order to the ERP every hour", "Send the order to NetSuite every 15 minutes"
    )
    assert '<del class="dw">the ERP</del>' in left
    assert '<ins class="dw">NetSuite</ins>' in right
    assert "Send the order to" in left and "Send the order to" in right
    assert "<del" not in right and "<ins" not in left


def test_word_diff_escapes_html_in_values():
    left, right = word_diff("<b>old</b>", "<script>alert(1)</script>")
    assert "<script" not in right and "<b>" not in left
    assert right.startswith("&lt;") and "&lt;/" in right
    assert left.startswith("&lt;")


def test_line_diff_numbers_lines_and_folds_unchanged_runs():
    before = "\n".join(f"line {i}" for i in range(1, 31))
    after = before.replace("line 15", "line fifteen")
    rows = line_diff(before, after)
    changed = [r for r in rows if r.kind == "changed"]
    assert len(changed) == 1
    assert changed[0].left_no == 15 and changed[0].right_no == 15
    assert '<ins class="dw">fifteen</ins>' in changed[0].right
    skips = [r for r in rows if r.kind == "skip"]
    # 3 lines of context either side: lines 1–11 and 19–30 fold away.
    assert [s.skipped for s in skips] == [11, 12]


def test_line_diff_shows_added_and_removed_lines_on_their_own_side():
    rows = line_diff("a\nb\nc", "a\nc\nd")
    kinds = [(r.kind, r.left_no, r.right_no) for r in rows]
    assert ("removed", 2, None) in kinds
    assert ("added", None, 3) in kinds


def test_script_code_is_a_line_diff_and_short_values_are_inline():
    code = value_diff("function a() {}\n", "function b() {}\n", code=True)
    assert code.mode == "lines"
    assert code.added == 1 and code.removed == 1
    assert value_diff("hourly", "daily").mode == "inline"
    assert value_diff({"a": 1}, {"a": 2}).mode == "lines"


def test_a_value_missing_on_one_side_says_so():
    diff = value_diff(None, "new value")
    assert diff.left_absent and not diff.right_absent


def test_secrets_never_reach_a_field_row():
    res = {
        "lineage_id": "0b7d4a4e-4f3c-4c3f-9d59-3b9f3f1c2a10",
        "type": "connection",
        "name": "ERP",
        "action": "modified",
        "fields": [
            {"path": "credentials", "base": None, "ours": {"k": "s3cr3t"}, "theirs": None},
            {"path": "credentials.api_key", "base": "a", "ours": "b", "theirs": "c"},
            {
                "path": "config",
                "base": {"url": "x"},
                "ours": {"url": "x"},
                "theirs": {"url": "y", "credentials": {"password": "hunter2"}},
                "conflict": False,
            },
        ],
    }
    rows = field_rows(res)
    assert [r.path for r in rows] == ["config"]
    rendered = "".join(str(line.right) + str(line.left) for line in rows[0].diff.rows)
    assert "hunter2" not in rendered and "s3cr3t" not in rendered


def test_a_field_only_we_changed_is_kept_and_labelled():
    res = {
        "lineage_id": "0b7d4a4e-4f3c-4c3f-9d59-3b9f3f1c2a10",
        "type": "flow",
        "fields": [{"path": "schedule", "base": "a", "ours": "b", "theirs": "a"}],
    }
    (row,) = field_rows(res)
    assert row.local_only
    # Before and after the merge are both ours: nothing is highlighted as changing.
    assert "<del" not in row.diff.left and "<ins" not in row.diff.right


def test_reference_ids_are_shown_with_names():
    lid = "0b7d4a4e-4f3c-4c3f-9d59-3b9f3f1c2a10"
    res = {
        "type": "step",
        "fields": [{"path": "connection", "base": None, "ours": None, "theirs": lid}],
    }
    (row,) = field_rows(res, ref_names={lid: "ERP API"})
    assert "ERP API" in row.diff.right


def _res(lid, type_, name, action="modified", fields=None, **extra):
    return {
        "lineage_id": lid,
        "type": type_,
        "name": name,
        "action": action,
        "fields": fields or [],
        **extra,
    }


def test_resources_are_grouped_in_reading_order_with_steps_under_their_flow():
    conflict = {
        "path": "name",
        "base": "a",
        "ours": "b",
        "theirs": "c",
        "conflict": True,
        "resolution": None,
    }
    resources = [
        _res("s1", "step", "Map taxes", parent="f1", fields=[conflict]),
        _res("c1", "script", "preSave"),
        _res("f1", "flow", "Orders"),
        _res("k1", "connection", "ERP", action="added"),
        _res("s2", "step", "Export", parent="f2"),
    ]
    groups = group_resources(resources)
    assert [g.type for g in groups] == ["connection", "flow", "script"]
    flows = groups[1].items
    orders = next(f for f in flows if f.lineage_id == "f1")
    assert [c.name for c in orders.children] == ["Map taxes"]
    context_flow = next(f for f in flows if f.lineage_id == "f2")
    assert context_flow.context_only and [c.name for c in context_flow.children] == ["Export"]
    assert groups[1].count == 3  # Orders, and two steps; the context-only flow is no change

    only = group_resources(resources, only_conflicts=True)
    assert [g.type for g in only] == ["flow"]
    assert [c.name for c in only[0].items[0].children] == ["Map taxes"]


def test_a_left_out_resource_has_no_unresolved_conflicts():
    conflict = {"path": "name", "base": "a", "ours": "b", "theirs": "c", "conflict": True}
    (group,) = group_resources([_res("k1", "connection", "ERP", fields=[conflict], included=False)])
    item = group.items[0]
    assert item.conflicts == 1 and item.unresolved == 0 and not item.included


def test_summary_fills_in_missing_counts_and_per_type_rows():
    summary = summary_of({"summary": {"added": 2, "by_type": {"flow": {"added": 2}}}})
    assert summary["modified"] == 0 and summary["total"] == 2
    assert summary["type_rows"][0]["label"] == "Flows"


def _rev(type_, status, pk=7, integration_id=3, source=None):
    return SimpleNamespace(
        type=type_,
        status=status,
        pk=pk,
        integration_id=integration_id,
        source_integration_id=source,
    )


@pytest.mark.parametrize(
    ("type_", "status", "allowed", "expected"),
    [
        ("snapshot", "completed", {"revert"}, ["revert_after", "details"]),
        ("snapshot", "completed", set(), ["details"]),
        ("pull", "completed", {"revert"}, ["view", "revert_after", "revert_before"]),
        ("revert", "completed", {"revert"}, ["view", "revert_after", "revert_before"]),
        ("pull", "ready", {"cancel"}, ["review", "cancel"]),
        ("pull", "ready", set(), ["review"]),
        ("pull", "awaiting_approval", {"cancel"}, ["review", "cancel"]),
        ("pull", "failed", {"pull"}, ["details", "pull"]),
        ("pull", "failed", set(), ["details"]),
        ("pull", "running", {"cancel"}, ["progress"]),
        ("pull", "canceled", {"revert"}, ["details"]),
    ],
)
def test_row_actions_follow_status_and_role(type_, status, allowed, expected):
    assert [a["name"] for a in row_actions(_rev(type_, status), allowed)] == expected


def test_failed_pull_offers_a_new_pull_from_the_same_source():
    (_, pull) = row_actions(_rev(RevisionType.PULL, RevisionStatus.FAILED, source=9), {"pull"})
    assert pull["url"].endswith("?source=9")


def _pull(status, production=False):
    return SimpleNamespace(
        status=status,
        integration=SimpleNamespace(is_production=production, name="Orders", version=3),
        target_version=3,
        get_status_display=lambda: status,
    )


def test_merge_box_is_disabled_with_the_reason_while_conflicts_are_open():
    box = merge_box(
        _pull("ready"),
        user=None,
        allowed={"merge", "resolve"},
        summary={"unresolved": 2},
        approval=None,
    )
    assert box.state == "conflicts" and not box.can_merge
    assert "Resolve 2 conflicts" in box.reason


def test_merge_box_asks_for_approval_into_production():
    box = merge_box(
        _pull("ready", production=True),
        user=None,
        allowed={"merge", "request_approval"},
        summary={"unresolved": 0},
        approval=None,
    )
    assert box.state == "needs_approval" and box.can_request and not box.can_merge


def test_requester_never_gets_to_approve_their_own_request():
    requester = SimpleNamespace(pk=5)
    approval = SimpleNamespace(requested_by_id=5, decision=ApprovalDecision.PENDING)
    box = merge_box(
        _pull("awaiting_approval", production=True),
        user=requester,
        allowed={"approve"},
        summary={"unresolved": 0},
        approval=approval,
    )
    assert box.state == "awaiting" and not box.can_approve
    other = merge_box(
        _pull("awaiting_approval", production=True),
        user=SimpleNamespace(pk=6),
        allowed={"approve"},
        summary={"unresolved": 0},
        approval=approval,
    )
    assert other.can_approve


def test_merge_box_tells_when_an_approval_lapsed():
    lapsed = SimpleNamespace(requested_by_id=5, decision=ApprovalDecision.LAPSED)
    box = merge_box(
        _pull("ready", production=True),
        user=None,
        allowed={"request_approval"},
        summary={"unresolved": 0},
        approval=lapsed,
    )
    assert box.lapsed is lapsed and box.can_request


def test_a_json_null_is_shown_as_null_and_a_missing_path_as_absent():
    rows = field_rows(
        {
            "lineage_id": "0b7d4a4e-4f3c-4c3f-9d59-3b9f3f1c2a10",
            "type": "step",
            "name": "Map",
            "action": "modified",
            "fields": [
                {
                    "path": "config.mappings[0].lookup_cache",
                    "base": None,
                    "ours": None,
                    "theirs": None,
                    "conflict": False,
                    "absent": ["theirs"],
                },
                {
                    "path": "config.timeout",
                    "base": 30,
                    "ours": 30,
                    "theirs": None,
                    "conflict": False,
                },
            ],
        }
    )
    dropped, nulled = rows
    assert dropped.diff.right_absent and not dropped.diff.left_absent
    assert "null" in dropped.diff.left
    assert nulled.diff.right_absent  # no `absent` key: None means the side lacks it


def test_a_resource_deleted_on_one_side_and_changed_on_the_other_is_one_decision():
    from revisions.review import whole_conflict

    deleted = {
        "action": "deleted",
        "fields": [
            {"path": "name", "conflict": False},
            {"path": "schedule", "conflict": True, "resolution": None},
        ],
    }
    assert whole_conflict(deleted) == {"deleted_by": "theirs", "resolution": None}
    deleted["fields"][1]["resolution"] = "ours"
    assert whole_conflict(deleted)["resolution"] == "ours"
    brought_back = {"action": "added", "fields": [{"path": "code", "conflict": True}]}
    assert whole_conflict(brought_back)["deleted_by"] == "ours"
    assert whole_conflict({"action": "modified", "fields": [{"conflict": True}]}) is None
    assert whole_conflict({"action": "added", "fields": [{"conflict": False}]}) is None


def test_long_resource_lists_come_in_pages_and_a_flow_keeps_its_steps():
    from revisions.review import page_of_groups

    flow = "f0000000-0000-4000-8000-000000000000"
    resources = (
        [
            {
                "lineage_id": f"c000000{i}-0000-4000-8000-000000000000",
                "type": "connection",
                "name": f"Conn {i}",
                "action": "modified",
                "fields": [],
            }
            for i in range(3)
        ]
        + [
            {
                "lineage_id": flow,
                "type": "flow",
                "name": "Orders",
                "action": "modified",
                "fields": [],
            },
        ]
        + [
            {
                "lineage_id": f"5000000{i}-0000-4000-8000-000000000000",
                "type": "step",
                "name": f"Step {i}",
                "action": "modified",
                "parent": flow,
                "fields": [],
            }
            for i in range(2)
        ]
    )
    groups = group_resources(resources)
    first = page_of_groups(groups, offset=0, limit=4)
    # 3 connections, then the flow with both steps (not split): 6 resources in all.
    assert [g.type for g in first.groups] == ["connection", "flow"]
    assert first.end == 6 and first.total == 6 and first.next_offset is None
    small = page_of_groups(groups, offset=0, limit=2)
    assert [i.name for g in small.groups for i in g.items] == ["Conn 0", "Conn 1"]
    assert small.next_offset == 2
    rest = page_of_groups(groups, offset=2, limit=2)
    assert rest.groups[0].continued and [i.name for i in rest.groups[0].items] == ["Conn 2"]
    assert rest.groups[1].type == "flow" and not rest.groups[1].continued
