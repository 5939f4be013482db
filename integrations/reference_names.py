"""What a reference reads as: the thing's name, with a link to its page while it exists.

Documents and step configs refer to other resources by lineage id (a step's connection
and flow, a mapping's lookup cache, a hook's script); the audit log records a foreign key
as "Name (#pk)". People read names, never ids: the review and revert pages
(`revisions.review`), the compare and snapshot pages and the audit log's event details
(`audit.views`) all turn references into names here. It sits on the lowest floor they
all import (docs/architecture.md).

A reference to something deleted since reads "deleted lookup cache «Countries»", its name
taken from its last history row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.urls import reverse

from .resources import RESOURCE_TYPES, SECRET_FIELDS

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# Types something can refer to, and the page that shows one.
REFERABLE_TYPES: tuple[str, ...] = ("connection", "flow", "lookup_cache", "script")
_PAGES = {
    "connection": "integrations:connections",
    "flow": "integrations:flow",
    "lookup_cache": "integrations:cache",
    "script": "integrations:scripts",
}
# The audit log records a foreign key as "Name (#pk)" (audit.capture): name and pk back.
_RECORDED_FK = re.compile(r"^(?P<name>.*) \(#(?P<pk>\d+)\)$", re.S)


@dataclass(frozen=True)
class Ref:
    """A resource something refers to: its name, its type and its page (none once deleted)."""

    name: str
    url: str = ""
    type_key: str = ""
    deleted: bool = False

    @property
    def type_label(self) -> str:
        rt = RESOURCE_TYPES.get(self.type_key)
        return rt.label.lower() if rt else "resource"

    def __str__(self) -> str:
        if self.deleted:
            return f"deleted {self.type_label} «{self.name}»"
        return self.name


def page_of(type_key: str, integration_id: int, pk: int) -> str:
    """The page that shows one resource (its tab, or its own page for flows and caches)."""
    name = _PAGES[type_key]
    if type_key in ("flow", "lookup_cache"):
        return reverse(name, args=[integration_id, pk])
    return reverse(name, args=[integration_id])


def referenced_ids(*values: Any) -> set[str]:
    """Every lineage id inside these values, at any depth."""
    found: set[str] = set()
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if UUID_RE.match(value):
                found.add(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
    return found


def names_for(
    ids: Iterable[str], integration_ids: list[int], *, known: dict[str, str] | None = None
) -> dict[str, Ref]:
    """The resources with these lineage ids in the given integrations: {lineage id: Ref}.

    The first integration in `integration_ids` wins where several hold one. An id found in
    none of them takes its name from `known` (names a stored document carries), else from
    its last history row, as deleted. One query per referable type, one more for the
    deleted ones.
    """
    wanted = {str(i) for i in ids}
    if not wanted:
        return {}
    found: dict[str, Ref] = {}
    rank = {pk: i for i, pk in enumerate(integration_ids)}
    for key in REFERABLE_TYPES:
        model = RESOURCE_TYPES[key].model
        rows = sorted(
            model.objects.filter(
                integration_id__in=integration_ids, lineage_id__in=list(wanted)
            ).values_list("lineage_id", "name", "integration_id", "pk"),
            key=lambda r: rank.get(r[2], len(rank)),
        )
        for lid, name, integration_id, pk in rows:
            found.setdefault(str(lid), Ref(name, page_of(key, integration_id, pk), key))
    for lid, name in (known or {}).items():
        if lid in wanted and lid not in found:
            found[lid] = Ref(name)
    missing = wanted - set(found)
    for key in REFERABLE_TYPES if missing else ():
        history = RESOURCE_TYPES[key].model.history
        rows = (
            history.filter(integration_id__in=integration_ids, lineage_id__in=list(missing))
            .order_by("-history_id")
            .values_list("lineage_id", "name")
        )
        for lid, name in rows:
            found.setdefault(str(lid), Ref(name, type_key=key, deleted=True))
        missing -= set(found)
    return found


def refs_of_recorded(type_key: str, values: Iterable[Any]) -> dict[str, Ref]:
    """Foreign keys as the audit log recorded them ("Name (#pk)") to refer to a `type_key`:
    {recorded value: Ref}, named as recorded, linked while the thing exists."""
    pks: dict[str, tuple[str, int]] = {}
    for value in values:
        match = _RECORDED_FK.match(value) if isinstance(value, str) else None
        if match:
            pks[value] = (match["name"], int(match["pk"]))
    if not pks:
        return {}
    model = RESOURCE_TYPES[type_key].model
    alive = dict(
        model.objects.filter(pk__in={pk for _, pk in pks.values()}).values_list(
            "pk", "integration_id"
        )
    )
    return {
        value: Ref(name, page_of(type_key, alive[pk], pk), type_key)
        if pk in alive
        else Ref(name, type_key=type_key, deleted=True)
        for value, (name, pk) in pks.items()
    }


UNKNOWN = "(a resource not found)"


def shown_value(value: Any, refs: dict[str, Any], *, unknown: str = UNKNOWN) -> Any:
    """The value with every lineage id replaced by what it refers to, at any depth, and
    secrets dropped. `refs` is {lineage id: Ref or name}."""
    if isinstance(value, str) and UUID_RE.match(value):
        ref = refs.get(value)
        return unknown if ref is None else str(ref)
    if isinstance(value, dict):
        return {
            k: shown_value(v, refs, unknown=unknown)
            for k, v in value.items()
            if k not in SECRET_FIELDS
        }
    if isinstance(value, list):
        return [shown_value(v, refs, unknown=unknown) for v in value]
    return value
