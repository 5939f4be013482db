"""What a user typed comes back byte for byte (issue #10, section 2).

Code, descriptions, documentation, mapping and key paths and strings inside config JSON
keep leading and trailing whitespace, tabs, CRLF, emoji and combining characters through
an API PATCH, a save in the UI, a clone, a pull and merge, and a package export and import.
Only names are tidied, and only when they change.

A browser cannot tell CRLF from LF in a text area (the HTML parser shows both as LF and
the submission sends CRLF for every newline), so the UI keeps what it cannot see: text
saved untouched stays byte-identical, and edited text keeps the stored text's line endings.
"""

from __future__ import annotations

import orjson
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from integrations.models import (
    AccessLevel,
    Connection,
    Flow,
    FlowStep,
    Integration,
    IntegrationAccess,
    LookupCache,
    Script,
)
from revisions.document import canonical_bytes, document_of
from tests.api.conftest import token_client
from tests.integrations.rendered_form import submission_of

pytestmark = pytest.mark.django_db

# Leading/trailing spaces and tabs, CRLF and LF, an emoji, a ZWJ sequence, a combining accent.
TEXT = "\t  function f(o) {\r\n    return o; // 🚀 👩‍👩‍👧 cafe\u0301\n\t}\t \r\n\n  \t"
OTHER = "  \tsecond version 🧪 n\u0303\r\n\r\n  "
# Paths live in one-line inputs: no newlines, everything else kept.
PATH = " \torder.line\u0301 🚀 \t"


@pytest.fixture
def send(django_capture_on_commit_callbacks):
    """An API call that commits as on a server (on-commit tasks run, Celery is eager)."""

    def call(api, method, path, body=None):
        with django_capture_on_commit_callbacks(execute=True):
            return getattr(api, method)(f"/api/v1{path}", body, format="json")

    return call


@pytest.fixture
def api(developer):
    return token_client(developer)


def _created(response) -> dict:
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.fixture
def origin(send, api) -> Integration:
    """A sandbox integration whose every free text is TEXT (or PATH), all written by the API."""
    pk = _created(
        send(
            api,
            "post",
            "/integrations",
            {"name": "Origin", "description": TEXT, "documentation": TEXT},
        )
    )["id"]
    connection = _created(
        send(
            api,
            "post",
            f"/integrations/{pk}/connections",
            {"name": "ERP", "kind": "http", "config": {"base_url": "https://x", "note": TEXT}},
        )
    )
    cache = _created(
        send(
            api,
            "post",
            f"/integrations/{pk}/lookup-caches",
            {"name": "SKU map", "key_path": PATH, "settings": {"note": TEXT}},
        )
    )
    script = _created(
        send(
            api,
            "post",
            f"/integrations/{pk}/scripts",
            {"name": "Tax", "function": "preMap", "code": TEXT},
        )
    )
    flow = _created(
        send(
            api,
            "post",
            f"/integrations/{pk}/flows",
            {"name": "Orders", "description": TEXT, "schedule": "*/15 * * * *"},
        )
    )
    _created(
        send(
            api,
            "post",
            f"/flows/{flow['id']}/steps",
            {
                "name": "Map",
                "kind": "transform",
                "position": 1,
                "connection": connection["id"],
                "config": {
                    "note": TEXT,
                    "hooks": {"preMap": script["lineage_id"]},
                    "mappings": [
                        {"source": PATH, "target": PATH, "lookup_cache": cache["lineage_id"]},
                        {"source": "id", "target": " external id "},
                    ],
                },
            },
        )
    )
    return Integration.objects.get(pk=pk)


def _texts(integration: Integration) -> dict:
    """Every free text of the integration, read from the database."""
    step = FlowStep.objects.get(integration=integration)
    script = Script.objects.get(integration=integration, name__in=["Tax", "Renamed in the UI"])
    return {
        "description": integration.description,
        "documentation": integration.documentation,
        "connection config": Connection.objects.get(integration=integration).config["note"],
        "key_path": LookupCache.objects.get(integration=integration).key_path,
        "cache settings": LookupCache.objects.get(integration=integration).settings["note"],
        "code": script.code,
        "flow description": Flow.objects.get(integration=integration).description,
        "step config": step.config["note"],
        "mapping source": step.config["mappings"][0]["source"],
        "mapping target": step.config["mappings"][0]["target"],
        "second mapping": step.config["mappings"][1],
    }


