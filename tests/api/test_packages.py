"""Packages: export an integration's document as JSON, import it as a new integration or a pull.

Invalid packages name their first problem and create nothing.
"""

from __future__ import annotations

import copy
import uuid

import orjson
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from integrations.models import Flow, Integration, IntegrationAccess, Role
from revisions import packages
from revisions.document import document_of
from tests.factories import (
    ConnectionFactory,
    FlowFactory,
    LookupCacheFactory,
    ScriptFactory,
    StepFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def stocked(integration):
    conn = ConnectionFactory(integration=integration, name="ERP API")
    cache = LookupCacheFactory(integration=integration, name="SKU map")
    flow = FlowFactory(integration=integration, name="Orders")
    StepFactory(
        flow=flow,
        name="Map",
        connection=conn,
        config={
            "mappings": [{"source": "sku", "target": "item", "lookup_cache": str(cache.lineage_id)}]
        },
    )
    ScriptFactory(integration=integration, name="Tax")
    return integration


@pytest.fixture
def package(stocked, developer):
    return packages.package_of(stocked, user=developer)


def _upload(client, package, **fields):
    content = package if isinstance(package, bytes) else orjson.dumps(package)
    data = {"mode": "new", "environment": "sandbox", "name": "", **fields}
    data["file"] = SimpleUploadedFile("p.ilm.json", content, content_type="application/json")
    return client.post("/integrations/import/", data)


# Export -----------------------------------------------------------------------------


def test_export_downloads_the_document_with_metadata_and_no_secrets(dev_client, stocked):
    response = dev_client.get(f"/integrations/{stocked.pk}/package/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith(
        'attachment; filename="storefront-orders-erp-v'
    )
    body = response.content.decode()
    assert "s3cr3t-key" not in body  # connection credentials never travel
    package = orjson.loads(body)
    assert package["format"] == "ilm-package" and package["format_version"] == 1
    assert package["integration"]["lineage_id"] == str(stocked.lineage_id)
    assert package["exported_by"] == "dev"
    assert package["document"] == document_of(stocked)
    # The API serves the same document.
    assert (
        dev_client.get(f"/api/v1/integrations/{stocked.pk}/document").json() == package["document"]
    )


def test_export_is_read_access_and_unseen_is_404(monitor_client, client, stocked):
    assert monitor_client.get(f"/integrations/{stocked.pk}/package/").status_code == 200
    client.force_login(UserFactory(username="stranger", role=Role.DEVELOPER))
    assert client.get(f"/integrations/{stocked.pk}/package/").status_code == 404


# Invalid packages -------------------------------------------------------------------


def _first(kind):
    def pick(p):
        return next(b for b in p["document"]["resources"].values() if b["type"] == kind)

    return pick


def _set(kind, field, value):
    def mutate(p):
        _first(kind)(p)[field] = value

    return mutate


def _drop(kind, field):
    def mutate(p):
        del _first(kind)(p)[field]

    return mutate


def _replace(key, value):
    def mutate(p):
        p[key] = value

    return mutate


def _add_resource(body):
    def mutate(p):
        p["document"]["resources"][str(uuid.uuid4())] = body

    return mutate


INVALID = {
    "not_json": (b"{not json", "not valid JSON"),
    "a_list": (b"[1, 2]", "must be a JSON object"),
    "wrong_format": (_replace("format", "zip"), "not an ILM package"),
    "future_version": (_replace("format_version", 2), "version 2 is not supported"),
    "no_document": (_replace("document", None), "'document' must be an object"),
    "bad_lineage_key": (
        lambda p: p["document"]["resources"].update({"nope": {"type": "flow"}}),
        "'nope' is not a lineage id",
    ),
    "unknown_type": (_add_resource({"type": "robot", "name": "R2"}), "type 'robot'"),
    "secret_field": (_set("connection", "credentials", {"k": "v"}), "'credentials'"),
    "missing_field": (_drop("flow", "schedule"), "lacks the field 'schedule'"),
    "empty_name": (_set("script", "name", "  "), "needs a non-empty name"),
    "unknown_kind": (_set("connection", "kind", "telex"), "kind"),
    "enabled_not_bool": (_set("flow", "enabled", "yes"), "'enabled' must be true or false"),
    "config_not_object": (_set("connection", "config", [1]), "'config' must be a JSON object"),
    "step_without_flow": (_set("step", "flow", None), "'flow' must be the lineage id of a flow"),
    "step_unknown_connection": (
        _set("step", "connection", str(uuid.uuid4())),
        "'connection' must be the lineage id of a connection",
    ),
    "mapping_unknown_cache": (
        _set(
            "step",
            "config",
            {"mappings": [{"source": "a", "target": "b", "lookup_cache": str(uuid.uuid4())}]},
        ),
        "mapping 1 refers to a lookup cache that is not in this package",
    ),
    "huge_number": (_set("connection", "config", {"timeout": 1e30}), "Numbers must lie"),
    "nul_in_text": (_set("script", "code", "a\x00b"), "NUL"),
    "mapping_without_target": (
        _set("step", "config", {"mappings": [{"source": "a"}]}),
        "needs a non-empty 'target'",
    ),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_package_names_the_problem_and_creates_nothing(dev_client, package, case):
    change, message = INVALID[case]
    if isinstance(change, bytes):
        content = change
    else:
        broken = copy.deepcopy(package)
        change(broken)
        content = orjson.dumps(broken)
    before = (Integration.objects.count(), Flow.objects.count(), IntegrationAccess.objects.count())
    response = _upload(dev_client, content)
    assert response.status_code == 400
    html = response.content.decode()
    assert "Nothing was imported." in html
    assert message.replace("'", "&#x27;") in html, html[:3000]
    assert (
        Integration.objects.count(),
        Flow.objects.count(),
        IntegrationAccess.objects.count(),
    ) == before


def test_the_first_problem_is_the_one_named(package):
    broken = copy.deepcopy(package)
    broken["format_version"] = 9
    broken["document"] = None
    with pytest.raises(Exception, match="version 9"):
        packages.package_validate(broken)


def test_the_exported_package_is_valid(package):
    assert packages.package_validate(package) is package


def test_monitors_may_not_import(monitor_client, package):
    assert monitor_client.get("/integrations/import/").status_code == 403
    assert _upload(monitor_client, package).status_code == 403


def test_developers_import_into_sandbox_only(dev_client, package):
    response = _upload(dev_client, package, environment="production")
    assert response.status_code == 400
    assert "production is not one of the available choices" in response.content.decode()


def test_pull_mode_needs_a_target(dev_client, package):
    response = _upload(dev_client, package, mode="pull")
    assert response.status_code == 400
    assert "Choose the integration to pull the package into." in response.content.decode()


def test_import_page_renders_for_developers(dev_client, integration):
    response = dev_client.get(f"/integrations/import/?into={integration.pk}")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Import a package" in html and 'value="pull" ' in html


# Importing --------------------------------------------------------------------------


def test_import_as_new_keeps_lineage_and_can_pull_from_the_original(
    dev_client, package, stocked, developer, django_capture_on_commit_callbacks
):
    from revisions.selectors import family_of
    from revisions.services import pull_create

    with django_capture_on_commit_callbacks(execute=True):
        response = _upload(dev_client, package, name="Imported orders")
    assert response.status_code == 302
    imported = Integration.objects.get(name="Imported orders")
    assert response["Location"] == imported.get_absolute_url()
    assert imported.environment == "sandbox"
    assert imported.version == 2  # created, then filled in one change
    assert imported.lineage_id == stocked.lineage_id
    assert imported.grants.get().user == developer
    assert document_of(imported) == document_of(stocked)
    assert imported.revisions.get().type == "snapshot"
    assert stocked in family_of(imported, developer)

    # The original changes; a pull into the import shows exactly that change.
    flow = Flow.objects.get(integration=stocked)
    flow.description = "Paid orders only"
    flow.save()
    with django_capture_on_commit_callbacks(execute=True):
        pull = pull_create(target=imported, source=stocked, user=developer)
    pull.refresh_from_db()
    assert pull.status == "ready", pull.error
    changes = pull.changeset.data["resources"]
    assert [(c["lineage_id"], c["action"]) for c in changes] == [(str(flow.lineage_id), "modified")]
    assert pull.summary["conflicts"] == 0


def test_import_as_pull_shows_what_the_package_changes(
    dev_client, package, stocked, django_capture_on_commit_callbacks
):
    changed = copy.deepcopy(package)
    flow_id, flow = next(
        (k, v) for k, v in changed["document"]["resources"].items() if v["type"] == "flow"
    )
    flow["description"] = "From the package"
    with django_capture_on_commit_callbacks(execute=True):
        response = _upload(dev_client, changed, mode="pull", target=stocked.pk)
    assert response.status_code == 302, response.content.decode()[:2000]
    pull = stocked.revisions.get(type="pull")
    assert response["Location"] == pull.get_absolute_url()
    pull.refresh_from_db()
    assert pull.status == "ready", pull.error
    fields = {
        f["path"]: f
        for c in pull.changeset.data["resources"]
        if c["lineage_id"] == flow_id
        for f in c["fields"]
    }
    assert fields["description"]["theirs"] == "From the package"
    assert len(pull.changeset.data["resources"]) == 1
    assert Flow.objects.get(integration=stocked).description != "From the package"


def test_import_as_pull_into_another_family_is_refused_and_creates_nothing(
    dev_client, package, developer
):
    from tests.factories import GrantFactory, IntegrationFactory

    other = IntegrationFactory(name="Unrelated")
    GrantFactory(integration=other, user=developer)
    before = Integration.objects.count()
    response = _upload(dev_client, package, mode="pull", target=other.pk)
    assert response.status_code == 400
    assert "not of the family of" in response.content.decode()
    assert Integration.objects.count() == before
    assert not other.revisions.exists()


# Through the API ----------------------------------------------------------------------


def test_api_imports_a_package_as_new_and_as_pull(
    dev_api, package, stocked, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = dev_api.post(
            "/api/v1/integrations/import", {"package": package, "name": "Copy"}, format="json"
        )
    assert response.status_code == 201, response.json()
    created = response.json()
    assert (created["name"], created["environment"]) == ("Copy", "sandbox")
    assert created["lineage_id"] == str(stocked.lineage_id)
    assert created["cloned_from"] == stocked.pk
    document = dev_api.get(f"/api/v1/integrations/{created['id']}/document").json()
    assert document == package["document"]

    changed = copy.deepcopy(package)
    _first("script")(changed)["code"] = "// from the package"
    with django_capture_on_commit_callbacks(execute=True):
        response = dev_api.post(
            f"/api/v1/integrations/{stocked.pk}/import",
            {"package": changed, "description": "Script from CI"},
            format="json",
        )
    assert response.status_code == 202, response.json()
    pull = response.json()
    assert (pull["type"], pull["description"]) == ("pull", "Script from CI")
    polled = dev_api.get(f"/api/v1/revisions/{pull['id']}").json()
    assert polled["status"] == "ready" and polled["summary"]["modified"] == 1


def test_api_invalid_package_is_400_naming_the_problem(dev_api, package):
    broken = copy.deepcopy(package)
    _first("flow")(broken)["enabled"] = "yes"
    before = Integration.objects.count()
    response = dev_api.post("/api/v1/integrations/import", {"package": broken}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert "'enabled' must be true or false" in body["detail"]
    assert list(body["errors"]) == ["package"]
    assert Integration.objects.count() == before


def test_api_import_rights(dev_api, monitor_api, outsider_api, package, stocked):
    assert (
        monitor_api.post("/api/v1/integrations/import", {"package": package}, format="json")
    ).status_code == 403
    response = dev_api.post(
        "/api/v1/integrations/import",
        {"package": package, "environment": "production"},
        format="json",
    )
    assert response.status_code == 403
    assert (
        monitor_api.post(
            f"/api/v1/integrations/{stocked.pk}/import", {"package": package}, format="json"
        )
    ).status_code == 403
    assert (
        outsider_api.post(
            f"/api/v1/integrations/{stocked.pk}/import", {"package": package}, format="json"
        )
    ).status_code == 404
