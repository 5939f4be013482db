"""Issue #10 in Chromium: Save on an untouched editor changes nothing, typed text is kept.

A real browser shows stored CRLF as LF and sends every newline as CRLF; these journeys
check the server keeps stored text byte for byte anyway, and stores typed text as typed.
"""

import pytest

from integrations.models import AccessLevel, Environment, Integration, Role, Script
from revisions.document import canonical_bytes, document_of
from tests.factories import (
    FlowFactory,
    GrantFactory,
    IntegrationFactory,
    LookupCacheFactory,
    ScriptFactory,
    StepFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)

TEXT = "\t  function f(o) {\r\n    return o; // 🚀 cafe\u0301\n\t}\t \r\n\n  \t"


@pytest.fixture
def world():
    dev = UserFactory(username="dana", role=Role.DEVELOPER)
    integration = IntegrationFactory(
        name="Orders", environment=Environment.SANDBOX, description=TEXT, documentation=TEXT
    )
    GrantFactory(integration=integration, user=dev, level=AccessLevel.MANAGE)
    cache = LookupCacheFactory(integration=integration, key_path=" sku\t")
    script = ScriptFactory(integration=integration, code=TEXT)
    flow = FlowFactory(integration=integration, description=TEXT, schedule="*/15  * * * *")
    step = StepFactory(
        flow=flow,
        config={
            "hooks": {"preMap": str(script.lineage_id)},
            "note": TEXT,
            "mappings": [
                {"source": " a b\t", "target": "x", "lookup_cache": str(cache.lineage_id)},
                {"source": "id", "target": "external_id"},
            ],
        },
    )
    return {"integration": integration, "script": script, "flow": flow, "step": step}


def _state(integration):
    integration = Integration.objects.get(pk=integration.pk)
    return canonical_bytes(document_of(integration)), integration.version


def test_saving_each_editor_untouched_in_chromium_changes_nothing(page, login, world):
    i = world["integration"]
    base = f"/integrations/{i.pk}"
    editors = [
        (f"{base}/settings/", "Save settings"),
        (f"{base}/scripts/{world['script'].pk}/edit/", "Save"),
        (f"{base}/flows/{world['flow'].pk}/edit/", "Save"),
        (f"{base}/flows/{world['flow'].pk}/steps/{world['step'].pk}/edit/", "Save step"),
    ]
    login("dana")
    before = _state(i)
    for url, button in editors:
        page.goto(url)
        with page.expect_navigation():
            page.get_by_role("button", name=button, exact=True).click()
        assert page.url.split("?")[0].rstrip("/") != url.rstrip("/"), f"{url} was refused"
        assert _state(i) == before, f"saving {url} untouched changed the integration"


def test_text_typed_in_chromium_is_stored_as_typed(page, login, world):
    i = world["integration"]
    script = world["script"]
    login("dana")
    page.goto(f"/integrations/{i.pk}/scripts/{script.pk}/edit/")
    typed = "  // typed 🚀 e\u0301\n\treturn o;\t\n\n"
    page.fill("#id_code", typed)
    with page.expect_navigation():
        page.get_by_role("button", name="Save", exact=True).click()
    stored = Script.objects.get(pk=script.pk).code
    # The stored text used CRLF mostly, so the typed text keeps that convention.
    assert stored == typed.replace("\n", "\r\n")
