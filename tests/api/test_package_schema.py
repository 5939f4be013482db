"""Packages are validated against one JSON Schema, the one served as the format's doc.

Each malformed package below gave a 500 (or stored garbage) before; now the first
problem is named and nothing is created.
"""

import copy

import jsonschema
import orjson
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from integrations.models import Flow, Integration
from revisions import packages
from tests.factories import ConnectionFactory, FlowFactory, StepFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def package(integration, developer):
    conn = ConnectionFactory(integration=integration, name="ERP API")
    flow = FlowFactory(integration=integration, name="Orders")
    StepFactory(flow=flow, name="Send", connection=conn)
    return packages.package_of(integration, user=developer)


def _resource(package, kind):
    resources = package["document"]["resources"]
    return next((lid, b) for lid, b in resources.items() if b["type"] == kind)


def _type_as_list(p):
    _resource(p, "step")[1]["type"] = ["step"]


def _type_as_object(p):
    _resource(p, "connection")[1]["type"] = {"k": "connection"}


def _flow_as_list(p):
    _resource(p, "step")[1]["flow"] = [_resource(p, "flow")[0]]


def _flow_as_object(p):
    _resource(p, "step")[1]["flow"] = {"id": _resource(p, "flow")[0]}


def _schedule_as_list(p):
    _resource(p, "flow")[1]["schedule"] = ["*"]


def _same_lineage_in_two_cases(p):
    lineage_id, body = _resource(p, "connection")
    p["document"]["resources"][lineage_id.upper()] = {**body, "name": "Twin"}


MALFORMED = {
    "type_as_list": (_type_as_list, 'has type ["step"]'),
    "type_as_object": (_type_as_object, 'has type {"k":"connection"}'),
    "flow_as_list": (_flow_as_list, "'flow' must be the lineage id of a flow"),
    "flow_as_object": (_flow_as_object, "'flow' must be the lineage id of a flow"),
    "schedule_as_list": (_schedule_as_list, "Flow 'Orders'"),
    "lineage_twice": (_same_lineage_in_two_cases, "appears twice"),
}


def _broken(package, case):
    broken = copy.deepcopy(package)
    MALFORMED[case][0](broken)
    return broken


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_package_through_the_api_is_a_400_naming_the_problem(dev_api, package, case):
    before = (Integration.objects.count(), Flow.objects.count())
    response = dev_api.post(
        "/api/v1/integrations/import", {"package": _broken(package, case)}, format="json"
    )
    assert response.status_code == 400, response.content[:300]
    body = response.json()
    assert list(body["errors"]) == ["package"]
    assert MALFORMED[case][1] in body["detail"]
    assert (Integration.objects.count(), Flow.objects.count()) == before


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_package_upload_names_the_problem(dev_client, package, case):
    before = Integration.objects.count()
    upload = SimpleUploadedFile("p.ilm.json", orjson.dumps(_broken(package, case)))
    response = dev_client.post(
        "/integrations/import/", {"mode": "new", "environment": "sandbox", "file": upload}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "Nothing was imported." in html
    expected = MALFORMED[case][1].replace("'", "&#x27;").replace('"', "&quot;")
    assert expected in html
    assert Integration.objects.count() == before


def test_a_schedule_given_as_a_list_says_it_must_be_text(package):
    with pytest.raises(Exception, match="'schedule' must be text"):
        packages.package_validate(_broken(package, "schedule_as_list"))


def test_the_served_schema_is_the_one_an_exported_package_satisfies(dev_api, package):
    response = dev_api.get("/api/v1/package-schema")
    assert response.status_code == 200
    schema = response.json()
    jsonschema.validate(package, schema)  # what export writes, import reads
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_broken(package, "flow_as_list"), schema)
    assert set(schema["$defs"]) >= {"connection", "flow", "step", "script", "lookup_cache"}


def test_the_schema_needs_a_signed_in_user(client):
    assert client.get("/api/v1/package-schema").status_code == 401
