"""GET a resource, send it back unchanged: nothing changes (issue #10, section 1).

For every API route that changes configuration (PATCH or PUT), on every instance of it in
the demo data: what GET returned, sent back as it is, leaves the integration's canonical
document byte-identical, its fields as they were and `version` where it was. The routes
come from the URL conf, so a new writable route fails `test_every_writable_route_is_covered`
until it is listed here.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import URLPattern, get_resolver, reverse
from django.utils import timezone
from rest_framework.views import APIView

from integrations import services
from integrations.models import (
    Connection,
    Flow,
    FlowStep,
    Integration,
    LookupCache,
    Script,
    User,
)
from revisions.document import canonical_bytes, document_of
from runs.models import FlowError

pytestmark = pytest.mark.django_db

# url name → (method, the objects it is served for)
WRITABLE_ROUTES: dict[str, tuple[str, type]] = {
    "api-integration": ("patch", Integration),
    "api-integration-access": ("put", Integration),
    "api-integration-ignore-fields": ("put", Integration),
    "api-connection": ("patch", Connection),
    "api-flow": ("patch", Flow),
    "api-step": ("patch", FlowStep),
    "api-script": ("patch", Script),
    "api-lookup-cache": ("patch", LookupCache),
    "api-error": ("patch", FlowError),
}


def _writable_route_names() -> set[str]:
    names = set()

    def walk(patterns):
        for p in patterns:
            if isinstance(p, URLPattern):
                view = getattr(p.callback, "view_class", None)
                if not (isinstance(view, type) and issubclass(view, APIView)):
                    continue
                if hasattr(view, "patch") or hasattr(view, "put"):
                    names.add(p.name)
            else:
                walk(p.url_patterns)

    walk(get_resolver().url_patterns)
    return names


def test_every_writable_route_is_covered():
    missing = _writable_route_names() - set(WRITABLE_ROUTES)
    assert not missing, f"PATCH/PUT route(s) {sorted(missing)} are not in WRITABLE_ROUTES"


@pytest.fixture
def demo(django_capture_on_commit_callbacks) -> User:
    with django_capture_on_commit_callbacks(execute=True):
        call_command("load_demo", stdout=StringIO())
    # Protected production has no editors (change control refuses direct writes): the
    # demo's production integrations are unprotected so that every editor is walked.
    Integration.objects.update(protected=False)
    for integration in Integration.objects.all():
        services.integration_update(
            integration=integration,
            data={"ignore_fields": {"connection": ["config.base_url"], "flow": ["enabled"]}},
        )
    # An error assigned to someone, so `PATCH /errors/{id}` has something to send back
    # (the demo's runs make errors only with the demo systems on).
    flow = Flow.objects.order_by("pk").first()
    step = flow.steps.order_by("position").first()
    now = timezone.now()
    FlowError.objects.create(
        integration=flow.integration,
        flow_lineage_id=flow.lineage_id,
        flow_name=flow.name,
        step_lineage_id=step.lineage_id,
        step_name=step.name,
        fingerprint="demo",
        kind="http",
        message="HTTP 422",
        record={"id": 1},
        assignee=User.objects.get(username="developer"),
        first_seen=now,
        last_seen=now,
    )
    return User.objects.get(username="admin")


def _state(integration_id: int) -> tuple:
    integration = Integration.objects.get(pk=integration_id)
    fields = {
        f.attname: getattr(integration, f.attname)
        for f in Integration._meta.concrete_fields
        if f.attname != "updated_at"
    }
    grants = sorted(integration.grants.values_list("user__username", "level"))
    return canonical_bytes(document_of(integration)), fields, grants


@pytest.mark.parametrize("route", sorted(WRITABLE_ROUTES))
def test_sending_back_what_get_returned_changes_nothing(route, demo, api_for):
    api = api_for(demo)
    method, model = WRITABLE_ROUTES[route]
    checked = 0
    for obj in model.objects.order_by("pk"):
        integration_id = obj.pk if model is Integration else obj.integration_id
        url = reverse(route, args=[obj.pk])
        got = api.get(url)
        assert got.status_code == 200, url
        before = _state(integration_id)
        response = getattr(api, method)(url, got.json(), format="json")
        assert response.status_code == 200, (url, response.json())
        assert response.json() == got.json(), url
        after = _state(integration_id)
        assert after[0] == before[0], f"{url}: the document changed"
        assert after[1] == before[1], f"{url}: the integration's fields changed"
        assert after[2] == before[2], f"{url}: the grants changed"
        checked += 1
    assert checked, f"the demo data has nothing served by {route}"
