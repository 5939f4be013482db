"""Every /api/ answer is JSON in the documented error shape, whatever went wrong."""

import pytest
from django.test import override_settings

from integrations import api as integrations_api
from integrations.models import Integration
from revisions import packages
from tests.factories import ScriptFactory

pytestmark = pytest.mark.django_db


def _is_api_error(response, status: int) -> dict:
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    if status == 400:
        assert all(isinstance(v, list) for v in body["errors"].values())
    return body


@override_settings(DEBUG=False)
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/integrations/-1",
        "/api/v1/integrations/abc/document",
        "/api/v1/revisions/-5/changes",
        "/api/v1/no-such-thing",
    ],
)
def test_paths_no_route_matches_are_a_json_404(dev_api, path):
    _is_api_error(dev_api.get(path), 404)


def test_a_method_the_endpoint_lacks_is_a_json_405(dev_api):
    response = dev_api.put("/api/v1/integrations", {}, format="json")
    _is_api_error(response, 405)
    assert "GET" in response["Allow"]


@override_settings(DEBUG=False)
def test_an_unexpected_crash_is_a_json_500(dev_api, monkeypatch):
    def crash(self, request):
        raise RuntimeError("boom")

    monkeypatch.setattr(integrations_api.IntegrationListView, "get", crash)
    dev_api.raise_request_exception = False
    body = _is_api_error(dev_api.get("/api/v1/integrations"), 500)
    assert "boom" not in body["detail"]


def test_pages_outside_the_api_keep_their_html_errors(dev_client):
    response = dev_client.get("/integrations/-1/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_package_over_the_old_2_5_mb_request_limit_imports(dev_api, integration, developer):
    ScriptFactory(integration=integration, name="Big", code="// padding\n" * 300_000)
    package = packages.package_of(integration, user=developer)
    body = packages.package_bytes({"package": package, "name": "Big copy"})
    assert 3 * 2**20 < len(body) < 20 * 2**20
    response = dev_api.generic(
        "POST", "/api/v1/integrations/import", body, content_type="application/json"
    )
    assert response.status_code == 201, response.content[:300]
    assert Integration.objects.filter(name="Big copy").exists()


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=2000, ILM_PACKAGE_MAX_BYTES=1000)
def test_a_body_over_the_request_limit_is_a_json_400_that_says_the_limit(dev_api):
    body = b'{"name": "' + b"x" * 5000 + b'"}'
    response = dev_api.generic(
        "POST", "/api/v1/integrations", body, content_type="application/json"
    )
    payload = _is_api_error(response, 400)
    assert "larger than" in payload["detail"]
    assert not Integration.objects.exists()
