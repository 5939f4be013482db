"""Two- and three-way diffs of integration documents, and applying them. Pure Python.

A document is `{"integration": {field: value}, "resources": {lineage_id: body}}` where a
body is `{"type", "name", ...fields}` (see `revisions.document`). A changeset lists, per
resource that the other side changed, its action and per field path the base, ours and
theirs values:

    {"resources": [{"lineage_id", "type", "name", "action", "parent", "included",
                    "fields": [{"path", "base", "ours", "theirs", "conflict",
                                "resolution", "absent"?}]}],
     "summary": {"added", "modified", "deleted", "conflicts", "unresolved",
                 "by_type": {type: {"added", "modified", "deleted", "conflicts",
                                    "unresolved"}}}}

What a three-way changeset shows is what a merge would bring from theirs: a path appears
only where theirs changed it since the base and ours does not already hold the same value.
Paths only ours changed are local changes, kept by a merge and not listed. A conflict is a
path both sides changed differently, or a resource one side deleted and the other changed.

Paths: dicts are walked key by key (`config.base_url`), lists index by index when the
three sides have the same length (`config.x[0]`), otherwise the list is one value. Keys
that are not identifiers are written `config["a.b"]`. A side that does not have the path
at all is listed in the field's `absent` (its value shows as null).

Lists with an identity (`keys`: {resource type: {list path: identity field}}, declared
once on the resource types, e.g. a step's `config.mappings` by `target`) are walked
element by element, each element found by its identity: `config.mappings[target="id"]`
and `config.mappings[target="id"].source`. Adding, removing and changing elements are
separate changes, so two sides that add different mappings, or change different fields of
one mapping, do not conflict. A merge keeps the target's order; an element theirs brings
goes after the element it follows in theirs (past the target's own additions there), so
new mappings are appended in the source's order; its field carries that as `after` (the
identity it follows, null for the start of the list). Such a list is one value, as any
other list, when a side breaks the identity (an element that is not an object, an
identity that is missing, not a string or repeated) or theirs reorders what the base had.

The integration's own fields form one entry with `lineage_id` INTEGRATION_KEY and type
"integration". Added and deleted resources list their top-level fields, so a merge can
rebuild the whole body from the changeset alone.

Equal subtrees are never walked: identical objects and equal hashes (when given) are
skipped before anything is compared, so a pull over thousands of unchanged resources costs
a set union and a dict lookup per resource.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any, Literal, NamedTuple, NotRequired, TypedDict

INTEGRATION_KEY = "00000000-0000-0000-0000-000000000000"
INTEGRATION_TYPE = "integration"
INTEGRATION_NAME = "Integration settings"

ACTIONS = ("added", "modified", "deleted")
OURS = "ours"
THEIRS = "theirs"


class _Missing:
    """A path one side does not have (distinct from a JSON null)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __deepcopy__(self, memo: dict) -> _Missing:
        return self


MISSING: Any = _Missing()


# The changeset's shape (module docstring), for every module it crosses: services compute
# and store it, selectors read it back, apply and merge take it, review and the API show it.


class FieldChange(TypedDict):
    path: str
    base: Any
    ours: Any
    theirs: Any
    conflict: bool
    resolution: Literal["ours", "theirs"] | None
    absent: NotRequired[list[str]]  # the sides without the path ("base", "ours", "theirs")
    after: NotRequired[str | None]  # keyed-list element: the identity it follows in theirs


class ResourceChange(TypedDict):
    lineage_id: str
    type: str
    name: str
    action: Literal["added", "modified", "deleted"]
    parent: str | None  # the parent's lineage id (a step's flow), for types that have one
    included: bool
    fields: list[FieldChange]


class Counts(TypedDict):
    added: int
    modified: int
    deleted: int
    conflicts: int
    unresolved: int


class Summary(Counts):
    by_type: dict[str, Counts]


class Changeset(TypedDict):
    resources: list[ResourceChange]
    summary: Summary


class ChangesetError(ValueError):
    """A changeset cannot be applied as it stands (e.g. a conflict without resolution)."""


# Paths --------------------------------------------------------------------------------

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*\Z")


