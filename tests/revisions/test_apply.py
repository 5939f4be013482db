"""Applying a document to an integration: all or nothing, in dependency order, recorded."""

from __future__ import annotations

import copy

import pytest
from django.core.exceptions import ValidationError

from integrations.models import Connection, FlowStep, LookupCacheEntry
from revisions.apply import apply_document, document_problems
from revisions.document import document_of
from revisions.errors import StaleReview
from tests.factories import (
    CacheEntryFactory,
    ConnectionFactory,
    FlowFactory,
    LookupCacheFactory,
    StepFactory,
)

pytestmark = pytest.mark.django_db

NEW_CONN = "11111111-1111-4111-8111-111111111111"
NEW_STEP = "22222222-2222-4222-8222-222222222222"
NEW_CACHE = "33333333-3333-4333-8333-333333333333"


@pytest.fixture
def stocked(integration):
    conn = ConnectionFactory(integration=integration, name="ERP", credentials={"k": "secret"})
    cache = LookupCacheFactory(integration=integration, name="SKUs")
    CacheEntryFactory(cache=cache, key="A")
    flow = FlowFactory(integration=integration, name="Orders")
    step = StepFactory(flow=flow, name="Map", connection=conn)
    integration.refresh_from_db()
    return {"conn": conn, "cache": cache, "flow": flow, "step": step}


def test_apply_creates_updates_and_deletes_in_dependency_order(integration, stocked):
    doc = copy.deepcopy(document_of(integration))
    flow_lid = str(stocked["flow"].lineage_id)
    doc["resources"][NEW_CONN] = {"type": "connection", "name": "New", "kind": "http", "config": {}}
    doc["resources"][NEW_CACHE] = {
        "type": "lookup_cache",
        "name": "New cache",
        "key_path": "id",
        "settings": {},
    }
    doc["resources"][NEW_STEP] = {
        "type": "step",
        "name": "Uses new",
        "flow": flow_lid,
        "position": 2,
        "kind": "import",
        "connection": NEW_CONN,
        "config": {"mappings": [{"source": "a", "target": "b", "lookup_cache": NEW_CACHE}]},
    }
    del doc["resources"][str(stocked["step"].lineage_id)]
    del doc["resources"][str(stocked["conn"].lineage_id)]
    doc["resources"][flow_lid] = {**doc["resources"][flow_lid], "enabled": False}
    version = integration.version
    counts = apply_document(integration=integration, document=doc)
    assert counts == {"created": 3, "updated": 1, "deleted": 2}
    assert document_of(integration) == doc
    integration.refresh_from_db()
    assert integration.version == version + 1
    step = FlowStep.objects.get(integration=integration, lineage_id=NEW_STEP)
    assert step.connection.lineage_id.hex == NEW_CONN.replace("-", "")
    assert step.history.first().history_change_reason == "ILM operation"


def test_apply_keeps_credentials_and_cache_entries(integration, stocked):
    doc = copy.deepcopy(document_of(integration))
    conn_lid, cache_lid = str(stocked["conn"].lineage_id), str(stocked["cache"].lineage_id)
    doc["resources"][conn_lid]["config"] = {"base_url": "https://new"}
    doc["resources"][cache_lid]["settings"] = {"ttl_days": 1}
    apply_document(integration=integration, document=doc)
    assert Connection.objects.get(pk=stocked["conn"].pk).credentials == {"k": "secret"}
    assert LookupCacheEntry.objects.filter(cache=stocked["cache"]).count() == 1


def test_stale_version_is_refused_and_nothing_written(integration, stocked):
    doc = copy.deepcopy(document_of(integration))
    doc["resources"][str(stocked["flow"].lineage_id)]["name"] = "Renamed"
    before = document_of(integration)
    with pytest.raises(StaleReview, match="changed since"):
        apply_document(
            integration=integration, document=doc, expected_version=integration.version - 1
        )
    assert document_of(integration) == before


def test_a_reference_to_a_missing_resource_is_refused_before_writing(integration, stocked):
    doc = copy.deepcopy(document_of(integration))
    del doc["resources"][str(stocked["flow"].lineage_id)]
    problems = document_problems(doc)
    assert len(problems) == 1 and "flow" in problems[0]
    before = document_of(integration)
    with pytest.raises(ValidationError):
        apply_document(integration=integration, document=doc)
    assert document_of(integration) == before


def test_a_mapping_naming_a_missing_lookup_cache_is_refused_before_writing(integration, stocked):
    doc = copy.deepcopy(document_of(integration))
    step = doc["resources"][str(stocked["step"].lineage_id)]
    step["config"] = {
        "mappings": [
            {"source": "a", "target": "b", "lookup_cache": str(stocked["cache"].lineage_id)},
            {"source": "c", "target": "d", "lookup_cache": NEW_CACHE},
        ]
    }
    assert document_problems(doc) == [
        f"Flow step 'Map', mapping 2, uses a lookup cache that would not exist ({NEW_CACHE}); "
        "include that lookup cache or leave the flow step out."
    ]
    before = document_of(integration)
    with pytest.raises(ValidationError, match="mapping 2, uses a lookup cache"):
        apply_document(integration=integration, document=doc)
    assert document_of(integration) == before


def test_an_invalid_value_is_refused_naming_the_resource(integration, stocked):
    doc = copy.deepcopy(document_of(integration))
    doc["resources"][str(stocked["step"].lineage_id)]["kind"] = "teleport"
    before = document_of(integration)
    with pytest.raises(ValidationError, match="Flow step 'Map' is not valid"):
        apply_document(integration=integration, document=doc)
    assert document_of(integration) == before


def test_a_malformed_step_config_is_refused_naming_the_step(integration, stocked):
    doc = copy.deepcopy(document_of(integration))
    doc["resources"][str(stocked["step"].lineage_id)]["config"] = {"mappings": [{"source": "a"}]}
    before = document_of(integration)
    with pytest.raises(ValidationError, match="Flow step 'Map' is not valid: config: Mapping 1"):
        apply_document(integration=integration, document=doc)
    assert document_of(integration) == before
