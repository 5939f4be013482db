"""The served OpenAPI schema holds every path of docs/api.md; the docs page loads nothing remote."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

pytestmark = pytest.mark.django_db

# docs/api.md, table by table: path → methods.
CONTRACT = {
    "/integrations": {"get", "post"},
    "/integrations/{id}": {"get", "patch", "delete"},
    "/integrations/{id}/document": {"get"},
    "/integrations/{id}/connections": {"get", "post"},
    "/connections/{id}": {"get", "patch", "delete"},
    "/integrations/{id}/flows": {"get", "post"},
    "/flows/{id}": {"get", "patch", "delete"},
    "/flows/{id}/steps": {"get", "post"},
    "/steps/{id}": {"get", "patch", "delete"},
    "/integrations/{id}/scripts": {"get", "post"},
    "/scripts/{id}": {"get", "patch", "delete"},
    "/integrations/{id}/lookup-caches": {"get", "post"},
    "/lookup-caches/{id}": {"get", "patch", "delete"},
    "/lookup-caches/{id}/entries": {"get", "post", "delete"},
    "/integrations/{id}/clone": {"post"},
    "/integrations/{id}/access": {"get", "put"},
    "/integrations/{id}/family": {"get"},
    "/integrations/{id}/ignore-fields": {"get", "put"},
    "/integrations/{id}/revisions": {"get", "post"},
    "/revisions/{id}": {"get"},
    "/revisions/{id}/changes": {"get"},
    "/revisions/{id}/resolutions": {"post"},
    "/revisions/{id}/merge": {"post"},
    "/revisions/{id}/request-approval": {"post"},
    "/revisions/{id}/approve": {"post"},
    "/revisions/{id}/reject": {"post"},
    "/revisions/{id}/cancel": {"post"},
    "/revisions/{id}/revert": {"post"},
    "/revisions/{id}/revert-preview": {"get"},
    "/audit": {"get"},
    "/audit.csv": {"get"},
}


@pytest.fixture
def schema(dev_client):
    response = dev_client.get("/api/v1/schema?format=json")
    assert response.status_code == 200
    return response.json()


def test_schema_is_openapi_3_and_holds_every_contract_path(schema):
    assert schema["openapi"].startswith("3.")
    paths = {
        p.removeprefix("/api/v1"): {m for m in ops if m != "parameters"}
        for p, ops in schema["paths"].items()
    }
    missing = {
        p: sorted(ms - paths.get(p, set()))
        for p, ms in CONTRACT.items()
        if ms - paths.get(p, set())
    }
    assert missing == {}


def test_long_operations_document_202_and_errors_their_shapes(schema):
    paths = schema["paths"]
    for path in ("/api/v1/revisions/{id}/merge", "/api/v1/revisions/{id}/revert"):
        responses = paths[path]["post"]["responses"]
        assert {"202", "400", "403", "404", "409", "429"} <= set(responses), path
    bad = paths["/api/v1/integrations"]["post"]["responses"]["400"]["content"]["application/json"]
    assert bad["schema"]["$ref"].endswith("/BadRequest")


def test_schema_marks_bearer_auth(schema):
    schemes = schema["components"]["securitySchemes"]
    assert any(s.get("scheme") == "bearer" for s in schemes.values())


def test_docs_page_uses_only_assets_served_by_the_app(dev_client):
    response = dev_client.get("/api/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger" in html.lower()
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert urls
    assert not [u for u in urls if u.startswith(("http:", "https:", "//"))]
    static = [u for u in urls if u.startswith("/static/")]
    assert static
    for url in static:
        assert finders.find(url.removeprefix("/static/")), url


def test_schema_and_docs_need_a_signed_in_user_or_a_token(client, dev_api):
    response = Client().get("/api/v1/schema?format=json")
    assert response.status_code == 401
    assert response.json()["detail"]
    docs = Client().get("/api/v1/docs")
    assert docs.status_code == 302 and docs["Location"].startswith("/login/?next=")
    assert dev_api.get("/api/v1/schema?format=json").status_code == 200  # scripts: a token


def test_docs_page_runs_no_inline_script(dev_client):
    html = dev_client.get("/api/v1/docs").content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    policy = dev_client.get("/api/v1/docs")["Content-Security-Policy"]
    assert "script-src 'self' 'nonce-" in policy and "unsafe-inline" not in policy