class Key(NamedTuple):
    """A path segment: the element of a list whose identity field has this value."""

    field: str
    value: str


Segment = str | int | Key


def format_path(segments: Iterable[Segment]) -> str:
    out: list[str] = []
    for seg in segments:
        if isinstance(seg, Key):
            out.append(f"[{seg.field}={json.dumps(seg.value, ensure_ascii=False)}]")
        elif isinstance(seg, int):
            out.append(f"[{seg}]")
        elif _IDENT.match(seg):
            out.append(f".{seg}" if out else seg)
        else:
            out.append("[" + json.dumps(seg, ensure_ascii=False) + "]")
    return "".join(out)


_PATH_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_DECODER = json.JSONDecoder()


def parse_path(path: str) -> list[Segment]:
    """The segments of a path written by `format_path`."""
    return list(_segments(path))


@lru_cache(maxsize=8192)
def _segments(path: str) -> tuple[Segment, ...]:
    # A changeset names the same paths over and over (one per field kind per resource):
    # each is parsed once.
    segments: list[Segment] = []
    i, n = 0, len(path)
    ident = _PATH_IDENT
    decoder = _DECODER
    while i < n:
        ch = path[i]
        if ch == ".":
            if not segments:
                raise ValueError(f"Bad path {path!r}: it starts with a dot.")
            i += 1
        elif ch == "[":
            keyed = ident.match(path, i + 1)
            if i + 1 < n and path[i + 1] == '"':
                key, end = decoder.raw_decode(path, i + 1)
                segments.append(key)
                i = end
            elif keyed and path.startswith("=", keyed.end()):
                value, end = decoder.raw_decode(path, keyed.end() + 1)
                if not isinstance(value, str):
                    raise ValueError(f"Bad path {path!r}: an identity is a string.")
                segments.append(Key(keyed.group(0), value))
                i = end
            else:
                end = path.index("]", i)
                segments.append(int(path[i + 1 : end]))
                i = end
            if i >= n or path[i] != "]":
                raise ValueError(f"Bad path {path!r}: missing ']'.")
            i += 1
            continue
        m = ident.match(path, i)
        if not m:
            raise ValueError(f"Bad path {path!r} at {i}.")
        segments.append(m.group(0))
        i = m.end()
    return tuple(segments)


def _path_matches(path: str, prefixes: Iterable[str]) -> bool:
    for prefix in prefixes:
        if path == prefix or path.startswith((prefix + ".", prefix + "[")):
            return True
    return False


# Walking ------------------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    return a is b or (a is not MISSING and b is not MISSING and a == b)


def _walk(
    base: Any,
    ours: Any,
    theirs: Any,
    path: list[Segment],
    keyed: Mapping[str, str] | None = None,
) -> Iterator[tuple[list[Segment], Any, Any, Any, dict[str, Any]]]:
    """Paths where theirs changed since base and ours does not already equal theirs.

    Each comes with extras for its field (`after` for an element of a keyed list that ours
    does not have). `keyed` is {list path: identity field} for this resource's type.
    """
    if _same(ours, theirs) or _same(base, theirs):
        return
    if (
        isinstance(ours, dict)
        and isinstance(theirs, dict)
        and (base is MISSING or isinstance(base, dict))
    ):
        keys = set(ours) | set(theirs)
        if isinstance(base, dict):
            keys |= set(base)
        for key in sorted(keys, key=str):
            yield from _walk(
                base.get(key, MISSING) if isinstance(base, dict) else MISSING,
                ours.get(key, MISSING),
                theirs.get(key, MISSING),
                [*path, key],
                keyed,
            )
        return
    if keyed and isinstance(ours, list) and isinstance(theirs, list):
        identity = keyed.get(format_path(path))
        if identity is not None and (base is MISSING or isinstance(base, list)):
            elements = _keyed_walk(base, ours, theirs, path, identity, keyed)
            if elements is not None:
                yield from elements
                return
    if (
        isinstance(ours, list)
        and isinstance(theirs, list)
        and isinstance(base, list)
        and len(ours) == len(theirs) == len(base)
    ):
        for i, (b, o, t) in enumerate(zip(base, ours, theirs, strict=True)):
            yield from _walk(b, o, t, [*path, i], keyed)
        return
    yield path, base, ours, theirs, {}