EXPECTED = {
    "description": TEXT,
    "documentation": TEXT,
    "connection config": TEXT,
    "key_path": PATH,
    "cache settings": TEXT,
    "code": TEXT,
    "flow description": TEXT,
    "step config": TEXT,
    "mapping source": PATH,
    "mapping target": PATH,
    "second mapping": {"source": "id", "target": " external id "},
}


def _resources(integration: Integration) -> bytes:
    doc = document_of(integration)
    return canonical_bytes({"integration": doc["integration"], "resources": doc["resources"]})


def test_the_api_stores_and_returns_text_as_sent(origin, api):
    assert _texts(origin) == EXPECTED
    script = Script.objects.get(integration=origin)
    assert api.get(f"/api/v1/scripts/{script.pk}").json()["code"] == TEXT
    body = api.get(f"/api/v1/integrations/{origin.pk}").json()
    assert (body["description"], body["documentation"]) == (TEXT, TEXT)
    assert api.get(f"/api/v1/integrations/{origin.pk}/document").json() == document_of(origin)


def test_an_api_patch_keeps_text_as_sent_and_tidies_only_a_new_name(origin, send, api):
    script = Script.objects.get(integration=origin)
    response = send(api, "patch", f"/scripts/{script.pk}", {"code": OTHER, "name": "  Tax 2 \t"})
    assert response.status_code == 200, response.json()
    assert response.json()["code"] == OTHER and response.json()["name"] == "Tax 2"
    flow = Flow.objects.get(integration=origin)
    send(api, "patch", f"/flows/{flow.pk}", {"description": OTHER})
    send(api, "patch", f"/integrations/{origin.pk}", {"documentation": OTHER})
    origin.refresh_from_db()
    script.refresh_from_db()
    flow.refresh_from_db()
    assert (script.code, flow.description, origin.documentation) == (OTHER, OTHER, OTHER)


def test_a_whitespace_only_name_is_still_refused_by_the_api(origin, send, api):
    script = Script.objects.get(integration=origin)
    version = Integration.objects.get(pk=origin.pk).version
    response = send(api, "patch", f"/scripts/{script.pk}", {"name": " \t ", "code": OTHER})
    assert response.status_code == 400 and "name" in response.json()["errors"]
    script.refresh_from_db()
    assert (script.name, script.code) == ("Tax", TEXT)
    assert Integration.objects.get(pk=origin.pk).version == version


def _editor_pages(integration: Integration) -> list[tuple[str, str]]:
    """(page, action) of every editor of the integration."""
    pk = integration.pk
    step = FlowStep.objects.get(integration=integration)
    settings = reverse("integrations:settings", args=[pk])
    pages = [(settings, settings)]
    for kind, model in (
        ("connections", Connection),
        ("caches", LookupCache),
        ("scripts", Script),
        ("flows", Flow),
    ):
        obj = model.objects.get(integration=integration)
        pages.append((reverse("integrations:resource_edit", args=[pk, kind, obj.pk]), ""))
    pages.append((reverse("integrations:step_edit", args=[pk, step.flow_id, step.pk]), ""))
    return pages


def test_renaming_in_every_ui_editor_keeps_every_text_byte_for_byte(origin, developer):
    client = Client()
    client.force_login(developer)
    for page, action in _editor_pages(origin):
        data = submission_of(client.get(page).content.decode(), action)
        data["name"] = ["Renamed in the UI"]
        response = client.post(action or page, data)
        assert response.status_code == 302, (page, response.content.decode()[:3000])
        assert _texts(origin) == EXPECTED, page
    origin.refresh_from_db()
    assert origin.name == "Renamed in the UI"
    assert Script.objects.get(integration=origin).name == "Renamed in the UI"


