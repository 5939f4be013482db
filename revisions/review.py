"""What the Revisions tab and the review pages show: reads and presentation only.

The engine (`revisions.selectors`, `revisions.services`) computes changesets and owns every
write; this module turns its output into what a reviewer reads: resources grouped by type
with steps under their flow, per-field rows with words or lines highlighted, reasons why a
button is disabled. Nothing here writes to the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from integrations.reference_names import REFERABLE_TYPES, Ref, names_for
from integrations.reference_names import referenced_ids as ids_in
from integrations.reference_names import shown_value as _shown_value
from integrations.resources import (
    LIST_KEYS,
    PARENT_TYPES,
    RESOURCE_TYPES,
    SECRET_FIELDS,
    field_meaning,
    hide_secrets,
    is_code_field,
    is_described_field,
)
from integrations.value_diff import ValueDiff, _similar, as_text, value_diff, word_diff

from .diff import Changeset, Key, parse_path
from .models import (
    ACTIVE_STATUSES,
    REVIEWABLE_STATUSES,
    Approval,
    ApprovalDecision,
    Blob,
    Revision,
    RevisionStatus,
    RevisionType,
)

# Order a reviewer reads an integration in: what it talks to, what it does, its helpers.
GROUP_ORDER: tuple[str, ...] = ("integration", "connection", "flow", "script", "lookup_cache")
# Summary rows: the reading order, then the nested types (steps).
SUMMARY_ORDER: tuple[str, ...] = GROUP_ORDER + tuple(
    k for k in PARENT_TYPES if k not in GROUP_ORDER
)
INTEGRATION_LABEL = ("Integration settings", "Integration settings")


# Revisions table ---------------------------------------------------------------------


def row_actions(
    revision: Revision, allowed: set[str], *, current_hash: str | None = None
) -> list[dict[str, str]]:
    """The actions a revision's row offers, by its type and status and the user's role.

    Each is {"name", "label", "kind", "url"}; `kind` says how the template renders it: a
    link, a POST button, or the row's primary link. `current_hash` is the hash of the
    integration's tree now: reverting to a state it is already in is not offered.
    """
    t, s = revision.type, revision.status
    S, T = RevisionStatus, RevisionType
    after_id = getattr(revision, "tree_after_id", None)
    before_id = getattr(revision, "tree_before_id", None)
    detail = reverse("revisions:detail", args=[revision.pk])
    revert = reverse("revisions:revert", args=[revision.pk])
    actions: list[dict[str, str]] = []

    def add(name: str, label: str, url: str, kind: str = "link") -> None:
        actions.append({"name": name, "label": label, "kind": kind, "url": url})

    if s in ACTIVE_STATUSES:
        add("progress", "View progress", detail)
    elif t == T.PULL and s in REVIEWABLE_STATUSES:
        add("review", "Review", detail, "primary")
        if "cancel" in allowed:
            add("cancel", "Cancel", reverse("revisions:cancel", args=[revision.pk]), "post")
    elif s == S.FAILED:
        add("details", "Details", detail)
        if "pull" in allowed:
            pull = reverse("revisions:pull", args=[revision.integration_id])
            if t == T.PULL and revision.source_integration_id:
                pull += f"?source={revision.source_integration_id}"
            add("pull", "Create pull", pull)
    elif s == S.COMPLETED and t in (T.PULL, T.REVERT):
        add("view", "View changes", detail)
        if "revert" in allowed:
            if not is_current(after_id, current_hash):
                add("revert_after", "Revert to after", f"{revert}?to=after")
            if not is_current(before_id, current_hash):
                add("revert_before", "Revert to before", f"{revert}?to=before")
    elif s == S.COMPLETED:
        if "revert" in allowed and not is_current(after_id, current_hash):
            add("revert_after", "Revert to this", f"{revert}?to=after")
        add("details", "Details", detail)
    else:
        add("details", "Details", detail)
    if s == S.COMPLETED and after_id and not is_current(after_id, current_hash):
        compare = reverse("revisions:compare", args=[revision.pk])
        add("compare", "Compare with now", f"{compare}?with=now")
    return actions


def is_current(tree_hash: str | None, current_hash: str | None) -> bool:
    """Is this tree (by hash) the state the integration is in now?"""
    return bool(tree_hash) and tree_hash == current_hash


# Changeset presentation ----------------------------------------------------------------


def type_label(type_key: str, plural: bool = False) -> str:
    if type_key == "integration":
        return INTEGRATION_LABEL[1 if plural else 0]
    rt = RESOURCE_TYPES.get(type_key)
    if rt is None:
        return type_key.replace("_", " ").capitalize() + ("s" if plural else "")
    return rt.plural if plural else rt.label


def path_head(path: str) -> str:
    return re.split(r"[.\[]", path or "", maxsplit=1)[0]


def is_secret_path(path: str) -> bool:
    return path_head(path) in SECRET_FIELDS


@dataclass
class ResourceItem:
    """One resource in the review list (no field values: those load when expanded)."""

    lineage_id: str
    type: str
    name: str
    action: str
    field_count: int
    conflicts: int
    unresolved: int
    included: bool
    parent: str | None = None
    children: list[ResourceItem] = field(default_factory=list)
    # A flow listed only because steps under it changed.
    context_only: bool = False
    # Where its field diff loads from (set by `link_resources`).
    url: str = ""

    @property
    def has_conflicts(self) -> bool:
        return self.conflicts > 0 or any(c.conflicts for c in self.children)

    @property
    def type_label(self) -> str:
        return type_label(self.type)


@dataclass
class ResourceGroup:
    type: str
    label: str
    items: list[ResourceItem]
    count: int
    # On a later page of the list: the group started on an earlier one.
    continued: bool = False


# The review list renders this many resources at a time; "show more" loads the next ones.
RESOURCES_PER_PAGE = 200


@dataclass
class ResourcePage:
    groups: list[ResourceGroup]
    total: int
    end: int  # resources up to the end of this page
    next_offset: int | None


def _size(item: ResourceItem) -> int:
    return max(1, (0 if item.context_only else 1) + len(item.children))


def page_of_groups(
    groups: list[ResourceGroup], *, offset: int = 0, limit: int | None = None
) -> ResourcePage:
    """The resources from `offset` on, about `limit` of them; a flow keeps its steps."""
    limit = limit or RESOURCES_PER_PAGE
    offset = max(0, offset)
    total = sum(_size(i) for g in groups for i in g.items)
    out: list[ResourceGroup] = []
    pos = 0
    end = 0
    for group in groups:
        taken = []
        started_before = False
        for item in group.items:
            size = _size(item)
            if pos < offset:
                started_before = True
            elif pos < offset + limit:
                taken.append(item)
                end = pos + size
            pos += size
        if taken:
            count = sum(_size(i) for i in taken)
            out.append(
                ResourceGroup(group.type, group.label, taken, count, continued=started_before)
            )
    return ResourcePage(out, total, end, end if end < total and out else None)


def _field_resolution(f: dict[str, Any]) -> str | None:
    return f.get("resolution")


def _item_of(res: dict[str, Any]) -> ResourceItem:
    fields = [f for f in res.get("fields") or [] if not is_secret_path(f.get("path", ""))]
    conflicts = sum(1 for f in fields if f.get("conflict"))
    included = res.get("included", True)
    unresolved = (
        sum(1 for f in fields if f.get("conflict") and not _field_resolution(f)) if included else 0
    )
    return ResourceItem(
        lineage_id=str(res["lineage_id"]),
        type=res.get("type", ""),
        name=res.get("name") or "(unnamed)",
        action=res.get("action", "modified"),
        field_count=len(fields),
        conflicts=conflicts,
        unresolved=unresolved,
        included=bool(included),
        parent=str(res["parent"]) if res.get("parent") else None,
    )


ALL_TREES = ("source_tree", "tree_before", "base_tree", "tree_after")


def stored_bodies(
    revision: Revision, lineage_ids: Iterable[str], trees: tuple[str, ...] = ALL_TREES
) -> dict[str, dict[str, Any]]:
    """Resource bodies by lineage id, from the first of the revision's `trees` (attribute
    names, in the order to look) holding each.

    One query whatever the number of ids.
    """
    held = [t for t in (getattr(revision, attr, None) for attr in trees) if t is not None]
    hashes: dict[str, str] = {}
    for lid in lineage_ids:
        for tree in held:
            h = (tree.entries or {}).get(lid)
            if h:
                hashes[lid] = h
                break
    if not hashes:
        return {}
    bodies = dict(Blob.objects.filter(hash__in=set(hashes.values())).values_list("hash", "body"))
    return {lid: bodies[h] for lid, h in hashes.items() if h in bodies}


def parents_of(
    revision: Revision, type_key: str, lineage_ids: list[str]
) -> dict[str, tuple[str, str]]:
    """Parent (lineage id, name) of each nested resource (a step's flow), read from the
    revision's stored trees.

    For changeset entries that do not name their parent. Constant queries.
    """
    rt = RESOURCE_TYPES[type_key]
    if not lineage_ids or rt.parent is None or rt.parent_type is None:
        return {}
    parent_of = {
        lid: str(body[rt.parent])
        for lid, body in stored_bodies(revision, lineage_ids).items()
        if body.get(rt.parent)
    }
    names = resource_names(revision, rt.parent_type, set(parent_of.values()))
    label = RESOURCE_TYPES[rt.parent_type].label
    return {lid: (pid, names.get(pid, label)) for lid, pid in parent_of.items()}


def resource_names(revision: Revision, type_key: str, lineage_ids: Iterable[str]) -> dict[str, str]:
    """Names of resources of one type by lineage id: from the revision's trees, else the
    integration now.

    At most two queries whatever the number of resources.
    """
    wanted = {str(f) for f in lineage_ids}
    if not wanted:
        return {}
    rt = RESOURCE_TYPES[type_key]
    names = {
        lid: body.get("name") or rt.label
        for lid, body in stored_bodies(revision, sorted(wanted)).items()
    }
    missing = wanted - set(names)
    if missing:
        for lid, name in rt.model.objects.filter(
            integration_id=revision.integration_id, lineage_id__in=sorted(missing)
        ).values_list("lineage_id", "name"):
            names[str(lid)] = name
    return names


def group_resources(
    resources: list[dict[str, Any]],
    *,
    revision: Revision | None = None,
    only_conflicts: bool = False,
) -> list[ResourceGroup]:
    """Resources grouped by type in reading order, nested ones (steps) under their parent."""
    items = [_item_of(r) for r in resources]
    by_type: dict[str, list[ResourceItem]] = {}
    for item in items:
        if item.type not in PARENT_TYPES:
            by_type.setdefault(item.type, []).append(item)
    for child_type, parent_type in PARENT_TYPES.items():
        orphans = _nest(items, child_type, parent_type, by_type, revision)
        if orphans:
            by_type[child_type] = orphans
    groups: list[ResourceGroup] = []
    order = list(GROUP_ORDER) + sorted(t for t in by_type if t not in GROUP_ORDER)
    for type_key in order:
        group_items = by_type.get(type_key) or []
        for item in group_items:
            item.children.sort(key=lambda c: c.name.lower())
        if only_conflicts:
            group_items = [i for i in group_items if i.has_conflicts]
            for item in group_items:
                item.children = [c for c in item.children if c.conflicts]
        if not group_items:
            continue
        group_items.sort(key=lambda i: (i.context_only, i.name.lower()))
        count = sum((0 if i.context_only else 1) + len(i.children) for i in group_items)
        groups.append(
            ResourceGroup(type_key, type_label(type_key, plural=True), group_items, count)
        )
    return groups


def _nest(
    items: list[ResourceItem],
    child_type: str,
    parent_type: str,
    by_type: dict[str, list[ResourceItem]],
    revision: Revision | None,
) -> list[ResourceItem]:
    """Put each `child_type` item under its parent in `by_type[parent_type]`, adding a
    context-only parent where the parent itself did not change. Returns the children
    whose parent is unknown."""
    label = RESOURCE_TYPES[parent_type].label
    children = [i for i in items if i.type == child_type]
    missing = [c.lineage_id for c in children if not c.parent]
    parents = (
        parents_of(revision, child_type, missing) if (revision is not None and missing) else {}
    )
    listed = {i.lineage_id: i for i in by_type.get(parent_type, [])}
    # Parents listed only because children under them changed: names come from the trees.
    unlisted = {c.parent for c in children if c.parent and c.parent not in listed}
    if revision is not None and unlisted:
        names = resource_names(revision, parent_type, unlisted)
        parents.update(
            {c.lineage_id: (c.parent, names.get(c.parent, label)) for c in children if c.parent}
        )
    orphans: list[ResourceItem] = []
    for child in children:
        parent_id, parent_name = child.parent, None
        if child.lineage_id in parents:
            parent_id, parent_name = parents[child.lineage_id]
        if not parent_id:
            orphans.append(child)
            continue
        parent = listed.get(parent_id)
        if parent is None:
            parent = ResourceItem(
                lineage_id=parent_id,
                type=parent_type,
                name=parent_name or label,
                action="modified",
                field_count=0,
                conflicts=0,
                unresolved=0,
                included=True,
                context_only=True,
            )
            listed[parent_id] = parent
        parent.children.append(child)
    by_type[parent_type] = list(listed.values())
    return orphans


_ANY_ID = "00000000-0000-0000-0000-0000000000ff"


def link_resources(groups: list[ResourceGroup], url_name: str, pk: int, query: str = "") -> None:
    """Set each listed resource's diff URL: reversed once, not once per resource."""
    pattern = reverse(url_name, args=[pk, _ANY_ID]) + (f"?{query}" if query else "")
    for group in groups:
        for item in group.items:
            for it in (item, *item.children):
                it.url = pattern.replace(_ANY_ID, it.lineage_id)


def find_resource(resources: list[dict[str, Any]], lineage_id: str) -> dict[str, Any] | None:
    for res in resources:
        if str(res.get("lineage_id")) == str(lineage_id):
            return res
    return None


def summary_of(changes: Changeset) -> dict[str, Any]:
    """The changeset summary with every count present (missing ones are 0)."""
    summary = dict(changes.get("summary") or {})
    for key in ("added", "modified", "deleted", "conflicts", "unresolved"):
        summary[key] = int(summary.get(key) or 0)
    by_type = summary.get("by_type") or summary.get("per_type") or {}
    rows = []
    for type_key in SUMMARY_ORDER:
        counts = by_type.get(type_key)
        if not counts:
            continue
        rows.append(
            {
                "type": type_key,
                "label": type_label(type_key, plural=True),
                **{
                    k: int(counts.get(k) or 0)
                    for k in ("added", "modified", "deleted", "conflicts", "unresolved")
                },
            }
        )
    summary["type_rows"] = rows
    summary["total"] = summary["added"] + summary["modified"] + summary["deleted"]
    return summary


# Merge box ------------------------------------------------------------------------------


@dataclass
class MergeBox:
    """What the merge box says and offers to this user for this pull."""

    state: str  # in_progress | conflicts | ready | needs_approval | awaiting | final
    title: str
    reason: str = ""
    can_merge: bool = False
    can_request: bool = False
    can_approve: bool = False
    can_cancel: bool = False
    can_resolve: bool = False
    approval: Approval | None = None
    lapsed: Approval | None = None
    rejected: Approval | None = None
    # The target moved since the pull was computed: merging (or approving) will be refused
    # until the pull is refreshed. Said before anyone clicks.
    stale: str = ""


def latest_approval(revision: Revision) -> Approval | None:
    return revision.approvals.select_related("requested_by", "decided_by").first()


def merge_box(
    revision: Revision,
    *,
    user: Any,
    allowed: set[str],
    summary: dict[str, Any],
    approval: Approval | None,
) -> MergeBox:
    S = RevisionStatus
    production = revision.integration.is_production
    unresolved = summary.get("unresolved", 0)
    lapsed = approval if approval and approval.decision == ApprovalDecision.LAPSED else None
    rejected = approval if approval and approval.decision == ApprovalDecision.REJECTED else None
    can_cancel = "cancel" in allowed and revision.status in REVIEWABLE_STATUSES
    can_resolve = "resolve" in allowed and revision.status == S.READY
    stale = ""
    now = revision.integration.version
    if revision.target_version is not None and now != revision.target_version:
        stale = (
            f"{revision.integration.name} is at version {now}; this pull was reviewed at "
            f"version {revision.target_version}. A merge will be refused until the pull is "
            "refreshed and reviewed again."
        )
    common = {"can_cancel": can_cancel, "can_resolve": can_resolve, "stale": stale}
    if revision.status in ACTIVE_STATUSES:
        return MergeBox("in_progress", revision.get_status_display(), **common)
    if revision.status not in REVIEWABLE_STATUSES:
        return MergeBox("final", revision.get_status_display(), **common)
    if revision.status == S.AWAITING_APPROVAL:
        requester = approval.requested_by_id if approval else None
        is_requester = requester is not None and requester == getattr(user, "pk", None)
        if is_requester:
            reason = "You asked for this approval; another approver must give it."
        elif "approve" not in allowed:
            reason = "An approver or an administrator must approve it."
        else:
            reason = "Review the changes below, then approve or reject with a comment."
        return MergeBox(
            "awaiting",
            "Waiting for approval",
            reason=reason,
            can_approve="approve" in allowed and not is_requester,
            approval=approval,
            can_cancel=can_cancel,
            can_resolve=False,
            stale=stale,
        )
    if unresolved:
        noun = "conflict" if unresolved == 1 else "conflicts"
        return MergeBox(
            "conflicts",
            "This pull has conflicts",
            reason=f"Resolve {unresolved} {noun} to merge: choose “keep ours” or “take theirs”.",
            lapsed=lapsed,
            rejected=rejected,
            **common,
        )
    if production:
        return MergeBox(
            "needs_approval",
            "Approval needed",
            reason="Merging into a production integration needs an approver’s approval.",
            can_request="request_approval" in allowed,
            lapsed=lapsed,
            rejected=rejected,
            **common,
        )
    return MergeBox(
        "ready",
        "Ready to merge",
        reason="No conflicts left: merging applies the included changes in one step.",
        can_merge="merge" in allowed,
        lapsed=lapsed,
        rejected=rejected,
        **common,
    )


def snapshots_around(revision: Revision) -> dict[str, Revision | None]:
    """The automatic snapshots taken before and after a merge or revert."""
    snaps = sorted(revision.auto_snapshots.all(), key=lambda r: r.number)
    return {
        "before": snaps[0] if snaps else None,
        "after": snaps[-1] if len(snaps) > 1 else None,
    }


# Field diffs ---------------------------------------------------------------------------


@dataclass
class FieldRow:
    path: str
    conflict: bool
    resolution: str | None
    base: Any
    ours: Any
    theirs: Any
    # Non-conflict: current value → what the merge writes. Conflict: ours ↔ theirs.
    diff: ValueDiff
    base_text: str = ""
    local_only: bool = False
    # Values that carry words beside them (cron schedules): {"left", "right"}.
    meaning: dict[str, str] = field(default_factory=dict)
    # What the values refer to, linked by name (a step's connection, a hook's script).
    refs: list[Ref] = field(default_factory=list)

    @property
    def after(self) -> Any:
        """The value on the right: theirs in a conflict, else what the merge writes."""
        return self.ours if self.local_only and not self.conflict else self.theirs

    @property
    def key(self) -> str:
        return re.sub(r"[^A-Za-z0-9_-]", "-", self.path)


NEITHER = "(a resource in neither integration)"


def shown_value(value: Any, refs: dict[str, Any]) -> Any:
    """The value with every reference (a lineage id) replaced by the thing's name, at any
    depth, and secrets dropped: reviewers read names, never ids."""
    return _shown_value(value, refs, unknown=NEITHER)


def field_rows(
    res: dict[str, Any],
    *,
    ref_names: dict[str, Any] | None = None,
    two_way: bool = False,
    ours_body: dict[str, Any] | None = None,
) -> list[Any]:
    """Per-field rows of one resource, secrets left out; a keyed list (a step's mappings)
    comes as one MappingTable in place of its elements' fields.

    `two_way` (revert preview): `ours` is the current value and `theirs` the restored one.
    In a pull, a field only our side changed keeps our value (marked `local_only`).
    `ref_names` is {lineage id: name or Ref}; `ours_body` the resource as it is on our
    side, to show a changed mapping whole.
    """
    ref_names = ref_names or {}

    def shown(value: Any) -> Any:
        return shown_value(value, ref_names)

    type_key = str(res.get("type") or "")
    keyed = LIST_KEYS.get(type_key, {})
    tables: dict[str, MappingTable] = {}
    rows: list[Any] = []
    fields: list[dict[str, Any]] = []
    for f in res.get("fields") or []:
        # A field that holds a keyed list whole (an added step's config) shows the list
        # as table rows too, and the rest of its value as it is.
        rest, elements = _split_keyed(f, keyed) if keyed else (f, [])
        fields.extend(elements)
        if rest is not None:
            fields.append(rest)
    for f in fields:
        path = f.get("path", "")
        if is_secret_path(path):
            continue
        list_path = _keyed_list_of(path, keyed)
        if list_path is not None:
            table = tables.get(list_path)
            if table is None:
                table = tables[list_path] = MappingTable(path=list_path, identity=keyed[list_path])
                rows.append(table)
            table.fields.append(f)
            continue
        base, ours, theirs = shown(f.get("base")), shown(f.get("ours")), shown(f.get("theirs"))
        conflict = bool(f.get("conflict"))
        code = is_code_field(res.get("type", ""), path)
        local_only = (not two_way) and not conflict and theirs == base and ours != base
        after = ours if local_only else theirs
        absent = None
        if "absent" in f:  # the engine says which sides lack the path (null is a value)
            gone = set(f["absent"])
            absent = ("ours" in gone, ("ours" if local_only else "theirs") in gone)
        diff = value_diff(ours, theirs if conflict else after, code=code, absent=absent, path=path)
        row = FieldRow(
            path=path,
            conflict=conflict,
            resolution=f.get("resolution"),
            base=base,
            ours=ours,
            theirs=theirs,
            diff=diff,
            base_text=as_text(base),
            local_only=local_only,
        )
        for lid in sorted(ids_in(f.get("theirs"), f.get("ours"))):
            ref = ref_names.get(lid)
            if isinstance(ref, Ref) and ref.type_key and ref not in row.refs:
                row.refs.append(ref)
        if is_described_field(type_key, path):
            # Each side's value where its type has words for it (a cron line: the
            # `schedule` template filter shows them); nothing for an absent or empty side.
            row.meaning = {
                "left": ours if field_meaning(type_key, path, ours) else "",
                "right": row.after if field_meaning(type_key, path, row.after) else "",
            }
        rows.append(row)
    for table in tables.values():
        table.build(ours_body, ref_names, two_way=two_way)
    return rows


def _split_keyed(
    f: dict[str, Any], keyed: dict[str, str]
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """A field whose value holds a keyed list whole, as one field per element that differs
    and the field without the list (None when nothing else differs). Conflicts stay whole:
    their choice is for the field as it stands."""
    if f.get("conflict"):
        return f, []
    segs = parse_path(f.get("path", ""))
    rest = dict(f)
    elements: list[dict[str, Any]] = []
    for list_path, identity in keyed.items():
        lsegs = parse_path(list_path)
        if lsegs[: len(segs)] != segs:
            continue
        rel = lsegs[len(segs) :]
        sides = {}
        for side in ("ours", "theirs"):
            value = None if side in f.get("absent", ()) else f.get(side)
            items = _at(value, rel)
            keyed_items = _identified(items, identity)
            if keyed_items is None:
                break
            sides[side] = keyed_items
        else:
            o, t = sides["ours"], sides["theirs"]
            for key in [*o, *(k for k in t if k not in o)]:
                ov, tv = o.get(key), t.get(key)
                if ov == tv:
                    continue
                absent = ["base"] + [s for s, v in (("ours", ov), ("theirs", tv)) if v is None]
                elements.append(
                    {
                        "path": f"{list_path}[{identity}={_json_str(key)}]",
                        "base": None,
                        "ours": ov,
                        "theirs": tv,
                        "conflict": False,
                        "absent": absent,
                    }
                )
            if not rel:
                # Only the order changed: the whole list is the change, shown as it is.
                return (None, elements) if elements else (f, [])
            for side in ("base", "ours", "theirs"):
                rest[side] = _without(rest.get(side), rel)
    if elements and rest.get("ours") == rest.get("theirs"):
        return None, elements
    return rest, elements


def _at(value: Any, rel: list[Any]) -> Any:
    for seg in rel:
        value = value.get(seg) if isinstance(value, dict) else None
    return value


def _identified(items: Any, identity: str) -> dict[str, Any] | None:
    """{identity: element} of a list (None/absent: empty), or None if it has no identity."""
    if items is None:
        return {}
    if not isinstance(items, list):
        return None
    out: dict[str, Any] = {}
    for item in items:
        key = item.get(identity) if isinstance(item, dict) else None
        if not isinstance(key, str) or key in out:
            return None
        out[key] = item
    return out


def _without(value: Any, rel: list[Any]) -> Any:
    if not rel or not isinstance(value, dict):
        return value
    head, tail = rel[0], rel[1:]
    if head not in value:
        return value
    out = dict(value)
    if tail:
        out[head] = _without(value[head], tail)
    else:
        del out[head]
    return out


def _keyed_list_of(path: str, keyed: dict[str, str]) -> str | None:
    """The keyed list (e.g. `config.mappings`) a field path is an element of, if any."""
    for list_path in keyed:
        if path.startswith(list_path + "[") and "=" in path[len(list_path) :]:
            return list_path
    return None


def _element_at(body: Any, list_path: str, identity: str, key: str) -> dict[str, Any] | None:
    node = body
    for seg in parse_path(list_path):
        node = node.get(seg) if isinstance(node, dict) else None
    if isinstance(node, list):
        for item in node:
            if isinstance(item, dict) and item.get(identity) == key:
                return item
    return None


@dataclass
class MappingCell:
    """One column of a mapping row: what it was and what it becomes (HTML, highlighted)."""

    before: SafeString | str = ""
    after: SafeString | str = ""
    changed: bool = False
    url: str = ""  # a lookup cache's page


@dataclass
class MappingRow:
    key: str  # the identity (the target)
    path: str  # the element's path: a resolution there decides this mapping alone
    status: str  # added | removed | changed
    conflict: bool
    resolution: str | None
    cells: dict[str, MappingCell]
    # For a conflict: ours and theirs side by side (each {column: MappingCell}).
    ours: dict[str, MappingCell] = field(default_factory=dict)
    theirs: dict[str, MappingCell] = field(default_factory=dict)

    @property
    def dom_key(self) -> str:
        return re.sub(r"[^A-Za-z0-9_-]", "-", self.path)


MAPPING_COLUMNS = ("source", "target", "lookup_cache")


@dataclass
class MappingTable:
    """A keyed list's changes as rows a person reads: source → target, through a cache."""

    path: str
    identity: str
    fields: list[dict[str, Any]] = field(default_factory=list)
    rows: list[MappingRow] = field(default_factory=list)
    is_table: bool = True

    @property
    def counts(self) -> dict[str, int]:
        out = {"added": 0, "removed": 0, "changed": 0}
        for row in self.rows:
            out[row.status] += 1
        return out

    @property
    def unresolved(self) -> int:
        return sum(1 for r in self.rows if r.conflict and not r.resolution)

    @property
    def counts_text(self) -> str:
        c = self.counts
        parts = [f"{c[k]} {k}" for k in ("added", "changed", "removed") if c[k]]
        conflicts = sum(1 for r in self.rows if r.conflict)
        if conflicts:
            parts.append(conflict_words(conflicts, self.unresolved))
        return ", ".join(parts)

    @property
    def label(self) -> str:
        return self.path.rsplit(".", 1)[-1].replace("_", " ").capitalize()

    def build(self, ours_body: Any, refs: dict[str, Any], *, two_way: bool) -> None:
        by_key: dict[str, list[dict[str, Any]]] = {}
        for f in self.fields:
            segs = parse_path(f["path"])
            depth = len(parse_path(self.path))
            head = segs[depth]
            if isinstance(head, Key):
                by_key.setdefault(head.value, []).append({**f, "_sub": segs[depth + 1 :]})
        for key, fields in by_key.items():
            self.rows.append(self._row(key, fields, ours_body, refs, two_way=two_way))

    def _row(
        self, key: str, fields: list[dict[str, Any]], ours_body: Any, refs: dict, *, two_way: bool
    ) -> MappingRow:
        element_path = f"{self.path}[{self.identity}={_json_str(key)}]"
        whole = next((f for f in fields if not f["_sub"]), None)
        current = _element_at(ours_body, self.path, self.identity, key) if ours_body else None
        conflict = any(f.get("conflict") for f in fields)
        resolutions = {f.get("resolution") for f in fields if f.get("conflict")}
        resolution = resolutions.pop() if len(resolutions) == 1 else None

        def side(name: str) -> dict[str, Any] | None:
            if whole is not None:
                return None if name in whole.get("absent", ()) else whole.get(name)
            element = dict(current or {self.identity: key})
            for f in fields:
                sub = f["_sub"]
                if len(sub) == 1 and isinstance(sub[0], str):
                    if name in f.get("absent", ()):
                        element.pop(sub[0], None)
                    else:
                        element[sub[0]] = f.get(name)
            return element

        ours, theirs = side("ours"), side("theirs")
        if whole is not None and ours is None:
            status = "added"
        elif whole is not None and theirs is None:
            status = "removed"
        else:
            status = "changed"
        row = MappingRow(
            key=key,
            path=element_path,
            status=status,
            conflict=conflict,
            resolution=resolution,
            cells=_cells(ours, theirs, refs),
        )
        if conflict:
            base = side("base") if whole is None else whole.get("base")
            row.ours = _cells(base, ours, refs)
            row.theirs = _cells(base, theirs, refs)
        return row


def _json_str(value: str) -> str:
    return orjson.dumps(value).decode()


def _cell_text(element: dict[str, Any] | None, column: str, refs: dict) -> tuple[str, str]:
    if element is None:
        return "", ""
    value = element.get(column)
    if value in (None, ""):
        return "", ""
    if column == "lookup_cache" and isinstance(value, str):
        ref = refs.get(value)
        if isinstance(ref, Ref):
            return str(ref), ref.url
        if ref is not None:
            return str(ref), ""
        return "(a lookup cache in neither integration)", ""
    return as_text(shown_value(value, refs)), ""


def _cells(
    before: dict[str, Any] | None, after: dict[str, Any] | None, refs: dict
) -> dict[str, MappingCell]:
    cells = {}
    for column in MAPPING_COLUMNS:
        a, _ = _cell_text(before, column, refs)
        b, url = _cell_text(after, column, refs)
        if before is None or after is None or a == b:
            text = escape(b if after is not None else a)
            cells[column] = MappingCell(before=text, after=text, url=url)
            continue
        if a and b and _similar(a, b):
            left, right = word_diff(a, b)
        else:
            left = mark_safe(f'<del class="dw">{escape(a)}</del>') if a else ""
            right = mark_safe(f'<ins class="dw">{escape(b)}</ins>') if b else ""
        cells[column] = MappingCell(before=left, after=right, changed=True, url=url)
    return cells


def conflict_words(conflicts: int, unresolved: int) -> str:
    """ "1 conflict (resolved)", "2 conflicts (1 unresolved)"."""
    noun = "conflict" if conflicts == 1 else "conflicts"
    if not unresolved:
        return f"{conflicts} {noun} (resolved)"
    if unresolved == conflicts:
        return f"{conflicts} {noun}"
    return f"{conflicts} {noun} ({unresolved} unresolved)"


def whole_conflict(res: dict[str, Any]) -> dict[str, Any] | None:
    """One side deleted a resource the other changed: decided for the resource as a whole.

    {"deleted_by": "ours" | "theirs", "resolution": "ours" | "theirs" | None}, or None when
    the resource's conflicts (if any) are per field.
    """
    if res.get("action") == "modified":
        return None
    conflicts = [f for f in res.get("fields") or [] if f.get("conflict")]
    if not conflicts:
        return None
    resolution = next((f.get("resolution") for f in conflicts if f.get("resolution")), None)
    return {
        "deleted_by": "theirs" if res.get("action") == "deleted" else "ours",
        "resolution": resolution,
    }


def referenced_ids(res: dict[str, Any]) -> set[str]:
    """Lineage ids a resource's changed fields refer to (connections, flows, caches)."""
    return ids_in(
        *(f.get(side) for f in res.get("fields") or [] for side in ("base", "ours", "theirs"))
    )


def document_names(*documents: dict[str, Any]) -> dict[str, str]:
    """{lineage id: name} of every resource in these stored documents (the first wins)."""
    names: dict[str, str] = {}
    for doc in documents:
        for lid, body in (doc.get("resources") or {}).items():
            if body.get("name"):
                names.setdefault(str(lid), str(body["name"]))
    return names


def full_body_fields(res: dict[str, Any], body: dict[str, Any] | None, side: str) -> None:
    """An added or deleted resource without field rows shows its whole body as fields."""
    if res.get("fields") or not body:
        return
    fields = []
    for key, value in body.items():
        if key in ("type",) or key in SECRET_FIELDS:
            continue
        fields.append(
            {
                "path": key,
                "base": None,
                "ours": value if side == "ours" else None,
                "theirs": value if side == "theirs" else None,
                "conflict": False,
            }
        )
    res["fields"] = fields


def counts_words(summary: Any) -> list[dict[str, str]]:
    """A changeset summary as words: [{"kind", "text"}], e.g. "3 changed", "1 conflict
    (resolved)". Only an unresolved conflict is marked as one (`kind` "conflict")."""
    s = summary or {}
    parts = []
    for key, word, kind in (
        ("added", "added", "add"),
        ("modified", "changed", "mod"),
        ("deleted", "deleted", "del"),
    ):
        n = int(s.get(key) or 0)
        if n:
            parts.append({"kind": kind, "text": f"{n} {word}"})
    conflicts = int(s.get("conflicts") or 0)
    if conflicts:
        unresolved = int(s.get("unresolved") or 0)
        parts.append(
            {
                "kind": "conflict" if unresolved else "resolved",
                "text": conflict_words(conflicts, unresolved),
            }
        )
    return parts


# What a stored state contains (snapshot page) ------------------------------------------


def state_contents(doc: dict[str, Any], integration: Any) -> list[dict[str, Any]]:
    """A stored document as the integration's tabs show it, read-only: flows with their
    steps (mappings as a table, references by name), connections, lookup caches, scripts.

    Names come from the document itself: they are the names at the time it was stored. A
    reference links to the thing's page while the integration still has it.
    """
    resources = doc.get("resources") or {}
    alive = names_for(
        (lid for lid, body in resources.items() if body.get("type") in REFERABLE_TYPES),
        [integration.pk],
    )
    refs = {
        lid: Ref(
            body.get("name") or "(unnamed)",
            alive[lid].url if lid in alive else "",
            body.get("type", ""),
        )
        for lid, body in resources.items()
    }
    by_type: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for lid, body in resources.items():
        by_type.setdefault(body.get("type", ""), []).append((lid, body))

    def named(items: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
        return sorted(items, key=lambda x: (str(x[1].get("name") or "").lower(), x[0]))

    # Each step under its flow, by the parent field the step type declares.
    step_parent = RESOURCE_TYPES["step"].parent or ""
    steps_of: dict[str, list[dict[str, Any]]] = {}
    for _lid, body in by_type.get("step", []):
        config = body.get("config") if isinstance(body.get("config"), dict) else {}
        mappings = [
            {column: _cell_text(m, column, refs) for column in MAPPING_COLUMNS}
            for m in (config.get("mappings") or [])
            if isinstance(m, dict)
        ]
        hooks = config.get("hooks") if isinstance(config.get("hooks"), dict) else {}
        rest = {k: v for k, v in config.items() if k not in ("mappings", "hooks")}
        steps_of.setdefault(str(body.get(step_parent) or ""), []).append(
            {
                "name": body.get("name") or "(unnamed)",
                "kind": str(body.get("kind") or "").capitalize(),
                "position": body.get("position") or 0,
                "connection": refs.get(str(body.get("connection") or "")),
                "mappings": mappings,
                "hooks": [(hook, refs.get(str(script))) for hook, script in hooks.items()],
                "settings": as_text(shown_value(rest, refs)) if rest else "",
            }
        )
    groups = []
    flows = []
    for lid, body in named(by_type.get("flow", [])):
        steps = sorted(steps_of.get(lid, []), key=lambda s: (s["position"], s["name"].lower()))
        schedule = body.get("schedule") or ""
        flows.append(
            {
                "name": body.get("name") or "(unnamed)",
                "description": body.get("description") or "",
                "enabled": bool(body.get("enabled", True)),
                "schedule": schedule,
                "steps": steps,
            }
        )
    groups.append({"key": "flows", "label": "Flows", "items": flows})
    connections = []
    for _lid, body in named(by_type.get("connection", [])):
        config = body.get("config") if isinstance(body.get("config"), dict) else {}
        connections.append(
            {
                "name": body.get("name") or "(unnamed)",
                "kind": body.get("kind") or "",
                "base_url": config.get("base_url") or "",
                "settings": as_text(hide_secrets(config)) if config else "",
            }
        )
    groups.append({"key": "connections", "label": "Connections", "items": connections})
    caches = [
        {
            "name": body.get("name") or "(unnamed)",
            "key_path": body.get("key_path") or "",
            "settings": as_text(body.get("settings")) if body.get("settings") else "",
        }
        for _lid, body in named(by_type.get("lookup_cache", []))
    ]
    groups.append({"key": "caches", "label": "Lookup caches", "items": caches})
    scripts = [
        {
            "name": body.get("name") or "(unnamed)",
            "function": body.get("function") or "",
            "code": body.get("code") or "",
        }
        for _lid, body in named(by_type.get("script", []))
    ]
    groups.append({"key": "scripts", "label": "Scripts", "items": scripts})
    return groups