def _by_identity(items: list[Any], identity: str) -> dict[str, Any] | None:
    """{identity: element} in list order, or None where the list breaks its identity."""
    out: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, dict):
            return None
        key = item.get(identity)
        if not isinstance(key, str) or key in out:
            return None
        out[key] = item
    return out


def _keyed_walk(
    base: Any,
    ours: list[Any],
    theirs: list[Any],
    path: list[Segment],
    identity: str,
    keyed: Mapping[str, str],
) -> list[tuple[list[Segment], Any, Any, Any, dict[str, Any]]] | None:
    """The element-wise changes of a keyed list, or None when it must be one value."""
    b = _by_identity([] if base is MISSING else base, identity)
    o = _by_identity(ours, identity)
    t = _by_identity(theirs, identity)
    if b is None or o is None or t is None:
        return None
    if [k for k in t if k in b] != [k for k in b if k in t]:
        return [(path, base, ours, theirs, {})]  # theirs reordered: the order is the change
    # Where each element ours lacks would go: after its predecessor in theirs, past the
    # elements of ours that theirs does not have there (ours' additions; theirs' deletions,
    # which the merge removes).
    merged = list(o)
    placed = set(merged)
    after: dict[str, str | None] = {}
    theirs_keys = list(t)
    for i, key in enumerate(theirs_keys):
        if key in placed:
            continue
        pred = next((p for p in reversed(theirs_keys[:i]) if p in placed), None)
        at = merged.index(pred) + 1 if pred is not None else 0
        while at < len(merged) and merged[at] in o and merged[at] not in t:
            at += 1
        merged.insert(at, key)
        placed.add(key)
        after[key] = merged[at - 1] if at else None
    out = []
    for key in merged + [k for k in b if k not in placed]:
        for sub_path, bv, ov, tv, extra in _walk(
            b.get(key, MISSING),
            o.get(key, MISSING),
            t.get(key, MISSING),
            [*path, Key(identity, key)],
            keyed,
        ):
            if ov is MISSING and tv is not MISSING and len(sub_path) == len(path) + 1:
                extra = {**extra, "after": after[key]}
            out.append((sub_path, bv, ov, tv, extra))
    return out


def _field(
    path: str, base: Any, ours: Any, theirs: Any, conflict: bool, **extra: Any
) -> FieldChange:
    out: FieldChange = {
        "path": path,
        "base": None if base is MISSING else base,
        "ours": None if ours is MISSING else ours,
        "theirs": None if theirs is MISSING else theirs,
        "conflict": conflict,
        "resolution": None,
    }
    absent = [
        side
        for side, value in (("base", base), ("ours", ours), ("theirs", theirs))
        if value is MISSING
    ]
    if absent:
        out["absent"] = absent
    out.update(extra)  # type: ignore[typeddict-item]
    return out


def _top_level(body: Any) -> dict[str, Any]:
    return body if isinstance(body, dict) else {}


