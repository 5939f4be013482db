"""A step's mappings as one Python function. Pure Python, no Django.

    apply = compile_mappings(
        [MappingSpec(source=("sku",), target=("item",), cache={...}, source_text="sku",
                     cache_name="SKUs")],
        build=False,
    )
    record_out = apply(record_in)  # LookupError: a key not in its cache

What `apply` does is what applying `runs.engine.get_path` / `set_path` mapping after
mapping does (the engine's rule, tested against it):

- each mapping in order reads the value at `source`: from the record it was given when
  building a new record (`build=True`: transform, import), from the record being added to
  otherwise (`build=False`: lookup; so a mapping reads what an earlier one wrote);
- a missing value (a key, an index, a non-container on the way) skips the mapping;
- with a cache, the value (a string, else its JSON) is the key; a key not in the cache
  raises `LookupError` naming the source, the key and the cache;
- the value is set at `target`, creating objects and lists on the way (lists padded with
  nulls) and replacing a container of the wrong kind; an empty target replaces the
  record. A record that cannot take the target raises TypeError or AttributeError, as the
  general walk does.

Mappings work on values and never change the record given (nor a cache): what entered
the step stays as it was (an error's retry data, what an error shows), without a deep
copy of every record. Adding to a record (`build=False`) copies the record and the
containers on each target's path before writing into them (the rest is shared). Building
one (`build=True`) writes into containers of its own; a container value is copied only
where another mapping of the step writes inside it (its target is a prefix of that
mapping's), which the targets say before any record is seen.

Why generated code: a mapping runs once per record, 2,000,000 times in the 100,000-record
flow of `make bench` (fig 8); one function with every path spelled out runs several times
faster than a loop calling a getter and a setter per mapping. Only names made here and
list indexes (integers) are written into its source: keys, caches and messages from the
document are handed to it as values, never as text.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

Key = str | int


@dataclass(frozen=True)
class MappingSpec:
    source: tuple[Key, ...]
    target: tuple[Key, ...]
    cache: Mapping[str, Any] | None = None  # None: no lookup cache
    source_text: str = ""
    cache_name: str = ""


def not_in_cache(source_text: str, key: str, cache_name: str) -> str:
    return f"{source_text} {key!r} is not in lookup cache {cache_name!r}."


def json_copy(value: Any) -> Any:
    """A deep copy of a record: through orjson when it is plain JSON (the records a run
    reads and its hooks return are), several times faster than copy.deepcopy, which was a
    fifth of a 100,000-record run's own time (make bench, fig 8); deepcopy otherwise."""
    try:
        return orjson.loads(orjson.dumps(value))
    except (TypeError, orjson.JSONDecodeError):
        return copy.deepcopy(value)


def _shallow(value: Any) -> Any:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    return value


def compile_mappings(
    specs: Sequence[MappingSpec], *, build: bool, missing: Any
) -> Callable[[Any], Any]:
    """One function applying `specs` to a record (see the module docstring); `missing` is
    the engine's marker of a missing value."""
    env: dict[str, Any] = {
        "_MISSING": missing,
        "_dumps": orjson.dumps,
        "_shallow": _shallow,
        "_json_copy": json_copy,
        "_containers": (dict, list),
        "_not_in_cache": not_in_cache,
        "_isinstance": isinstance,
        "_dict": dict,
        "_list": list,
        "_str": str,
        "_len": len,
    }
    # adding to a record: `fresh` says whether `target` is this function's own copy yet
    code = ["def apply(record):"]
    code += ["    target = {}"] if build else ["    target = record", "    fresh = False"]
    reads = "record" if build else "target"
    for n, spec in enumerate(specs):
        code += _get(n, spec.source, reads, env)
        if not build and not spec.source:
            # the whole record is read: this copy is now a value elsewhere, the next write
            # goes to a new one
            code.append("    fresh = False")
        code.append("    if v is not _MISSING:")
        body: list[str] = []
        if spec.cache is not None:
            env[f"C{n}"], env[f"S{n}"], env[f"N{n}"] = spec.cache, spec.source_text, spec.cache_name
            body += [
                "key = v if type(v) is _str else _dumps(v).decode()",
                f"v = C{n}.get(key, _MISSING)",
                "if v is _MISSING:",
                f"    raise LookupError(_not_in_cache(S{n}, key, N{n}))",
            ]
        if build and _written_inside(spec.target, specs):
            body += ["if _isinstance(v, _containers): v = _json_copy(v)"]
        body += _put(n, spec.target, env, copy=not build)
        code += [f"        {line}" for line in body]
    code.append("    return target")
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(code), "<runs.mapping>", "exec"), env, namespace)
    return namespace["apply"]


def _written_inside(target: tuple[Key, ...], specs: Sequence[MappingSpec]) -> bool:
    """Does a mapping of `specs` write inside what is set at `target`?"""
    return any(len(s.target) > len(target) and s.target[: len(target)] == target for s in specs)


def _key(name: str, key: Key, env: dict[str, Any]) -> str:
    """How the source names one key: an index as its digits, a name as the global `name`."""
    if isinstance(key, int):
        return str(int(key))
    env[name] = key
    return name


def _get(n: int, path: tuple[Key, ...], reads: str, env: dict[str, Any]) -> list[str]:
    # a name read from a non-object fails with TypeError (a list, a string, a number), an
    # index is read from lists only (get_path's rule: "abc"[0] is missing, not "a")
    lines = ["    try:"]
    chain = reads
    for j, key in enumerate(path):
        if isinstance(key, int):
            lines.append(f"        v = {chain}")
            lines.append("        if type(v) is not _list and not _isinstance(v, _list):")
            lines.append("            raise KeyError")
            chain = "v"
        chain += f"[{_key(f'G{n}_{j}', key, env)}]"
    lines.append(f"        v = {chain}")
    lines += ["    except (KeyError, TypeError, IndexError):", "        v = _MISSING"]
    return lines


def _put(n: int, path: tuple[Key, ...], env: dict[str, Any], *, copy: bool) -> list[str]:
    if not path:
        return ["target = v", "fresh = False"] if copy else ["target = v"]
    lines = ["if not fresh: target = _shallow(target); fresh = True"] if copy else []
    lines.append("node = target")
    for j, key in enumerate(path):
        k = _key(f"P{n}_{j}", key, env)
        if isinstance(key, int):
            lines.append(f"while _len(node) <= {k}: node.append(None)")
        if j == len(path) - 1:
            lines.append(f"node[{k}] = v")
            break
        kind = "_list" if isinstance(path[j + 1], int) else "_dict"
        lines.append(f"child = node[{k}]" if isinstance(key, int) else f"child = node.get({k})")
        if copy:
            lines.append(f"child = {kind}(child) if _isinstance(child, {kind}) else {kind}()")
            lines.append(f"node[{k}] = child")
        else:
            # `type(...) is` first: the plain containers JSON gives pass without a call
            lines.append(
                f"if type(child) is not {kind} and not _isinstance(child, {kind}):"
                f" child = node[{k}] = {kind}()"
            )
        lines.append("node = child")
    return lines
