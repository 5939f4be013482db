"""Services the integration pages call, where the pages rely on a behaviour."""

import pytest
from django.core.exceptions import ValidationError

from integrations import services
from integrations.models import Integration
from tests.factories import (
    ConnectionFactory,
    FlowFactory,
    IntegrationFactory,
    LookupCacheFactory,
    StepFactory,
)

pytestmark = pytest.mark.django_db


def version(integration):
    return Integration.objects.get(pk=integration.pk).version


def test_move_step_down_renumbers_the_flow_once():
    flow = FlowFactory()
    a = StepFactory(flow=flow, name="a", position=3)
    b = StepFactory(flow=flow, name="b", position=7)
    c = StepFactory(flow=flow, name="c", position=9)
    before = version(flow.integration)
    services.flow_step_move(step=a, direction="down")
    assert list(flow.steps.order_by("position").values_list("name", "position")) == [
        ("b", 1),
        ("a", 2),
        ("c", 3),
    ]
    assert version(flow.integration) == before + 1
    assert b.history.count() == 2 and c.history.count() == 2  # each change is in history


@pytest.mark.parametrize(("index", "direction"), [(0, "up"), (1, "down")])
def test_move_past_the_ends_is_refused(index, direction):
    flow = FlowFactory()
    steps = [StepFactory(flow=flow, position=1), StepFactory(flow=flow, position=2)]
    before = version(flow.integration)
    with pytest.raises(ValidationError, match="already the"):
        services.flow_step_move(step=steps[index], direction=direction)
    assert version(flow.integration) == before


def test_move_needs_a_direction():
    with pytest.raises(ValidationError):
        services.flow_step_move(step=StepFactory(), direction="sideways")


def test_a_resource_change_is_the_integrations_last_change():
    integration = IntegrationFactory()
    stamp = Integration.objects.get(pk=integration.pk).updated_at
    services.resource_create(integration=integration, type_key="flow", data={"name": "F"})
    assert Integration.objects.get(pk=integration.pk).updated_at > stamp


def test_step_with_another_integrations_connection_is_refused():
    flow = FlowFactory()
    before = version(flow.integration)
    with pytest.raises(ValidationError) as exc:
        services.resource_create(
            integration=flow.integration,
            type_key="step",
            data={"name": "S", "flow": flow, "kind": "export", "connection": ConnectionFactory()},
        )
    assert "another integration" in str(exc.value)
    assert version(flow.integration) == before and not flow.steps.exists()


def test_mapping_through_a_cache_of_this_integration_is_accepted():
    flow = FlowFactory()
    cache = LookupCacheFactory(integration=flow.integration)
    step = services.resource_create(
        integration=flow.integration,
        type_key="step",
        data={
            "name": "S",
            "flow": flow,
            "kind": "lookup",
            "config": {
                "mappings": [{"source": "a", "target": "b", "lookup_cache": str(cache.lineage_id)}]
            },
        },
    )
    assert step.config["mappings"][0]["lookup_cache"] == str(cache.lineage_id)


def test_csv_import_is_all_or_nothing():
    cache = LookupCacheFactory(key_path="sku")
    with pytest.raises(ValidationError, match="no 'sku' column"):
        services.cache_entries_import(cache=cache, filename="x.csv", content=b"code\nA\n")
    assert not cache.entries.exists()
    count = services.cache_entries_import(
        cache=cache, filename="x.csv", content=b"sku,item\nA,1\nB,2\n"
    )
    assert count == 2 and services.cache_data_bytes(cache.integration_id) > 0


def test_a_mapping_with_an_unknown_field_is_refused_and_changes_nothing(integration):
    flow = FlowFactory(integration=integration)
    version = Integration.objects.get(pk=integration.pk).version
    with pytest.raises(ValidationError, match="unknown field.*'cache'"):
        services.resource_create(
            integration=integration,
            type_key="step",
            data={
                "name": "Shape",
                "flow": flow,
                "position": 1,
                "kind": "transform",
                "config": {"mappings": [{"source": "a", "target": "b", "cache": None}]},
            },
        )
    assert not flow.steps.exists()
    assert Integration.objects.get(pk=integration.pk).version == version
