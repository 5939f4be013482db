"""Two values side by side, with what changed marked: the field diffs people read.

Shared by the review pages (`revisions.review`) and the audit log's event details
(`audit.views`); it sits on the lowest floor both import (docs/architecture.md). Pure
rendering: strings in, escaped HTML out; secrets are dropped before anything is shown.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from .resources import hide_secrets

# Above this many tokens or lines a diff falls back to plain before/after: difflib is
# quadratic in the worst case and a reviewer cannot read more anyway.
MAX_WORD_TOKENS = 4000
MAX_LINES = 5000
CONTEXT_LINES = 3


@dataclass
class LineRow:
    kind: str  # same | changed | added | removed | skip
    left_no: int | None = None
    left: SafeString | str = ""
    right_no: int | None = None
    right: SafeString | str = ""
    skipped: int = 0


@dataclass
class ValueDiff:
    """Two values ready to show side by side."""

    mode: str  # inline | lines
    left: SafeString | str = ""
    right: SafeString | str = ""
    left_absent: bool = False
    right_absent: bool = False
    rows: list[LineRow] = field(default_factory=list)
    added: int = 0
    removed: int = 0
    # Short values in monospace only when they are code-like (see `reads_as_code`).
    mono: bool = True


# Short values written in a code-like syntax: a cron line, a function name, a record path,
# anything inside a step's config. Names, descriptions and flags read in plain type.
CODE_LIKE_FIELDS = frozenset({"schedule", "function", "key_path", "config", "settings", "code"})


def reads_as_code(path: str) -> bool:
    """Whether a field's value shows in monospace (a name never does)."""
    head = path.split(".", 1)[0].split("[", 1)[0]
    return head in CODE_LIKE_FIELDS


_TOKEN = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return orjson.dumps(
        hide_secrets(value), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    ).decode()


def word_diff(a: str, b: str) -> tuple[SafeString, SafeString]:
    """Both strings as HTML with the words that differ wrapped in <del>/<ins>."""
    ta, tb = _TOKEN.findall(a), _TOKEN.findall(b)
    if len(ta) + len(tb) > MAX_WORD_TOKENS:
        return mark_safe(escape(a)), mark_safe(escape(b))
    matcher = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
    left: list[str] = []
    right: list[str] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        sa, sb = escape("".join(ta[i1:i2])), escape("".join(tb[j1:j2]))
        if op == "equal":
            left.append(sa)
            right.append(sb)
            continue
        if sa:
            left.append(f'<del class="dw">{sa}</del>')
        if sb:
            right.append(f'<ins class="dw">{sb}</ins>')
    return mark_safe("".join(left)), mark_safe("".join(right))


def line_diff(a: str, b: str, *, context: int = CONTEXT_LINES) -> list[LineRow]:
    """A side-by-side line diff with line numbers; long unchanged runs fold into one row."""
    la, lb = a.splitlines(), b.splitlines()
    if len(la) + len(lb) > MAX_LINES:
        la, lb = la[:MAX_LINES], lb[:MAX_LINES]
    matcher = difflib.SequenceMatcher(None, la, lb, autojunk=False)
    rows: list[LineRow] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            for k in range(i2 - i1):
                text = escape(la[i1 + k])
                rows.append(LineRow("same", i1 + k + 1, text, j1 + k + 1, text))
        elif op == "replace":
            for k in range(max(i2 - i1, j2 - j1)):
                left = la[i1 + k] if i1 + k < i2 else None
                right = lb[j1 + k] if j1 + k < j2 else None
                if left is not None and right is not None:
                    if _similar(left, right):
                        hl, hr = word_diff(left, right)
                    else:  # unrelated lines: marking words in them is only noise
                        hl, hr = escape(left), escape(right)
                    rows.append(LineRow("changed", i1 + k + 1, hl, j1 + k + 1, hr))
                elif left is not None:
                    rows.append(LineRow("removed", i1 + k + 1, escape(left)))
                else:
                    rows.append(LineRow("added", None, "", j1 + k + 1, escape(right)))
        elif op == "delete":
            for k in range(i2 - i1):
                rows.append(LineRow("removed", i1 + k + 1, escape(la[i1 + k])))
        elif op == "insert":
            for k in range(j2 - j1):
                rows.append(LineRow("added", None, "", j1 + k + 1, escape(lb[j1 + k])))
    return _fold(rows, context)


def _similar(a: str, b: str) -> bool:
    return difflib.SequenceMatcher(None, a, b, autojunk=False).quick_ratio() >= 0.5


def _fold(rows: list[LineRow], context: int) -> list[LineRow]:
    changed = [i for i, r in enumerate(rows) if r.kind != "same"]
    if not changed:
        return rows
    keep = set()
    for i in changed:
        keep.update(range(max(0, i - context), min(len(rows), i + context + 1)))
    out: list[LineRow] = []
    skipped = 0
    for i, row in enumerate(rows):
        if i in keep:
            if skipped:
                out.append(LineRow("skip", skipped=skipped))
                skipped = 0
            out.append(row)
        else:
            skipped += 1
    if skipped:
        out.append(LineRow("skip", skipped=skipped))
    return out


def value_diff(
    before: Any,
    after: Any,
    *,
    code: bool = False,
    absent: tuple[bool, bool] | None = None,
    path: str | None = None,
) -> ValueDiff:
    """Two field values as a word diff (short values) or a line diff (code, JSON, text).

    `absent` says which side does not have the field at all; without it, None means absent.
    A side that has the field with a JSON null then shows `null`. `path` names the field:
    a short value is in monospace only if that field reads as code.
    """
    diff = _value_diff(before, after, code=code, absent=absent)
    diff.mono = path is None or reads_as_code(path)
    return diff


def _value_diff(
    before: Any, after: Any, *, code: bool, absent: tuple[bool, bool] | None
) -> ValueDiff:
    left_absent, right_absent = absent if absent is not None else (before is None, after is None)
    a = "" if left_absent else ("null" if before is None else as_text(before))
    b = "" if right_absent else ("null" if after is None else as_text(after))
    multiline = (
        code
        or "\n" in a
        or "\n" in b
        or isinstance(before, (dict, list))
        or isinstance(after, (dict, list))
    )
    if multiline:
        rows = line_diff(a, b)
        return ValueDiff(
            "lines",
            rows=rows,
            left_absent=left_absent,
            right_absent=right_absent,
            added=sum(1 for r in rows if r.kind in ("added", "changed") and r.right_no),
            removed=sum(1 for r in rows if r.kind in ("removed", "changed") and r.left_no),
        )
    if left_absent or right_absent:
        return ValueDiff(
            "inline",
            left=escape(a),
            right=escape(b),
            left_absent=left_absent,
            right_absent=right_absent,
        )
    if not _similar(a, b):
        # Unrelated values (a new cron expression, another URL): marking the few words they
        # happen to share only hides that the whole value changed.
        return ValueDiff(
            "inline",
            left=mark_safe(f'<del class="dw">{escape(a)}</del>') if a else escape(a),
            right=mark_safe(f'<ins class="dw">{escape(b)}</ins>') if b else escape(b),
        )
    left, right = word_diff(a, b)
    return ValueDiff("inline", left=left, right=right)