def _resource_entry(
    lineage_id: str,
    base: Any,
    ours: Any,
    theirs: Any,
    ignore: Mapping[str, Iterable[str]],
    keys: Mapping[str, Mapping[str, str]] | None = None,
    parents: Mapping[str, str] | None = None,
) -> ResourceChange | None:
    """The changeset entry of one resource whose theirs differs from base and from ours."""
    some = next(b for b in (theirs, ours, base) if b is not MISSING)
    rtype = some.get("type", "")
    if lineage_id == INTEGRATION_KEY:
        rtype, name = INTEGRATION_TYPE, INTEGRATION_NAME
    else:
        name = some.get("name") or ""
    fields: list[FieldChange] = []
    if theirs is MISSING or ours is MISSING:
        # Deleted by theirs (ours still has it), or present in theirs and not in ours.
        action = "deleted" if theirs is MISSING else "added"
        b, o, t = _top_level(base), _top_level(ours), _top_level(theirs)
        changed_by_ours = ours is not MISSING and base is not MISSING and ours != base
        changed_by_theirs = theirs is not MISSING and base is not MISSING and theirs != base
        for key in sorted(set(b) | set(o) | set(t)):
            bv, ov, tv = b.get(key, MISSING), o.get(key, MISSING), t.get(key, MISSING)
            if base is MISSING:
                bv = MISSING
            if ours is MISSING:
                ov = MISSING
            if theirs is MISSING:
                tv = MISSING
            if action == "deleted":
                conflict = changed_by_ours and not _same(ov, bv)
            else:
                conflict = changed_by_theirs and not _same(tv, bv)
            fields.append(_field(format_path([key]), bv, ov, tv, conflict))
    else:
        action = "modified"
        skip = tuple(ignore.get(rtype, ()))
        keyed = (keys or {}).get(rtype)
        for path, b, o, t, extra in _walk(base, ours, theirs, [], keyed):
            text = format_path(path)
            if skip and _path_matches(text, skip):
                continue
            fields.append(_field(text, b, o, t, not _same(o, b), **extra))
        if not fields:
            return None
    parent_field = (parents or {}).get(rtype)
    parent = some.get(parent_field) if parent_field else None
    return {
        "lineage_id": lineage_id,
        "type": rtype,
        "name": name,
        "action": action,
        "parent": parent,
        "included": True,
        "fields": fields,
    }


def _sort_key(res: ResourceChange) -> tuple:
    return (
        res["type"] != INTEGRATION_TYPE,
        res["type"],
        str(res["name"]).lower(),
        res["lineage_id"],
    )


def three_way(
    base: Mapping[str, Any],
    ours: Mapping[str, Any],
    theirs: Mapping[str, Any],
    *,
    ignore: Mapping[str, Iterable[str]] | None = None,
    keys: Mapping[str, Mapping[str, str]] | None = None,
    parents: Mapping[str, str] | None = None,
    hashes: tuple[Mapping[str, str], Mapping[str, str], Mapping[str, str]] | None = None,
) -> Changeset:
    """What merging theirs into ours brings, relative to their common base.

    `ignore` is {resource type: [path, ...]}: those paths (and everything under them) of
    modified resources are neither shown nor carried. `keys` is {resource type: {list
    path: identity field}}: those lists are diffed element by element. `parents` is
    {resource type: field naming its parent}: an entry's `parent` is that field's value
    (a step's flow), None for other types. `hashes` (base,
    ours, theirs) maps lineage id → body hash; when given, resources are compared by hash
    first.
    """
    ignore = ignore or {}
    b_res = base.get("resources") or {}
    o_res = ours.get("resources") or {}
    t_res = theirs.get("resources") or {}
    resources: list[ResourceChange] = []

    integration = (
        _resource_entry(
            INTEGRATION_KEY,
            base.get("integration") or {},
            ours.get("integration") or {},
            theirs.get("integration") or {},
            ignore,
        )
        if not (
            _same(ours.get("integration") or {}, theirs.get("integration") or {})
            or _same(base.get("integration") or {}, theirs.get("integration") or {})
        )
        else None
    )
    if integration is not None:
        resources.append(integration)

    bh, oh, th = hashes if hashes is not None else ({}, {}, {})
    for lid in set(o_res) | set(t_res) | set(b_res):
        if hashes is not None:
            t_hash = th.get(lid)
            if t_hash == oh.get(lid) or t_hash == bh.get(lid):
                continue
        b, o, t = b_res.get(lid, MISSING), o_res.get(lid, MISSING), t_res.get(lid, MISSING)
        if _same(o, t) or _same(b, t) or (o is MISSING and t is MISSING):
            continue
        entry = _resource_entry(lid, b, o, t, ignore, keys, parents)
        if entry is not None:
            resources.append(entry)
    resources.sort(key=_sort_key)
    return {"resources": resources, "summary": summarize(resources)}


def diff(a: Mapping[str, Any], b: Mapping[str, Any], **kwargs: Any) -> Changeset:
    """The changes that turn document `a` into document `b` (a three-way with base = a)."""
    if "hashes" in kwargs and kwargs["hashes"] is not None:
        ah, bh = kwargs.pop("hashes")
        kwargs["hashes"] = (ah, ah, bh)
    return three_way(a, a, b, **kwargs)