def test_text_typed_in_the_ui_is_stored_as_typed(origin, developer):
    """The browser shows text with LF and sends CRLF: what was typed is what is stored."""
    client = Client()
    client.force_login(developer)
    typed = "\n\t  return o;  // 🚀 e\u0301 \t\n\n  "
    page = reverse("integrations:resource_new", args=[origin.pk, "scripts"])
    data = submission_of(client.get(page).content.decode())
    data.update(name=["Typed"], function=["preMap"])
    data["code"] = [typed.replace("\n", "\r\n")]  # as the browser encodes the text area
    assert client.post(page, data).status_code == 302
    assert Script.objects.get(integration=origin, name="Typed").code == typed

    step = FlowStep.objects.get(integration=origin)
    page = reverse("integrations:step_edit", args=[origin.pk, step.flow_id, step.pk])
    data = submission_of(client.get(page).content.decode())
    data["mappings-1-target"] = ["\t new target 🚀 "]
    assert client.post(page, data).status_code == 302
    step.refresh_from_db()
    # The edited row keeps its own shape (no lookup_cache key it never had).
    assert step.config["mappings"][1] == {"source": "id", "target": "\t new target 🚀 "}
    assert step.config["mappings"][0] == {
        "source": PATH,
        "target": PATH,
        "lookup_cache": str(LookupCache.objects.get(integration=origin).lineage_id),
    }


def test_editing_crlf_text_in_the_ui_keeps_crlf(origin, send, api, developer):
    crlf = "line one\r\n  line two\r\n"
    flow = Flow.objects.get(integration=origin)
    send(api, "patch", f"/flows/{flow.pk}", {"description": crlf})
    client = Client()
    client.force_login(developer)
    page = reverse("integrations:resource_edit", args=[origin.pk, "flows", flow.pk])
    data = submission_of(client.get(page).content.decode())
    assert data["description"] == [crlf]
    data["description"] = ["line one\r\n  line two, edited\r\n"]
    assert client.post(page, data).status_code == 302
    flow.refresh_from_db()
    assert flow.description == "line one\r\n  line two, edited\r\n"


def test_a_clone_holds_the_text_byte_for_byte(origin, send, api):
    response = send(api, "post", f"/integrations/{origin.pk}/clone", {"name": "Copy"})
    clone = Integration.objects.get(pk=_created(response)["id"])
    assert _texts(clone) == EXPECTED
    assert _resources(clone) == _resources(origin)


def test_a_pull_and_merge_bring_the_text_byte_for_byte(origin, send, api):
    response = send(api, "post", f"/integrations/{origin.pk}/clone", {"name": "Sandbox"})
    sandbox = Integration.objects.get(pk=_created(response)["id"])
    script = Script.objects.get(integration=sandbox)
    flow = Flow.objects.get(integration=sandbox)
    step = FlowStep.objects.get(integration=sandbox)
    config = {**step.config, "note": OTHER}
    config["mappings"] = [{**config["mappings"][0], "target": "\t" + PATH}, config["mappings"][1]]
    for path, body in (
        (f"/scripts/{script.pk}", {"code": OTHER}),
        (f"/flows/{flow.pk}", {"description": OTHER}),
        (f"/steps/{step.pk}", {"config": config}),
        (f"/integrations/{sandbox.pk}", {"documentation": OTHER}),
    ):
        assert send(api, "patch", path, body).status_code == 200
    pull = send(
        api,
        "post",
        f"/integrations/{origin.pk}/revisions",
        {"type": "pull", "source_integration": sandbox.pk},
    ).json()
    assert api.get(f"/api/v1/revisions/{pull['id']}").json()["status"] == "ready"
    assert send(api, "post", f"/revisions/{pull['id']}/merge").status_code == 202
    assert api.get(f"/api/v1/revisions/{pull['id']}").json()["status"] == "completed"
    texts = _texts(origin)
    assert (texts["code"], texts["flow description"], texts["step config"]) == (OTHER,) * 3
    assert texts["mapping target"] == "\t" + PATH
    origin.refresh_from_db()
    assert origin.documentation == OTHER
    sandbox.refresh_from_db()
    assert _resources(origin) == _resources(sandbox)


