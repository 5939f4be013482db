"""No JSON input gets a 500: deep nesting and lone surrogates are a 400 naming the field.

One declared limit (`ILM_JSON_MAX_DEPTH`, 64) holds for API bodies, UI form fields,
lookup-cache files and packages; the envelope a value travels in may add a few levels.
"""

import json

import pytest
from django.urls import reverse

from integrations.json_input import raw_depth_problem, value_problem
from integrations.models import Connection, LookupCacheEntry
from tests.factories import ConnectionFactory, LookupCacheFactory

pytestmark = pytest.mark.django_db


def nested(depth: int, leaf: str = "1") -> str:
    """Raw JSON text of `depth` nested objects: {"a": {"a": ... leaf ...}}."""
    return '{"a": ' * depth + leaf + "}" * depth


def post_raw(api, url: str, text: str):
    return api.generic("POST", url, text.encode(), content_type="application/json")


@pytest.mark.parametrize("depth", [65, 300, 5000])
def test_a_config_nested_too_deep_is_a_400_naming_the_field(dev_api, integration, depth):
    url = f"/api/v1/integrations/{integration.pk}/connections"
    body = '{"name": "ERP", "kind": "http", "config": ' + nested(depth) + "}"
    response = post_raw(dev_api, url, body)
    assert response.status_code == 400
    payload = response.json()
    assert list(payload["errors"]) == ["config"]
    assert "at most 64 levels" in payload["detail"]
    assert not Connection.objects.filter(integration=integration).exists()


def test_a_config_at_the_limit_is_kept_and_exported(dev_api, integration):
    url = f"/api/v1/integrations/{integration.pk}/connections"
    body = '{"name": "ERP", "kind": "http", "config": ' + nested(63, '{"deep": true}') + "}"
    assert post_raw(dev_api, url, body).status_code == 201, post_raw(dev_api, url, body).json()
    document = dev_api.get(f"/api/v1/integrations/{integration.pk}/document")
    assert document.status_code == 200


def test_a_body_too_deep_for_the_parser_is_a_400_not_a_recursion_error(dev_api):
    response = post_raw(dev_api, "/api/v1/integrations", "[" * 100_000 + "]" * 100_000)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON may nest at most")


def test_a_lone_surrogate_anywhere_in_a_body_is_a_400(dev_api, integration):
    url = f"/api/v1/integrations/{integration.pk}/connections"
    body = '{"name": "ERP", "kind": "http", "config": {"headers": {"X-Key": "\\ud800"}}}'
    response = post_raw(dev_api, url, body)
    assert response.status_code == 400
    payload = response.json()
    assert list(payload["errors"]) == ["config"]
    assert "surrogate" in payload["detail"] and "config.headers.X-Key" in payload["detail"]
    name = post_raw(dev_api, url, '{"name": "E\\udfffRP", "kind": "http"}')
    assert name.status_code == 400 and list(name.json()["errors"]) == ["name"]
    assert not Connection.objects.filter(integration=integration).exists()


def test_a_surrogate_pair_is_a_character_and_is_kept(dev_api, integration):
    url = f"/api/v1/integrations/{integration.pk}/connections"
    response = post_raw(dev_api, url, '{"name": "ERP \\ud83d\\ude00", "kind": "http"}')
    assert response.status_code == 201
    assert response.json()["name"] == "ERP 😀"


def test_cache_entries_too_deep_or_with_surrogates_are_refused(dev_api, integration):
    cache = LookupCacheFactory(integration=integration)
    url = f"/api/v1/lookup-caches/{cache.pk}/entries"
    deep = post_raw(dev_api, url, '{"key": "A", "value": ' + nested(70) + "}")
    assert deep.status_code == 400 and "64 levels" in deep.json()["detail"]
    bad_key = post_raw(dev_api, url, '{"entries": [{"key": "\\ud800", "value": 1}]}')
    assert bad_key.status_code == 400 and "surrogate" in bad_key.json()["detail"]
    assert not LookupCacheEntry.objects.filter(cache=cache).exists()


def test_ignore_fields_too_deep_is_a_400(dev_api, integration):
    url = f"/api/v1/integrations/{integration.pk}/ignore-fields"
    response = dev_api.generic(
        "PUT", url, ('{"flow": [' + nested(300) + "]}").encode(), content_type="application/json"
    )
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["flow"]


# The UI's JSON fields ------------------------------------------------------------------


def test_ui_connection_form_refuses_deep_json_naming_the_field(dev_client, integration):
    connection = ConnectionFactory(integration=integration, config={"base_url": "https://erp"})
    url = reverse("integrations:resource_edit", args=[integration.pk, "connections", connection.pk])
    response = dev_client.post(
        url, {"name": connection.name, "kind": "http", "config": nested(2000)}
    )
    assert response.status_code == 400
    body = response.content.decode()
    error = body[body.index('id="id_config_error"') :]
    assert "JSON may nest at most 64 levels" in error[: error.index("</ul>")]
    connection.refresh_from_db()
    assert connection.config == {"base_url": "https://erp"}


def test_ui_connection_form_refuses_a_lone_surrogate(dev_client, integration):
    connection = ConnectionFactory(integration=integration, config={"base_url": "https://erp"})
    url = reverse("integrations:resource_edit", args=[integration.pk, "connections", connection.pk])
    response = dev_client.post(
        url, {"name": connection.name, "kind": "http", "config": '{"k": "\\udc00"}'}
    )
    assert response.status_code == 400
    assert "lone UTF-16 surrogate" in response.content.decode()
    connection.refresh_from_db()
    assert connection.config == {"base_url": "https://erp"}


# The checks themselves -----------------------------------------------------------------


def test_depth_scan_ignores_brackets_inside_strings_and_names_the_path():
    assert raw_depth_problem(json.dumps({"a": "[" * 500})) is None
    path, message = raw_depth_problem('{"x": [1, {"y": ' + nested(80) + "}]}")
    assert path.startswith("x[1].y.a.a")
    assert raw_depth_problem(nested(64)) is None
    assert raw_depth_problem(nested(65)) is not None
    assert value_problem(json.loads(nested(64))) is None
    assert value_problem(json.loads(nested(65)))[0].startswith("a.a")
