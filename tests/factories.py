"""Factories for every model, in one place."""

import factory
from factory.django import DjangoModelFactory

from integrations import models as m


class UserFactory(DjangoModelFactory):
    class Meta:
        model = m.User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    role = m.Role.DEVELOPER

    @factory.post_generation
    def password(obj, create, extracted, **kwargs):
        obj.set_password(extracted or "pw")
        if create:
            obj.save(update_fields=["password"])


class IntegrationFactory(DjangoModelFactory):
    class Meta:
        model = m.Integration

    name = factory.Sequence(lambda n: f"Integration {n}")
    description = "Orders from the storefront into the ERP"
    environment = m.Environment.PRODUCTION


class GrantFactory(DjangoModelFactory):
    class Meta:
        model = m.IntegrationAccess

    integration = factory.SubFactory(IntegrationFactory)
    user = factory.SubFactory(UserFactory)
    level = m.AccessLevel.MANAGE


class ConnectionFactory(DjangoModelFactory):
    class Meta:
        model = m.Connection

    integration = factory.SubFactory(IntegrationFactory)
    name = factory.Sequence(lambda n: f"Connection {n}")
    kind = m.ConnectionKind.HTTP
    config = factory.LazyFunction(lambda: {"base_url": "https://api.example.com", "timeout": 30})
    credentials = factory.LazyFunction(lambda: {"api_key": "s3cr3t-key"})


class FlowFactory(DjangoModelFactory):
    class Meta:
        model = m.Flow

    integration = factory.SubFactory(IntegrationFactory)
    name = factory.Sequence(lambda n: f"Flow {n}")
    description = "Sync records"
    enabled = True
    schedule = "*/15 * * * *"


class StepFactory(DjangoModelFactory):
    class Meta:
        model = m.FlowStep

    flow = factory.SubFactory(FlowFactory)
    integration = factory.SelfAttribute("flow.integration")
    name = factory.Sequence(lambda n: f"Step {n}")
    position = factory.Sequence(lambda n: n + 1)
    kind = m.StepKind.EXPORT
    connection = None
    config = factory.LazyFunction(
        lambda: {"mappings": [{"source": "id", "target": "external_id", "lookup_cache": None}]}
    )


class ScriptFactory(DjangoModelFactory):
    class Meta:
        model = m.Script

    integration = factory.SubFactory(IntegrationFactory)
    name = factory.Sequence(lambda n: f"Script {n}")
    function = "preSavePage"
    code = "function preSavePage(options) {\n  return { data: options.data };\n}\n"


class LookupCacheFactory(DjangoModelFactory):
    class Meta:
        model = m.LookupCache

    integration = factory.SubFactory(IntegrationFactory)
    name = factory.Sequence(lambda n: f"Cache {n}")
    key_path = "sku"
    settings = factory.LazyFunction(lambda: {"ttl_days": 30})


class CacheEntryFactory(DjangoModelFactory):
    class Meta:
        model = m.LookupCacheEntry

    cache = factory.SubFactory(LookupCacheFactory)
    key = factory.Sequence(lambda n: f"SKU-{n:05d}")
    value = factory.LazyFunction(lambda: {"erp_item": "ITEM-1"})
    size = 40