def test_a_package_export_and_import_hold_the_text_byte_for_byte(origin, send, api, developer):
    client = Client()
    client.force_login(developer)
    exported = client.get(reverse("packages:export", args=[origin.pk]))
    assert exported.status_code == 200
    content = b"".join(exported)
    # Imported in the UI (the file as downloaded) and by the API (the package as JSON).
    upload = SimpleUploadedFile("origin.ilm.json", content, content_type="application/json")
    response = client.post(
        reverse("packages:import"),
        {"file": upload, "mode": "new", "name": "From file", "environment": "sandbox"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    by_api = send(
        api, "post", "/integrations/import", {"package": orjson.loads(content), "name": "By API"}
    )
    for name in ("From file", "By API"):
        imported = Integration.objects.get(name=name)
        assert _texts(imported) == EXPECTED, name
        assert _resources(imported) == _resources(origin), name
    assert by_api.status_code == 201


def test_blank_text_where_text_is_needed_is_refused_in_the_ui_and_changes_nothing(
    origin, developer
):
    client = Client()
    client.force_login(developer)
    before = (_resources(origin), Integration.objects.get(pk=origin.pk).version)
    step = FlowStep.objects.get(integration=origin)
    page = reverse("integrations:step_edit", args=[origin.pk, step.flow_id, step.pk])
    data = submission_of(client.get(page).content.decode())
    data["mappings-0-source"] = [" \t "]
    response = client.post(page, data)
    assert response.status_code == 400
    assert "Mapping 1 needs a non-empty &#x27;source&#x27;" in response.content.decode()
    cache = LookupCache.objects.get(integration=origin)
    page = reverse("integrations:resource_edit", args=[origin.pk, "caches", cache.pk])
    data = submission_of(client.get(page).content.decode())
    data["key_path"] = ["  "]
    response = client.post(page, data)
    assert response.status_code == 400 and "A key path is required." in response.content.decode()
    assert (_resources(origin), Integration.objects.get(pk=origin.pk).version) == before


def test_a_monitor_may_not_save_an_editor_even_unchanged(origin, monitor):
    IntegrationAccess.objects.create(integration=origin, user=monitor, level=AccessLevel.MONITOR)
    client = Client()
    client.force_login(monitor)
    script = Script.objects.get(integration=origin)
    page = reverse("integrations:resource_edit", args=[origin.pk, "scripts", script.pk])
    response = client.post(page, {"name": "Tax", "function": "preMap", "code": "x"})
    assert response.status_code == 403
    assert Script.objects.get(pk=script.pk).code == TEXT


def test_saving_a_step_whose_cache_was_deleted_names_the_missing_cache_and_keeps_it(
    origin, developer
):
    client = Client()
    client.force_login(developer)
    cache = LookupCache.objects.get(integration=origin)
    response = client.post(
        reverse("integrations:resource_delete", args=[origin.pk, "caches", cache.pk])
    )
    assert response.status_code == 302
    before = (_resources(origin), Integration.objects.get(pk=origin.pk).version)
    step = FlowStep.objects.get(integration=origin)
    page = reverse("integrations:step_edit", args=[origin.pk, step.flow_id, step.pk])
    html = client.get(page).content.decode()
    assert f"missing cache: deleted lookup cache «{cache.name}»" in html
    # Submitted unchanged: nothing to write, so nothing is written (the reference stays).
    response = client.post(page, submission_of(html))
    assert response.status_code == 302
    assert (_resources(origin), Integration.objects.get(pk=origin.pk).version) == before
    # Changed while the mapping still points at the deleted cache: refused with the reason,
    # rather than saved with the reference quietly dropped.
    data = submission_of(html)
    data["name"] = f"{data['name']} (renamed)"
    response = client.post(page, data)
    assert response.status_code == 400
    assert "refers to a lookup cache that is not in this integration" in response.content.decode()
    assert (_resources(origin), Integration.objects.get(pk=origin.pk).version) == before
