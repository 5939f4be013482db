"""The canonical document of an integration, and its content-addressed storage.

`{"integration": {field: value}, "resources": {lineage_id: {"type", "name", ...}}}`, built
from the one registry of tracked fields (`integrations.resources`). References are written
as lineage ids, so documents of an integration and its clones compare directly. Secrets
and lookup-cache data are not tracked fields, so they are never in a document.

A tree stores a document by hash: each resource body once as a Blob, the tree itself as
`{lineage_id: blob hash}` plus the integration's own fields. Storing an unchanged
integration again adds no row at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from django.db import connection, transaction
from django.db.models import JSONField, TextField
from django.db.models.functions import Cast

from integrations.models import Integration
from integrations.resources import INTEGRATION_FIELDS, RESOURCE_TYPES

from .models import Blob, Tree

_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def canonical_bytes(obj: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, no whitespace, UUIDs as strings."""
    return orjson.dumps(obj, option=_OPTIONS)


def body_hash(body: Any) -> str:
    return hashlib.sha256(canonical_bytes(body)).hexdigest()


def empty_document() -> dict[str, Any]:
    return {"integration": dict.fromkeys(INTEGRATION_FIELDS, ""), "resources": {}}


def document_of(integration: Integration | int) -> dict[str, Any]:
    """The integration's canonical document, read fresh from the database."""
    if isinstance(integration, int):
        integration = Integration.objects.get(pk=integration)
    own = {f: getattr(integration, f) for f in INTEGRATION_FIELDS}
    resources: dict[str, dict[str, Any]] = {}
    for rt in RESOURCE_TYPES.values():
        # JSON columns come back as text and are parsed with orjson: Django's JSONField
        # decoding (the json module) is most of the time of a large document otherwise.
        json_fields = {f for f in rt.fields if isinstance(rt.model._meta.get_field(f), JSONField)}
        casts = {f"_{f}_json": Cast(f, output_field=TextField()) for f in json_fields}
        columns = [
            f"_{f}_json" if f in json_fields else f"{f}__lineage_id" if f in rt.refs else f
            for f in rt.fields
        ]
        rows = (
            rt.model.objects.filter(integration_id=integration.pk)
            .annotate(**casts)
            .values_list("lineage_id", *columns)
        )
        for lineage_id, *values in rows:
            body: dict[str, Any] = {"type": rt.key}
            for name, value in zip(rt.fields, values, strict=True):
                if name in json_fields:
                    value = orjson.loads(value) if value is not None else None
                elif name in rt.refs and value is not None:
                    value = str(value)
                body[name] = value
            resources[str(lineage_id)] = body
    return {"integration": own, "resources": resources}


def document_hashes(doc: Mapping[str, Any]) -> dict[str, str]:
    return {lid: body_hash(body) for lid, body in doc["resources"].items()}


def tree_hash(integration_fields: Mapping[str, Any], entries: Mapping[str, str]) -> str:
    return body_hash({"integration": integration_fields, "entries": entries})


def tree_of_document(doc: Mapping[str, Any], *, hashes: Mapping[str, str] | None = None) -> Tree:
    """Store a document as a tree; only bodies not stored before become Blob rows.

    `hashes`: the document's `document_hashes`, when the caller has them already.
    """
    entries = dict(hashes) if hashes is not None else document_hashes(doc)
    bodies: dict[str, Any] = {}
    for lid, h in entries.items():
        bodies.setdefault(h, doc["resources"][lid])
    return tree_of_entries(doc.get("integration") or {}, entries, bodies)


def tree_of_entries(
    integration_fields: Mapping[str, Any], entries: Mapping[str, str], bodies: Mapping[str, Any]
) -> Tree:
    """Store a tree given as its entries ({lineage id: body hash}).

    `bodies` ({hash: body}) holds the bodies that may not be stored yet; every other
    entry must name a stored blob (one of another tree, say), or LookupError is raised
    and nothing is stored.
    """
    integration_fields = dict(integration_fields)
    entries = dict(entries)
    key = tree_hash(integration_fields, entries)
    tree = Tree.objects.filter(hash=key).first()
    if tree is not None:
        return tree
    have: set[str] = set()
    hashes = list(set(entries.values()))
    for i in range(0, len(hashes), 2000):
        have.update(
            Blob.objects.filter(hash__in=hashes[i : i + 2000]).values_list("hash", flat=True)
        )
    missing = [h for h in hashes if h not in have and h not in bodies]
    if missing:
        raise LookupError(f"{len(missing)} resource bodies of a tree are neither stored nor given.")
    _store_blobs({h: bodies[h] for h in hashes if h not in have})
    tree, _ = Tree.objects.get_or_create(
        hash=key, defaults={"integration_fields": integration_fields, "entries": entries}
    )
    return tree


def _store_blobs(bodies: Mapping[str, Any]) -> None:
    """Insert blobs that may be new; one stored meanwhile by someone else is kept as is.

    On PostgreSQL, a large set goes through COPY into a temporary table and one
    INSERT … ON CONFLICT DO NOTHING (COPY itself cannot skip a conflict): a merge of
    thousands of resources stores thousands of bodies, each serialised by orjson rather
    than by the json module.
    """
    if not bodies:
        return
    if connection.vendor != "postgresql" or len(bodies) < 100:
        Blob.objects.bulk_create(
            [Blob(hash=h, body=body) for h, body in bodies.items()],
            batch_size=500,
            ignore_conflicts=True,
        )
        return
    table = connection.ops.quote_name(Blob._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE ilm_new_blobs (hash varchar(64), body jsonb) ON COMMIT DROP"
        )
        with cursor.copy("COPY ilm_new_blobs (hash, body) FROM STDIN") as copy:
            for h, body in bodies.items():
                copy.write_row((h, orjson.dumps(body).decode()))
        cursor.execute(
            f"INSERT INTO {table} (hash, body) SELECT hash, body FROM ilm_new_blobs "
            "ON CONFLICT (hash) DO NOTHING"
        )
        cursor.execute("DROP TABLE ilm_new_blobs")


def tree_of(integration: Integration | int) -> Tree:
    """Store the integration's current document as a tree and return it."""
    return tree_of_document(document_of(integration))


def documents_of_trees(*trees: Tree | None) -> list[dict[str, Any]]:
    """Documents of several trees, loading each blob once and sharing equal bodies.

    Equal bodies are the same object in every document returned, so a diff over them
    skips unchanged resources by identity. Treat the bodies as read-only. A None tree is
    the empty document.
    """
    hashes: set[str] = set()
    for tree in trees:
        if tree is not None:
            hashes.update(tree.entries.values())
    bodies = blobs_of(hashes)
    docs = []
    for tree in trees:
        if tree is None:
            docs.append(empty_document())
            continue
        docs.append(
            {
                "integration": dict(tree.integration_fields),
                "resources": {lid: bodies[h] for lid, h in tree.entries.items()},
            }
        )
    return docs


def blobs_of(hashes: Iterable[str]) -> dict[str, Any]:
    """Stored bodies by hash ({hash: body}); LookupError if one is missing."""
    hashes = list(hashes)
    bodies: dict[str, Any] = {}
    for i in range(0, len(hashes), 2000):
        rows = (
            Blob.objects.filter(hash__in=hashes[i : i + 2000])
            .annotate(_json=Cast("body", output_field=TextField()))
            .values_list("hash", "_json")
        )
        bodies.update((h, orjson.loads(text)) for h, text in rows)
    missing = set(hashes) - set(bodies)
    if missing:
        raise LookupError(f"{len(missing)} resource bodies of a stored tree are missing.")
    return bodies