# Resolutions ---------------------------------------------------------------------------


def is_whole_resource_conflict(res: Mapping[str, Any]) -> bool:
    """One side deleted what the other changed: decided for the resource as a whole."""
    return res["action"] != "modified" and any(f["conflict"] for f in res["fields"])


def summarize(resources: Iterable[Mapping[str, Any]]) -> Summary:
    summary: Any = dict.fromkeys(ACTIONS, 0)
    summary.update(conflicts=0, unresolved=0)
    by_type: dict[str, Counts] = {}
    for res in resources:
        counts = by_type.setdefault(
            res["type"], {"added": 0, "modified": 0, "deleted": 0, "conflicts": 0, "unresolved": 0}
        )
        summary[res["action"]] += 1
        counts[res["action"]] += 1
        conflicts = sum(1 for f in res["fields"] if f["conflict"])
        unresolved = (
            sum(1 for f in res["fields"] if f["conflict"] and f.get("resolution") is None)
            if res.get("included", True)
            else 0
        )
        summary["conflicts"] += conflicts
        summary["unresolved"] += unresolved
        counts["conflicts"] += conflicts
        counts["unresolved"] += unresolved
    summary["by_type"] = by_type
    return summary


def with_resolutions(changeset: Changeset, resolutions: Iterable[Mapping[str, Any]]) -> Changeset:
    """The changeset with reviewers' choices filled in and the summary recounted.

    A resolution is {lineage_id, path (None or "" = the whole resource), choose}. For a
    modified resource, a whole-resource "ours" leaves it out of the merge and "theirs"
    takes it back in; a path choice decides the conflicts at and under that path (an
    element of a keyed list: every conflict of that one mapping). Where one side deleted what the
    other changed, any choice decides the whole resource. Choices that match nothing in
    the changeset are ignored (a refreshed pull keeps the ones that still apply).
    """
    by_lid: dict[str, list[Mapping[str, Any]]] = {}
    for r in resolutions:
        by_lid.setdefault(str(r["lineage_id"]), []).append(r)
    resources = []
    for res in changeset.get("resources") or []:
        chosen = by_lid.get(str(res["lineage_id"]))
        if not chosen:
            resources.append(res)
            continue
        res = {**res, "fields": [dict(f) for f in res["fields"]]}
        whole_conflict = is_whole_resource_conflict(res)
        for r in chosen:
            path, choose = r.get("path") or "", r["choose"]
            if whole_conflict:
                res["included"] = choose == THEIRS
                for f in res["fields"]:
                    if f["conflict"]:
                        f["resolution"] = choose
            elif not path:
                res["included"] = choose == THEIRS
            else:
                for f in fields_under(res, path):
                    if f["conflict"]:
                        f["resolution"] = choose
        resources.append(res)
    return {**changeset, "resources": resources, "summary": summarize(resources)}


def resolution_applies(changeset: Changeset, lineage_id: str, path: str | None) -> bool:
    """Does a choice for (lineage id, path) decide something in this changeset?"""
    for res in changeset.get("resources") or []:
        if str(res["lineage_id"]) != str(lineage_id):
            continue
        if not path or is_whole_resource_conflict(res):
            return True
        return any(f["conflict"] for f in fields_under(res, path))
    return False


def fields_under(res: Mapping[str, Any], path: str) -> list[Mapping[str, Any]]:
    """The fields of a changeset entry at `path` or under it."""
    return [f for f in res["fields"] if _path_matches(f["path"], (path,))]


# Applying ------------------------------------------------------------------------------


