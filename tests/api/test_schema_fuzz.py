"""schemathesis against the served OpenAPI schema: no 5xx, responses match the schema.

A bounded number of generated requests per operation (`EXAMPLES`), as an administrator
with a token, against a small world of real objects so path ids often hit something.
Operations backed by the revision engine are left out only while the engine is absent.
"""

import importlib.util
import itertools
import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from integrations.models import Role
from tests.api.conftest import token_client
from tests.factories import (
    CacheEntryFactory,
    ConnectionFactory,
    FlowFactory,
    IntegrationFactory,
    LookupCacheFactory,
    ScriptFactory,
    StepFactory,
    UserFactory,
)

EXAMPLES = 5
ENGINE = importlib.util.find_spec("revisions.services") is not None

# The served schema needs a signed-in user; the schema it serves is this one.
schema = schemathesis.from_dict(
    json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(public=True))),
    app=get_wsgi_application(),
)
if not ENGINE:
    schema = schema.exclude(path_regex=r"/revisions|/document$|/clone$|/family$|/audit")


@pytest.fixture
def world(db, settings):
    settings.DEBUG_PROPAGATE_EXCEPTIONS = True
    admin = UserFactory(username="fuzz-admin", role=Role.ADMINISTRATOR)
    integration = IntegrationFactory(name="Fuzzed")
    flow = FlowFactory(integration=integration)
    cache = LookupCacheFactory(integration=integration)
    CacheEntryFactory(cache=cache)
    ids = {
        "integrations": integration.pk,
        "flows": flow.pk,
        "connections": ConnectionFactory(integration=integration).pk,
        "steps": StepFactory(flow=flow).pk,
        "scripts": ScriptFactory(integration=integration).pk,
        "lookup-caches": cache.pk,
    }
    if ENGINE:
        from revisions.services import snapshot_create

        ids["revisions"] = snapshot_create(integration=integration, user=admin).pk
    # The WSGI app would close the test's connection at each request's end (Django's own
    # test client disconnects these receivers too).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield {"token": token_client(admin).raw_token, "ids": ids, "turn": itertools.count()}
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_api_conforms_to_its_schema(case, world):
    # Every other request points at a real object, so more than the 404 path is covered.
    if case.path_parameters and next(world["turn"]) % 2 == 0:
        prefix = case.path.removeprefix("/api/v1/").split("/")[0]
        if prefix in world["ids"]:
            case.path_parameters = {**case.path_parameters, "id": world["ids"][prefix]}
    # The bearer token is what this suite exercises; a generated session cookie would only
    # test Django's session store (a NUL byte in it fails the PostgreSQL lookup).
    case.cookies = {}
    response = case.call_wsgi(headers={"Authorization": f"Bearer {world['token']}"})
    case.validate_response(response, checks=(not_a_server_error, response_schema_conformance))
