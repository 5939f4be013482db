import pytest
from django.core.exceptions import ValidationError

from integrations import services
from integrations.models import Flow, Integration
from tests.factories import ConnectionFactory, FlowFactory, IntegrationFactory

pytestmark = pytest.mark.django_db


def version_of(integration: Integration) -> int:
    return Integration.objects.values_list("version", flat=True).get(pk=integration.pk)


def test_each_service_call_raises_the_version_by_exactly_one():
    integration = IntegrationFactory()
    start = version_of(integration)
    flow = services.resource_create(
        integration=integration, type_key="flow", data={"name": "Orders", "schedule": ""}
    )
    assert version_of(integration) == start + 1
    services.resource_update(instance=flow, data={"name": "Orders v2", "enabled": False})
    assert version_of(integration) == start + 2
    services.resource_delete(instance=flow)
    assert version_of(integration) == start + 3


def test_a_save_that_changes_nothing_does_not_raise_the_version():
    flow = FlowFactory()
    start = version_of(flow.integration)
    services.resource_update(instance=flow, data={"name": flow.name})
    assert version_of(flow.integration) == start


def test_invalid_input_changes_nothing_and_keeps_the_version():
    integration = IntegrationFactory()
    other = ConnectionFactory()  # another integration's connection
    flow = FlowFactory(integration=integration)
    start = version_of(integration)
    with pytest.raises(ValidationError):
        services.resource_create(
            integration=integration,
            type_key="step",
            data={"name": "Bad", "flow": flow, "kind": "export", "connection": other.pk},
        )
    with pytest.raises(ValidationError):
        services.resource_create(integration=integration, type_key="flow", data={"name": "  "})
    assert version_of(integration) == start
    assert Flow.objects.filter(integration=integration).count() == 1


def test_integration_save_never_overwrites_a_bumped_version():
    integration = IntegrationFactory()
    stale = Integration.objects.get(pk=integration.pk)
    FlowFactory(integration=integration)  # bumps in the database
    services.integration_update(integration=stale, data={"description": "new words"})
    assert version_of(integration) == 3
