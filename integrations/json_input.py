"""What JSON the site accepts, declared once: how deep it nests and what its text may hold.

Every JSON value that comes in (API request bodies, the JSON fields of the UI's forms,
uploaded packages and lookup-cache files) is checked here before anything uses it:

- nesting at most `settings.ILM_JSON_MAX_DEPTH` levels (64). Deeper values broke the
  site in three places: Python's parser runs out of recursion near 1,000 levels, orjson
  (canonical JSON, the audit chain, entry sizes) refuses past 255, and the approval hash
  of a change set nests the value a few levels further;
- no lone UTF-16 surrogates (`"\\ud800"`): JSON allows the escape, UTF-8 cannot hold it,
  and PostgreSQL refuses the text;
- no NUL characters (PostgreSQL text cannot hold them) and no numbers beyond 64 bits
  (canonical JSON cannot hold them).

Raw bytes are scanned for depth before a parser sees them, so a deep body is refused
without recursion; the scan skips string contents and runs at C speed unless the body
is too deep, when a second pass finds where (to name the field).
"""

from __future__ import annotations

import io
import re
from itertools import accumulate
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from rest_framework import serializers
from rest_framework.parsers import JSONParser

# The database hands large numbers back as integers, which canonical JSON (orjson) holds
# only up to 64 bits: refuse bigger magnitudes on the way in.
JSON_NUMBER_LIMIT = 2**63

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},:]', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
# A surrogate escape somewhere; whether it is paired is checked on the parsed value.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


# A stored value sits a few levels down in what carries it: a request body, a package
# (`document.resources.<id>.config` is five down), a cache file. Whole bodies and files
# are allowed this much more, so anything the site stores can be exported and imported.
ENVELOPE_DEPTH = 8


def max_depth() -> int:
    """How deep one stored JSON value (a config, settings, a cache value) may nest."""
    return settings.ILM_JSON_MAX_DEPTH


def edge_depth() -> int:
    """How deep a whole request body or uploaded file may nest."""
    return max_depth() + ENVELOPE_DEPTH


def _path(parts: list[str | int]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def raw_depth_problem(raw: bytes | str, *, limit: int | None = None) -> tuple[str, str] | None:
    """(field path, message) if raw JSON nests deeper than `limit` (default: a value's).

    The path is where the limit is crossed, e.g. `config.a.b[0]`; `""` when the
    document itself is the too-deep value.
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    limit = max_depth() if limit is None else limit
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return None
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    if max(accumulate(_STEP[b] for b in brackets), default=0) <= limit:
        return None
    # Too deep: walk the tokens once more, keeping the path, to say where.
    stack: list[list] = []  # [kind, key-or-index, expecting-key]
    last_string = ""
    for match in _TOKEN.finditer(raw):
        token = match.group()
        if token.startswith(b'"'):
            last_string = token[1:-1].decode("utf-8", "replace")
            continue
        if token in (b"{", b"["):
            if len(stack) >= limit:
                path = _path([entry[1] for entry in stack if entry[1] is not None])
                return path, deep_message(limit)
            stack.append(["object", None, True] if token == b"{" else ["array", 0, False])
        elif token in (b"}", b"]"):
            if stack:
                stack.pop()
        elif token == b":" and stack and stack[-1][0] == "object":
            stack[-1][1] = last_string
        elif token == b"," and stack and stack[-1][0] == "array":
            stack[-1][1] += 1
    return "", deep_message(limit)


def deep_message(limit: int) -> str:
    # Stated as a value's limit even when a whole body's (limit + envelope) was crossed:
    # the value where it was crossed then nests deeper than a value may, too.
    del limit
    return f"JSON may nest at most {max_depth()} levels deep; this goes deeper."


def located(message: str, path: str) -> str:
    """The message with where it applies: `... (at config.a.b)`, long paths cut short."""
    if not path:
        return message
    shown = path if len(path) <= 80 else path[:80] + "…"
    return f"{message[:-1] if message.endswith('.') else message} (at {shown})."


def value_problem(value: Any, *, limit: int | None = None) -> tuple[str, str] | None:
    """(path, message) for the first thing in a parsed value the site cannot keep.

    `limit` defaults to a stored value's depth. Iterative, so a value of any depth is
    walked without recursion.
    """
    limit = max_depth() if limit is None else limit
    stack: list[tuple[Any, list[str | int], int]] = [(value, [], 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            problem = _text_problem(item)
            if problem:
                return _path(path), problem
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int | float):
            if item != item or abs(item) >= JSON_NUMBER_LIMIT:
                return _path(path), (
                    f"Numbers must lie between -{JSON_NUMBER_LIMIT} and {JSON_NUMBER_LIMIT}."
                )
        elif isinstance(item, dict | list | tuple):
            if depth >= limit:
                return _path(path), deep_message(limit)
            if isinstance(item, dict):
                for key, child in reversed(item.items()):
                    problem = _text_problem(str(key))
                    if problem:
                        return _path([*path, str(key)]), f"A key: {problem[0].lower()}{problem[1:]}"
                    stack.append((child, [*path, str(key)], depth + 1))
            else:
                for i in reversed(range(len(item))):
                    stack.append((item[i], [*path, i], depth + 1))
    return None


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "Text may not contain NUL (\\u0000) characters."
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return (
            "Text may not contain a lone UTF-16 surrogate (such as \\ud800); it is not a character."
        )
    return None


def raw_may_hold_surrogates(raw: bytes) -> bool:
    return bool(_SURROGATE_ESCAPE.search(raw))


def json_value_check(value: Any, *, field: str = "", limit: int | None = None) -> None:
    """Raise ValidationError({field: [message saying where]}) if the value is refused."""
    problem = value_problem(value, limit=limit)
    if problem is None:
        return
    where, message = problem
    path = _join(field, where)
    raise ValidationError({top_field(path) or "non_field_errors": [located(message, path)]})


def _join(field: str, where: str) -> str:
    if not field:
        return where
    if not where:
        return field
    return f"{field}{where}" if where.startswith("[") else f"{field}.{where}"


def top_field(path: str) -> str:
    """The top-level field of a path (`config` of `config.a[0]`), for API error keys."""
    return re.split(r"[.\[]", path, maxsplit=1)[0] if path else ""


class JSONInputParser(JSONParser):
    """DRF's JSON parser, refusing what this module refuses before the parser recurses.

    A refused body is a 400 in the API's error shape, keyed by the top-level field.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        problem = raw_depth_problem(raw, limit=edge_depth())
        if problem is not None:
            path, message = problem
            raise serializers.ValidationError(
                {top_field(path) or "non_field_errors": [located(message, path)]}
            )
        data = super().parse(io.BytesIO(raw), media_type, parser_context)
        if raw_may_hold_surrogates(raw):
            try:
                json_value_check(data, limit=edge_depth())
            except ValidationError as exc:
                raise serializers.ValidationError(exc.message_dict) from None
        return data
