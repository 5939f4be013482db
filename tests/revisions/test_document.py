"""Canonical documents and their content-addressed storage."""

import pytest

from integrations.services import resource_update
from revisions.document import (
    body_hash,
    canonical_bytes,
    document_of,
    documents_of_trees,
    tree_of,
)
from revisions.models import Blob, Tree
from tests.factories import (
    CacheEntryFactory,
    ConnectionFactory,
    FlowFactory,
    LookupCacheFactory,
    ScriptFactory,
    StepFactory,
)
from tests.revisions.conftest import document_of_tree

pytestmark = pytest.mark.django_db


@pytest.fixture
def stocked(integration):
    conn = ConnectionFactory(integration=integration, name="ERP", credentials={"key": "s3cr3t"})
    cache = LookupCacheFactory(integration=integration, name="SKUs")
    CacheEntryFactory(cache=cache, key="SKU-1", value={"erp_item": "ITEM-SECRETLESS"})
    flow = FlowFactory(integration=integration, name="Orders")
    step = StepFactory(
        flow=flow,
        connection=conn,
        config={
            "mappings": [{"source": "sku", "target": "item", "lookup_cache": str(cache.lineage_id)}]
        },
    )
    script = ScriptFactory(integration=integration)
    return {"connection": conn, "cache": cache, "flow": flow, "step": step, "script": script}


def test_document_keys_resources_by_lineage_and_writes_references_as_lineage_ids(
    integration, stocked
):
    doc = document_of(integration)
    step = doc["resources"][str(stocked["step"].lineage_id)]
    assert step["type"] == "step"
    assert step["flow"] == str(stocked["flow"].lineage_id)
    assert step["connection"] == str(stocked["connection"].lineage_id)
    assert set(doc["resources"]) == {str(r.lineage_id) for r in stocked.values()}
    assert doc["integration"] == {
        "description": integration.description,
        "documentation": integration.documentation,
    }


def test_document_never_holds_secrets_or_cache_data(integration, stocked):
    raw = canonical_bytes(document_of(integration))
    assert b"s3cr3t" not in raw
    assert b"credentials" not in raw
    assert b"SKU-1" not in raw and b"SECRETLESS" not in raw
    conn = document_of(integration)["resources"][str(stocked["connection"].lineage_id)]
    assert set(conn) == {"type", "name", "kind", "config"}


def test_canonical_bytes_do_not_depend_on_key_order():
    assert canonical_bytes({"b": 1, "a": [{"y": 1, "x": 2}]}) == canonical_bytes(
        {"a": [{"x": 2, "y": 1}], "b": 1}
    )
    assert body_hash({"b": 1, "a": 2}) == body_hash({"a": 2, "b": 1})


def test_a_snapshot_of_an_unchanged_integration_adds_no_rows(integration, stocked):
    first = tree_of(integration)
    blobs, trees = Blob.objects.count(), Tree.objects.count()
    assert tree_of(integration).hash == first.hash
    assert (Blob.objects.count(), Tree.objects.count()) == (blobs, trees)


def test_a_changed_resource_adds_one_blob_and_one_tree(integration, stocked):
    tree_of(integration)
    blobs, trees = Blob.objects.count(), Tree.objects.count()
    resource_update(instance=stocked["script"], data={"code": "// changed"})
    tree_of(integration)
    assert (Blob.objects.count(), Tree.objects.count()) == (blobs + 1, trees + 1)


def test_a_tree_gives_back_the_document_it_stored(integration, stocked):
    doc = document_of(integration)
    tree = tree_of(integration)
    assert document_of_tree(tree) == doc
    assert tree.entries == {lid: body_hash(body) for lid, body in doc["resources"].items()}


def test_documents_of_trees_share_equal_bodies(integration, stocked):
    before = tree_of(integration)
    resource_update(instance=stocked["script"], data={"code": "// changed"})
    after = tree_of(integration)
    a, b = documents_of_trees(before, after)
    lid = str(stocked["flow"].lineage_id)
    assert a["resources"][lid] is b["resources"][lid]
    assert documents_of_trees(None)[0]["resources"] == {}


def test_a_large_document_is_stored_once_and_read_back_equal():
    # Past 100 new bodies the blobs go in through COPY on PostgreSQL; one body stored
    # before (by another tree) is kept, not refused as a duplicate.
    from revisions.document import tree_of_document

    doc = {
        "integration": {"description": "big"},
        "resources": {
            f"00000000-0000-4000-8000-{i:012d}": {
                "type": "script",
                "name": f"Script {i}",
                "function": "f",
                "code": f"// {i}\n",
            }
            for i in range(150)
        },
    }
    first = next(iter(doc["resources"].values()))
    Blob.objects.create(hash=body_hash(first), body=first)
    tree = tree_of_document(doc)
    assert Blob.objects.count() == 150
    assert document_of_tree(tree) == doc
    assert tree_of_document(doc) == tree
    assert Blob.objects.count() == 150