def _set_path(
    root: Any,
    path: Sequence[Segment],
    value: Any,
    after: Any = MISSING,
    owned: set[int] | None = None,
) -> Any:
    """`root` with `path` set to `value` (or removed for MISSING); copies what it changes.

    A keyed element that is not in its list yet goes after the element whose identity is
    `after` (None: first; not found or not given: last). `owned`: ids of containers this
    caller copied already (changed in place, not copied again: many fields of one
    resource set one after the other copy each level once).
    """
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(head, Key) and isinstance(root, list):
        at = next(
            (
                i
                for i, item in enumerate(root)
                if isinstance(item, dict) and item.get(head.field) == head.value
            ),
            None,
        )
        out_list = _own(root, list, owned)
        if at is not None:
            if rest:
                out_list[at] = _set_path(root[at], rest, value, after, owned)
            elif value is MISSING:
                del out_list[at]
            else:
                out_list[at] = value
            return out_list
        if value is MISSING and not rest:
            return out_list  # already gone
        if rest:
            raise ChangesetError(f"The path {format_path(path)} does not exist in this document.")
        where = len(out_list)
        if after is None:
            where = 0
        elif after is not MISSING:
            for i, item in enumerate(out_list):
                if isinstance(item, dict) and item.get(head.field) == after:
                    where = i + 1
                    break
        out_list.insert(where, value)
        return out_list
    if isinstance(root, dict) and not isinstance(head, Key):
        out = _own(root, dict, owned)
        child = _set_path(root.get(head, MISSING), rest, value, after, owned) if rest else value
        if child is MISSING:
            out.pop(head, None)
        else:
            out[head] = child
        return out
    if isinstance(root, list) and isinstance(head, int) and 0 <= head < len(root):
        out_list = _own(root, list, owned)
        out_list[head] = _set_path(root[head], rest, value, after, owned) if rest else value
        return out_list
    raise ChangesetError(f"The path {format_path(path)} does not exist in this document.")


def _own(root: Any, kind: type, owned: set[int] | None) -> Any:
    if owned is None:
        return kind(root)
    if id(root) in owned:
        return root
    out = kind(root)
    owned.add(id(out))
    return out


def _value(field: Mapping[str, Any], side: str) -> Any:
    return MISSING if side in field.get("absent", ()) else copy.deepcopy(field[side])


def _choice(res: Mapping[str, Any], field: Mapping[str, Any]) -> str:
    if not field["conflict"]:
        return THEIRS
    if field.get("resolution") in (OURS, THEIRS):
        return field["resolution"]
    raise ChangesetError(
        f"The conflict on {res['name'] or res['lineage_id']} ({field['path']}) is not resolved."
    )


def apply_changes(doc: Mapping[str, Any], changeset: Changeset) -> dict[str, Any]:
    """`doc` with the changeset's choices applied (theirs unless resolved "ours").

    Resources left out (`included` false) stay as they are in `doc`. Unresolved conflicts
    raise ChangesetError. `doc` itself is not changed.
    """
    integration = dict(doc.get("integration") or {})
    resources = dict(doc.get("resources") or {})
    for res in changeset.get("resources") or []:
        if not res.get("included", True):
            continue
        lid = str(res["lineage_id"])
        action = res["action"]
        fields = res["fields"]
        if action != "modified":
            choices = {_choice(res, f) for f in fields}
            if OURS in choices:
                continue
            if action == "deleted":
                resources.pop(lid, None)
            else:
                body = {}
                for f in fields:
                    value = _value(f, THEIRS)
                    if value is not MISSING:
                        body[_segments(f["path"])[0]] = value
                resources[lid] = body
            continue
        if lid == INTEGRATION_KEY:
            target: Any = integration
        elif lid in resources:
            target = resources[lid]
        else:
            raise ChangesetError(
                f"{res['name'] or lid} is not in this document any more; refresh the changes."
            )
        # Removals last, so an element a keyed list gains finds the one it goes after.
        taken = [f for f in fields if _choice(res, f) == THEIRS]
        taken.sort(key=lambda f: THEIRS in f.get("absent", ()))
        owned: set[int] = set()
        for f in taken:
            target = _set_path(
                target, _segments(f["path"]), _value(f, THEIRS), f.get("after", MISSING), owned
            )
        if lid == INTEGRATION_KEY:
            integration = target
        else:
            resources[lid] = target
    return {"integration": integration, "resources": resources}


def empty_changeset() -> Changeset:
    """A changeset with nothing in it (what a refused preview shows)."""
    return {"resources": [], "summary": summarize([])}


def is_empty(changeset: Changeset) -> bool:
    return not changeset.get("resources")
