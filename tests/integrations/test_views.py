"""The integration pages as their users see them: home tiles, tabs, and the editors."""

import io
import re

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from integrations import services
from integrations.models import (
    AccessLevel,
    Connection,
    Environment,
    Flow,
    FlowStep,
    Integration,
    LookupCache,
    LookupCacheEntry,
    Script,
)
from tests.factories import (
    CacheEntryFactory,
    ConnectionFactory,
    FlowFactory,
    GrantFactory,
    IntegrationFactory,
    LookupCacheFactory,
    ScriptFactory,
    StepFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

TAB = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "tab-content"}
TILES = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "tiles"}


def url(name, *args):
    return reverse(f"integrations:{name}", args=args)


def version_of(integration):
    return Integration.objects.get(pk=integration.pk).version


# Home -------------------------------------------------------------------------------------


def test_home_shows_a_tile_per_visible_integration_with_counts(dev_client, integration):
    FlowFactory.create_batch(2, integration=integration)
    ConnectionFactory.create_batch(3, integration=integration)
    LookupCacheFactory(integration=integration)
    IntegrationFactory(name="Someone else's")
    html = dev_client.get(url("home")).content.decode()
    assert "Storefront orders → ERP" in html
    assert "Someone else&#x27;s" not in html and "Someone else's" not in html
    tile = html[html.index(f'data-integration="{integration.pk}"') :]
    tile = tile[: tile.index("</li>")]
    assert re.search(r"<dt>Flows</dt><dd>2</dd>", tile)
    assert re.search(r"<dt>Connections</dt><dd>3</dd>", tile)
    assert re.search(r"<dt>Lookup caches</dt><dd>1</dd>", tile)
    assert "badge-production" in tile


def test_home_tile_links_the_integration_it_was_cloned_from(dev_client, integration, developer):
    clone = IntegrationFactory(
        name="Orders sandbox", environment=Environment.SANDBOX, cloned_from=integration
    )
    GrantFactory(integration=clone, user=developer)
    html = dev_client.get(url("home")).content.decode()
    assert "Cloned from" in html and url("detail", integration.pk) in html


def test_home_query_count_does_not_grow_with_tiles(approver_client):
    for i in range(3):
        integration = IntegrationFactory(name=f"A{i}")
        FlowFactory(integration=integration)
    # Both measured views start from an empty cache: the home page keeps per-version parts
    # there (tiles, the approval queue, unread notifications).
    cache.clear()
    with CaptureQueriesContext(connection) as few:
        approver_client.get(url("home"))
    for i in range(12):
        integration = IntegrationFactory(name=f"B{i}")
        FlowFactory(integration=integration)
        ConnectionFactory(integration=integration)
    cache.clear()
    with CaptureQueriesContext(connection) as many:
        html = approver_client.get(url("home")).content.decode()
    assert html.count('class="tile"') == 15
    assert len(many) == len(few)


def test_home_filters_by_environment_and_name(approver_client):
    IntegrationFactory(name="CRM contacts", environment=Environment.PRODUCTION)
    IntegrationFactory(name="CRM sandbox", environment=Environment.SANDBOX)
    IntegrationFactory(name="Carrier tracking", environment=Environment.SANDBOX)
    html = approver_client.get(url("home"), {"environment": "sandbox"}).content.decode()
    assert "CRM sandbox" in html and "Carrier tracking" in html and "CRM contacts" not in html
    query = {"name": "crm", "environment": "sandbox"}
    html = approver_client.get(url("home"), query).content.decode()
    assert "CRM sandbox" in html and "Carrier tracking" not in html


def test_home_environment_filter_counts_what_the_user_sees(dev_client, developer, integration):
    sandbox = IntegrationFactory(environment=Environment.SANDBOX)
    GrantFactory(integration=sandbox, user=developer)
    IntegrationFactory(environment=Environment.SANDBOX)  # not visible to the developer
    html = dev_client.get(url("home"), {"environment": "sandbox"}).content.decode()
    counts = re.findall(
        r'value="(\w*)"( checked)?><span>\w+ <span class="segment-count">(\d+)', html
    )
    assert counts == [("", "", "2"), ("sandbox", " checked", "1"), ("production", "", "1")]


def test_home_search_answers_htmx_with_the_tiles_only(approver_client):
    IntegrationFactory(name="CRM contacts")
    response = approver_client.get(url("home"), {"name": "crm"}, **TILES)
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html and 'id="tiles"' in html and "CRM contacts" in html
    assert "HX-Request" in response["Vary"]


def test_home_search_still_reads_a_bookmarked_q(approver_client):
    IntegrationFactory(name="CRM contacts")
    IntegrationFactory(name="Carrier tracking")
    response = approver_client.get(url("home"), {"q": "crm"})
    html = response.content.decode()
    assert "CRM contacts" in html and "Carrier tracking" not in html
    assert 'value="crm"' in html  # the search box shows what was searched


def test_home_says_what_to_do_when_empty(dev_client, monitor_client):
    html = dev_client.get(url("home")).content.decode()
    assert "No integrations yet" in html and url("create") in html
    html = monitor_client.get(url("home")).content.decode()
    assert "Ask an administrator" in html and url("create") not in html


def test_home_says_when_no_integration_matches(dev_client, integration):
    html = dev_client.get(url("home"), {"name": "zzz"}).content.decode()
    assert "No integrations match" in html and "Clear filters" in html


def test_home_bad_environment_filter_is_explained_and_shows_no_tiles(dev_client, integration):
    response = dev_client.get(url("home"), {"environment": "moon"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "moon is not one of the available choices" in html
    assert "a filter is not valid" in html and 'class="tile"' not in html


def test_home_needs_login(client):
    response = client.get(url("home"))
    assert response.status_code == 302 and "/login/" in response["Location"]


# The integration page and its tabs --------------------------------------------------------


@pytest.mark.parametrize("tab", ["flows", "connections", "caches", "scripts", "settings"])
def test_each_tab_has_its_own_url_and_renders_the_whole_page(dev_client, integration, tab):
    response = dev_client.get(url(tab, integration.pk))
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html and 'id="tab-content"' in html
    assert re.search(rf'data-tab="{tab}"[^>]*>|aria-selected="true" data-tab="{tab}"', html)
    assert f'aria-selected="true" data-tab="{tab}"' in html
    assert f"Version {integration.version}" in html


def test_tab_request_from_htmx_gets_the_content_and_the_tab_bar_out_of_band(
    dev_client, integration
):
    ConnectionFactory(integration=integration, name="ERP REST")
    response = dev_client.get(url("connections", integration.pk), **TAB)
    html = response.content.decode()
    assert "<html" not in html and 'id="tab-content"' not in html
    assert "ERP REST" in html
    assert 'hx-swap-oob="true"' in html and 'aria-selected="true" data-tab="connections"' in html
    assert "<title>Connections · Storefront orders → ERP · ILM</title>" in html
    assert "HX-Target" in response["Vary"]


def test_history_restore_gets_the_whole_page(dev_client, integration):
    headers = {**TAB, "HTTP_HX_HISTORY_RESTORE_REQUEST": "true"}
    assert b"<html" in dev_client.get(url("flows", integration.pk), **headers).content


def test_tab_bar_links_revisions_and_leaves_out_audit_until_it_exists(dev_client, integration):
    from django.urls import NoReverseMatch

    html = dev_client.get(url("detail", integration.pk)).content.decode()
    assert reverse("revisions:tab", args=[integration.pk]) in html
    try:
        audit = reverse("audit:integration", args=[integration.pk])
    except NoReverseMatch:
        assert 'data-tab="audit"' not in html
    else:
        assert audit in html


def test_render_integration_tab_answers_htmx_with_the_tab_content_only(dev_client, integration):
    from django.test import RequestFactory

    from integrations.views import render_integration_tab

    request = RequestFactory().get("/x/", **TAB)
    request.user = integration.grants.get(level=AccessLevel.MANAGE).user
    from django_htmx.middleware import HtmxDetails

    request.htmx = HtmxDetails(request)
    response = render_integration_tab(
        request,
        integration,
        tab="flows",
        template="integrations/flows_tab.html",
        context={"flows": []},
    )
    assert response.status_code == 200
    assert b"No flows yet" in response.content and b"<html" not in response.content


def test_unseen_integration_is_404_on_every_tab(dev_client):
    other = IntegrationFactory()
    for tab in ("detail", "flows", "connections", "caches", "scripts", "settings"):
        assert dev_client.get(url(tab, other.pk)).status_code == 404


def test_header_shows_environment_version_and_cloned_from(dev_client, integration, developer):
    clone = IntegrationFactory(
        name="Orders sandbox", environment=Environment.SANDBOX, cloned_from=integration
    )
    GrantFactory(integration=clone, user=developer)
    html = dev_client.get(url("detail", clone.pk)).content.decode()
    assert "badge-sandbox" in html and "Cloned from" in html
    assert url("detail", integration.pk) in html


# Connections ------------------------------------------------------------------------------


def test_create_connection_with_credentials_never_shows_them_back(dev_client, integration):
    before = version_of(integration)
    response = dev_client.post(
        url("resource_new", integration.pk, "connections"),
        {
            "name": "ERP REST",
            "kind": "http",
            "config": '{"base_url": "https://erp.example.com"}',
            "credentials": '{"api_key": "top-secret-123"}',
        },
    )
    assert response.status_code == 302
    connection_ = Connection.objects.get(name="ERP REST")
    assert connection_.credentials == {"api_key": "top-secret-123"}
    assert version_of(integration) == before + 1
    listing = dev_client.get(url("connections", integration.pk)).content.decode()
    edit = dev_client.get(
        url("resource_edit", integration.pk, "connections", connection_.pk)
    ).content.decode()
    for html in (listing, edit):
        assert "top-secret-123" not in html
        assert ">set<" in html


def test_editing_a_connection_without_credentials_keeps_them(dev_client, integration):
    conn = ConnectionFactory(integration=integration)
    response = dev_client.post(
        url("resource_edit", integration.pk, "connections", conn.pk),
        {"name": "Renamed", "kind": "http", "config": "{}", "credentials": ""},
    )
    assert response.status_code == 302
    conn.refresh_from_db()
    assert conn.name == "Renamed" and conn.credentials == {"api_key": "s3cr3t-key"}


def test_credentials_can_be_removed(dev_client, integration):
    conn = ConnectionFactory(integration=integration)
    dev_client.post(
        url("resource_edit", integration.pk, "connections", conn.pk),
        {"name": conn.name, "kind": "http", "config": "{}", "clear_credentials": "on"},
    )
    conn.refresh_from_db()
    assert conn.credentials == {}
    assert ">not set<" in dev_client.get(url("connections", integration.pk)).content.decode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "kind": "http", "config": "{}"}, "This field is required."),
        ({"name": "X", "kind": "http", "config": "{bad"}, "Config is not valid JSON"),
        ({"name": "X", "kind": "http", "config": "[1, 2]"}, "Config must be a JSON object"),
        ({"name": "X", "kind": "telepathy", "config": "{}"}, "Select a valid choice"),
        ({"name": "X", "kind": "http", "config": "{}", "credentials": "x"}, "Credentials is not"),
    ],
)
def test_bad_connection_input_is_refused_with_a_message(dev_client, integration, data, message):
    before = version_of(integration)
    response = dev_client.post(url("resource_new", integration.pk, "connections"), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Connection.objects.exists()
    assert version_of(integration) == before


def test_connection_used_by_a_step_cannot_be_deleted(dev_client, integration):
    conn = ConnectionFactory(integration=integration)
    StepFactory(flow=FlowFactory(integration=integration), connection=conn)
    page = dev_client.get(url("resource_delete", integration.pk, "connections", conn.pk))
    assert "change or delete those steps first" in page.content.decode()
    assert "cannot be deleted yet" in page.content.decode()
    assert "Delete connection</button>" not in page.content.decode()
    response = dev_client.post(url("resource_delete", integration.pk, "connections", conn.pk))
    assert response.status_code == 400
    assert Connection.objects.filter(pk=conn.pk).exists()


# Flows and steps --------------------------------------------------------------------------


def test_create_flow_then_steps_in_order(dev_client, integration):
    response = dev_client.post(
        url("resource_new", integration.pk, "flows"),
        {
            "name": "Orders to ERP",
            "description": "Every 15 min",
            "enabled": "on",
            "schedule": "*/15 * * * *",
        },
    )
    flow = Flow.objects.get(name="Orders to ERP")
    assert response["Location"] == url("flow", integration.pk, flow.pk)
    assert flow.enabled and flow.schedule == "*/15 * * * *"
    conn = ConnectionFactory(integration=integration, name="Shop")
    cache = LookupCacheFactory(integration=integration, name="SKU map")
    for name in ("Fetch orders", "Map SKUs"):
        response = dev_client.post(
            url("step_new", integration.pk, flow.pk),
            {
                "name": name,
                "kind": "export",
                "connection": conn.pk,
                "options": '{"batch_size": 50}',
                "mappings-TOTAL_FORMS": "2",
                "mappings-INITIAL_FORMS": "0",
                "mappings-0-source": "line.sku",
                "mappings-0-target": "item",
                "mappings-0-lookup_cache": str(cache.lineage_id),
                "mappings-1-source": "",
                "mappings-1-target": "",
                "mappings-1-lookup_cache": "",
            },
        )
        assert response.status_code == 302, response.content.decode()
    steps = list(flow.steps.order_by("position"))
    assert [s.name for s in steps] == ["Fetch orders", "Map SKUs"]
    assert [s.position for s in steps] == [1, 2]
    assert steps[0].config == {
        "batch_size": 50,
        "mappings": [
            {"source": "line.sku", "target": "item", "lookup_cache": str(cache.lineage_id)}
        ],
    }
    html = dev_client.get(url("flow", integration.pk, flow.pk)).content.decode()
    assert html.index("Fetch orders") < html.index("Map SKUs")
    assert "SKU map" in html and "line.sku" in html


def test_step_cannot_use_a_connection_of_another_integration(dev_client, integration):
    flow = FlowFactory(integration=integration)
    foreign = ConnectionFactory()
    response = dev_client.post(
        url("step_new", integration.pk, flow.pk),
        {
            "name": "S",
            "kind": "export",
            "connection": foreign.pk,
            "options": "",
            "mappings-TOTAL_FORMS": "0",
            "mappings-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 400
    assert "pick one of this integration&#x27;s connections" in response.content.decode()
    assert not FlowStep.objects.exists()


def test_step_mapping_rows_need_source_and_target(dev_client, integration):
    flow = FlowFactory(integration=integration)
    response = dev_client.post(
        url("step_new", integration.pk, flow.pk),
        {
            "name": "S",
            "kind": "transform",
            "options": "",
            "mappings-TOTAL_FORMS": "1",
            "mappings-INITIAL_FORMS": "0",
            "mappings-0-source": "a",
            "mappings-0-target": "",
        },
    )
    assert response.status_code == 400
    assert "This field is required" in response.content.decode()
    assert not FlowStep.objects.exists()


def test_step_mapping_cannot_use_a_cache_of_another_integration(dev_client, integration):
    flow = FlowFactory(integration=integration)
    foreign = LookupCacheFactory()
    response = dev_client.post(
        url("step_new", integration.pk, flow.pk),
        {
            "name": "S",
            "kind": "lookup",
            "options": "",
            "mappings-TOTAL_FORMS": "1",
            "mappings-INITIAL_FORMS": "0",
            "mappings-0-source": "a",
            "mappings-0-target": "b",
            "mappings-0-lookup_cache": str(foreign.lineage_id),
        },
    )
    assert response.status_code == 400 and not FlowStep.objects.exists()
    assert "Pick one of this integration&#x27;s lookup caches" in response.content.decode()


def test_edit_step_keeps_its_mappings_and_changes_them(dev_client, integration):
    flow = FlowFactory(integration=integration)
    step = StepFactory(flow=flow)
    page = dev_client.get(url("step_edit", integration.pk, flow.pk, step.pk)).content.decode()
    assert 'value="external_id"' in page
    response = dev_client.post(
        url("step_edit", integration.pk, flow.pk, step.pk),
        {
            "name": step.name,
            "kind": "import",
            "options": "",
            "mappings-TOTAL_FORMS": "2",
            "mappings-INITIAL_FORMS": "1",
            "mappings-0-source": "id",
            "mappings-0-target": "external_id",
            "mappings-0-DELETE": "on",
            "mappings-1-source": "email",
            "mappings-1-target": "mail",
        },
    )
    assert response.status_code == 302
    step.refresh_from_db()
    assert step.kind == "import"
    assert step.config["mappings"] == [{"source": "email", "target": "mail", "lookup_cache": None}]


def test_move_step_swaps_positions_in_one_version(dev_client, integration):
    flow = FlowFactory(integration=integration)
    first = StepFactory(flow=flow, name="First", position=1)
    second = StepFactory(flow=flow, name="Second", position=2)
    before = version_of(integration)
    dev_client.post(url("step_move", integration.pk, flow.pk, second.pk), {"direction": "up"})
    first.refresh_from_db()
    second.refresh_from_db()
    assert (second.position, first.position) == (1, 2)
    assert version_of(integration) == before + 1


def test_moving_the_first_step_up_changes_nothing(dev_client, integration):
    flow = FlowFactory(integration=integration)
    first = StepFactory(flow=flow, position=1)
    before = version_of(integration)
    response = dev_client.post(
        url("step_move", integration.pk, flow.pk, first.pk), {"direction": "up"}, follow=True
    )
    assert "already the first step" in response.content.decode()
    assert version_of(integration) == before


def test_delete_flow_asks_first_then_deletes_its_steps(dev_client, integration):
    flow = FlowFactory(integration=integration)
    StepFactory(flow=flow)
    page = dev_client.get(url("resource_delete", integration.pk, "flows", flow.pk))
    assert "Its 1 step" in page.content.decode() and Flow.objects.filter(pk=flow.pk).exists()
    dev_client.post(url("resource_delete", integration.pk, "flows", flow.pk))
    assert not Flow.objects.filter(pk=flow.pk).exists() and not FlowStep.objects.exists()


@pytest.mark.parametrize(
    ("schedule", "ok"),
    [
        ("*/15 * * * *", True),
        ("0 6 * * MON-FRI", True),
        ("@daily", True),
        ("", True),
        ("every minute", False),
        ("61 * * * *", False),
        ("* * * *", False),
        ("*/0 * * * *", False),
    ],
)
def test_flow_schedule_is_checked_as_cron(dev_client, integration, schedule, ok):
    response = dev_client.post(
        url("resource_new", integration.pk, "flows"), {"name": "F", "schedule": schedule}
    )
    assert (response.status_code == 302) is ok
    assert Flow.objects.exists() is ok


def test_step_of_another_flow_is_404(dev_client, integration):
    flow = FlowFactory(integration=integration)
    other_flow = FlowFactory(integration=integration)
    step = StepFactory(flow=other_flow)
    assert dev_client.get(url("step_edit", integration.pk, flow.pk, step.pk)).status_code == 404


def test_resource_of_another_integration_is_404(dev_client, integration):
    foreign = FlowFactory()
    assert (
        dev_client.get(url("resource_edit", integration.pk, "flows", foreign.pk)).status_code == 404
    )
    assert dev_client.get(url("resource_new", integration.pk, "widgets")).status_code == 404


# Scripts -------------------------------------------------------------------------------------


def test_script_editor_saves_code_in_a_monospace_area(dev_client, integration):
    page = dev_client.get(url("resource_new", integration.pk, "scripts")).content.decode()
    assert 'class="code"' in page
    code = "function preSavePage(options) {\n  return options.data;\n}\n"
    response = dev_client.post(
        url("resource_new", integration.pk, "scripts"),
        {"name": "Shape orders", "function": "preSavePage", "code": code},
    )
    assert response.status_code == 302
    assert Script.objects.get().code.replace("\r\n", "\n") == code
    assert "preSavePage" in dev_client.get(url("scripts", integration.pk)).content.decode()


def test_script_function_name_must_be_an_identifier(dev_client, integration):
    response = dev_client.post(
        url("resource_new", integration.pk, "scripts"),
        {"name": "S", "function": "pre save", "code": ""},
    )
    assert response.status_code == 400 and not Script.objects.exists()


# Lookup caches -----------------------------------------------------------------------------


def test_cache_page_shows_entries_and_data_size(dev_client, integration):
    cache = LookupCacheFactory(integration=integration)
    CacheEntryFactory(cache=cache, key="SKU-1", size=1500)
    CacheEntryFactory(cache=cache, key="SKU-2", size=1500)
    html = dev_client.get(url("cache", integration.pk, cache.pk)).content.decode()
    assert "SKU-1" in html and "SKU-2" in html and "2.9\xa0KB" in html
    assert "2</strong> entries" in html


def test_add_entry_then_replace_it(dev_client, integration):
    cache = LookupCacheFactory(integration=integration)
    before = version_of(integration)
    for item in ("I-1", "I-2"):
        response = dev_client.post(
            url("cache_entry_add", integration.pk, cache.pk),
            {"key": "SKU-9", "value": f'{{"erp_item": "{item}"}}'},
        )
        assert response.status_code == 302
    assert list(cache.entries.values_list("key", "value")) == [("SKU-9", {"erp_item": "I-2"})]
    assert version_of(integration) == before + 2


def test_entry_with_bad_json_is_refused(dev_client, integration):
    cache = LookupCacheFactory(integration=integration)
    response = dev_client.post(
        url("cache_entry_add", integration.pk, cache.pk), {"key": "K", "value": "{nope"}
    )
    assert response.status_code == 400
    assert "The value is not valid JSON" in response.content.decode()
    assert not cache.entries.exists()


def _upload(client, integration, cache, name, content):
    f = io.BytesIO(content)
    f.name = name
    return client.post(url("cache_upload", integration.pk, cache.pk), {"file": f})


def test_upload_csv_and_json(dev_client, integration):
    cache = LookupCacheFactory(integration=integration, key_path="sku")
    response = _upload(dev_client, integration, cache, "map.csv", b"sku,item\nA-1,I-1\nA-2,I-2\n")
    assert response.status_code == 302
    assert cache.entries.count() == 2
    response = _upload(
        dev_client, integration, cache, "more.json", b'[{"sku": "A-3", "item": "I-3"}]'
    )
    assert response.status_code == 302
    assert cache.entries.count() == 3
    assert cache.entries.get(key="A-3").value == {"sku": "A-3", "item": "I-3"}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("map.csv", b"code,item\nA-1,I-1\n", "has no &#x27;sku&#x27; column"),
        ("map.txt", b"sku\nA\n", "Upload a .csv or .json file."),
        ("map.json", b"{not json", "not valid JSON"),
        ("map.csv", b"sku,item\n", "holds no entries"),
    ],
)
def test_bad_uploads_are_refused_and_change_nothing(
    dev_client, integration, name, content, message
):
    cache = LookupCacheFactory(integration=integration, key_path="sku")
    CacheEntryFactory(cache=cache, key="KEEP")
    before = version_of(integration)
    response = _upload(dev_client, integration, cache, name, content)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert list(cache.entries.values_list("key", flat=True)) == ["KEEP"]
    assert version_of(integration) == before


def test_clear_entries_asks_first(dev_client, integration):
    cache = LookupCacheFactory(integration=integration)
    CacheEntryFactory.create_batch(3, cache=cache)
    page = dev_client.get(url("cache_clear", integration.pk, cache.pk)).content.decode()
    assert "removes 3 entries" in page and cache.entries.count() == 3
    response = dev_client.post(url("cache_clear", integration.pk, cache.pk))
    assert response.status_code == 302 and not LookupCacheEntry.objects.exists()
    assert LookupCache.objects.filter(pk=cache.pk).exists()


def test_create_cache_then_edit_its_key_path(dev_client, integration):
    response = dev_client.post(
        url("resource_new", integration.pk, "caches"),
        {"name": "SKU map", "key_path": "sku", "settings": '{"ttl_days": 7}'},
    )
    cache = LookupCache.objects.get()
    assert response["Location"] == url("cache", integration.pk, cache.pk)
    dev_client.post(
        url("resource_edit", integration.pk, "caches", cache.pk),
        {"name": "SKU map", "key_path": "code", "settings": "{}"},
    )
    cache.refresh_from_db()
    assert cache.key_path == "code" and cache.settings == {}


# Integrations: create, settings, access, delete ----------------------------------------------


def test_developer_creates_a_sandbox_integration_and_manages_it(dev_client, developer):
    response = dev_client.post(
        url("create"), {"name": "  CRM → marketing ", "environment": "production"}
    )
    created = Integration.objects.get(name="CRM → marketing")
    assert response["Location"] == url("flows", created.pk)
    assert created.environment == Environment.SANDBOX  # developers cannot pick production
    assert created.created_by == developer
    assert created.grants.get().level == AccessLevel.MANAGE


@pytest.mark.parametrize("who", ["admin_client_", "approver_client"])
def test_administrators_and_approvers_may_create_in_production(who, request):
    # The same rule as the API's and the clone form's: Action.CLONE_TO_PRODUCTION.
    request.getfixturevalue(who).post(url("create"), {"name": "Prod", "environment": "production"})
    assert Integration.objects.get(name="Prod").environment == Environment.PRODUCTION


def test_empty_integration_name_is_refused(dev_client):
    response = dev_client.post(url("create"), {"name": "   "})
    assert response.status_code == 400 and not Integration.objects.exists()


def test_settings_save_renders_documentation_safely(dev_client, integration):
    data = {
        "name": integration.name,
        "description": "Orders",
        "environment": integration.environment,
        "documentation": "# Runbook\n\n**Owner**: ops\n\n<script>alert(1)</script>"
        '\n\n<a href="javascript:alert(1)" onclick="x()">bad</a>',
        "snapshot_schedule": "daily",
        "ignore_connection": "config.base_url, config.timeout",
    }
    before = version_of(integration)
    response = dev_client.post(url("settings", integration.pk), data)
    assert response.status_code == 302
    integration.refresh_from_db()
    assert integration.snapshot_schedule == "daily"
    assert integration.ignore_fields == {"connection": ["config.base_url", "config.timeout"]}
    assert integration.version == before + 1
    html = dev_client.get(url("settings", integration.pk)).content.decode()
    assert "<h1>Runbook</h1>" in html and "<strong>Owner</strong>" in html
    docs = html[html.index('class="markdown"') :]
    assert "<script>alert(1)" not in docs and "javascript:" not in docs and "onclick" not in docs


def test_settings_saved_unchanged_is_not_a_change(dev_client, integration):
    before = version_of(integration)
    response = dev_client.post(
        url("settings", integration.pk),
        {
            "name": integration.name,
            "description": integration.description,
            "environment": integration.environment,
            "documentation": "",
            "snapshot_schedule": "none",
        },
        follow=True,
    )
    assert "Nothing changed" in response.content.decode()
    assert version_of(integration) == before


def test_settings_refuse_bad_ignore_fields_and_change_nothing(dev_client, integration):
    before = version_of(integration)
    response = dev_client.post(
        url("settings", integration.pk),
        {
            "name": "New name",
            "environment": integration.environment,
            "snapshot_schedule": "none",
            "ignore_connection": "config.x",
            "description": "",
        },
    )
    assert response.status_code == 200 or response.status_code == 302
    integration.refresh_from_db()
    # a valid ignore path is accepted
    assert integration.ignore_fields == {"connection": ["config.x"]}
    response = dev_client.post(
        url("settings", integration.pk),
        {"name": "", "environment": integration.environment, "snapshot_schedule": "none"},
    )
    assert response.status_code == 400
    assert "This field is required" in response.content.decode()
    assert version_of(integration) == before + 1


def test_developer_cannot_change_the_environment(dev_client, integration):
    dev_client.post(
        url("settings", integration.pk),
        {
            "name": integration.name,
            "environment": "sandbox",
            "snapshot_schedule": "none",
            "description": integration.description,
        },
    )
    integration.refresh_from_db()
    assert integration.environment == Environment.PRODUCTION


def test_administrator_changes_the_environment(admin_client_, integration):
    admin_client_.post(
        url("settings", integration.pk),
        {
            "name": integration.name,
            "environment": "sandbox",
            "snapshot_schedule": "none",
            "description": integration.description,
        },
    )
    integration.refresh_from_db()
    assert integration.environment == Environment.SANDBOX


def test_administrator_grants_and_revokes_access(admin_client_, integration, developer, monitor):
    response = admin_client_.post(
        url("access", integration.pk),
        {
            "grants-TOTAL_FORMS": "2",
            "grants-INITIAL_FORMS": "2",
            "grants-0-user": developer.username,
            "grants-0-level": "monitor",
            "grants-1-user": monitor.username,
            "grants-1-level": "monitor",
            "grants-1-DELETE": "on",
        },
    )
    assert response.status_code == 302
    assert list(integration.grants.values_list("user__username", "level")) == [
        (developer.username, "monitor")
    ]


def test_access_rows_listing_a_user_twice_are_refused(admin_client_, integration, developer):
    response = admin_client_.post(
        url("access", integration.pk),
        {
            "grants-TOTAL_FORMS": "2",
            "grants-INITIAL_FORMS": "0",
            "grants-0-user": developer.username,
            "grants-0-level": "monitor",
            "grants-1-user": developer.username,
            "grants-1-level": "manage",
        },
    )
    assert response.status_code == 400 and "listed twice" in response.content.decode()
    assert integration.grants.count() == 2


def test_delete_integration_needs_its_name_typed(dev_client, integration):
    # A sandbox: only administrators delete production integrations.
    integration.environment = Environment.SANDBOX
    integration.save()
    FlowFactory(integration=integration)
    response = dev_client.post(url("delete", integration.pk), {"confirm_name": "nope"})
    assert response.status_code == 400 and Integration.objects.filter(pk=integration.pk).exists()
    response = dev_client.post(url("delete", integration.pk), {"confirm_name": integration.name})
    assert response["Location"] == url("home")
    assert not Integration.objects.filter(pk=integration.pk).exists()
    assert not Flow.objects.exists()


def test_a_developer_may_not_delete_a_production_integration(dev_client, integration):
    response = dev_client.post(url("delete", integration.pk), {"confirm_name": integration.name})
    assert response.status_code == 403
    assert "Only an administrator" in response.content.decode()
    assert Integration.objects.filter(pk=integration.pk).exists()
    assert (
        "Delete integration" not in dev_client.get(url("settings", integration.pk)).content.decode()
    )


# Badges and panels from the revisions app ----------------------------------------------------


def test_sync_badge_shows_how_a_clone_stands(dev_client, integration, developer, monkeypatch):
    from revisions import selectors

    clone = IntegrationFactory(
        name="Orders sandbox", environment=Environment.SANDBOX, cloned_from=integration
    )
    GrantFactory(integration=clone, user=developer)
    monkeypatch.setattr(
        selectors, "sync_status", lambda i: {"state": "behind", "source": i.cloned_from}
    )
    for page in (url("sync_badge", clone.pk), url("detail", clone.pk)):
        html = dev_client.get(page).content.decode()
        assert "sync-behind" in html and "Behind Storefront orders → ERP" in html
    # The home tile loads it when it comes into view.
    home = dev_client.get(url("home")).content.decode()
    assert f'hx-get="{url("sync_badge", clone.pk)}"' in home


def test_home_does_not_work_out_sync_states_itself(dev_client, integration, developer, monkeypatch):
    from revisions import selectors

    calls = []
    monkeypatch.setattr(selectors, "sync_status", lambda i: calls.append(i) or None)
    for n in range(3):
        clone = IntegrationFactory(name=f"Clone {n}", cloned_from=integration)
        GrantFactory(integration=clone, user=developer)
    assert dev_client.get(url("home")).status_code == 200
    assert calls == []


def test_sync_badge_of_an_unseen_integration_is_404(dev_client):
    assert dev_client.get(url("sync_badge", IntegrationFactory().pk)).status_code == 404


def test_pages_render_without_a_sync_status(dev_client, integration, monkeypatch):
    from revisions import selectors

    monkeypatch.setattr(selectors, "sync_status", lambda i: None)
    integration.cloned_from = IntegrationFactory()
    integration.save()
    for page in (url("sync_badge", integration.pk), url("detail", integration.pk)):
        response = dev_client.get(page)
        assert response.status_code == 200 and b"sync-badge" not in response.content


def test_approvers_see_their_queue_on_the_home_page(approver_client, dev_client, integration):
    from revisions.models import Revision, RevisionStatus, RevisionType

    Revision.objects.create(
        integration=integration,
        number=1,
        type=RevisionType.PULL,
        status=RevisionStatus.AWAITING_APPROVAL,
        description="Holiday prices",
    )
    html = approver_client.get(url("home")).content.decode()
    assert "Waiting for approval" in html and "Holiday prices" in html
    assert "Waiting for approval" not in dev_client.get(url("home")).content.decode()


def test_an_approvers_own_request_is_shown_as_waiting_for_another_approver(
    approver_client, approver, integration
):
    """Their own request is listed (they want to follow it) but never as theirs to act on:
    marked, and left out of the count that says how many wait for their decision."""
    from revisions.models import Approval, Revision, RevisionStatus, RevisionType

    other = IntegrationFactory(name="Payroll")  # one open operation per integration
    theirs, mine = (
        Revision.objects.create(
            integration=i,
            number=1,
            type=RevisionType.PULL,
            status=RevisionStatus.AWAITING_APPROVAL,
            description=d,
        )
        for i, d in ((other, "Holiday prices"), (integration, "Tax fix"))
    )
    Approval.objects.create(revision=mine, requested_by=approver, changeset_hash="x")
    Approval.objects.create(revision=theirs, requested_by=UserFactory(), changeset_hash="y")
    html = approver_client.get(url("home")).content.decode()
    tax = html[html.index("Tax fix") :]
    assert "Yours, waiting for another approver" in tax[: tax.index("</li>")]
    holiday = html[html.index("Holiday prices") :]
    assert "Yours, waiting" not in holiday[: holiday.index("</li>")]
    assert re.search(r'title="1 waiting for your decision">1<', html)
    queue = approver_client.get(reverse("revisions:approvals")).content.decode()
    assert f"{integration.name} #1" in queue and "Payroll #1" in queue


def test_access_of_an_integration_an_administrator_created_can_be_saved(
    admin_client_, admin_user, developer
):
    admin_client_.post(url("create"), {"name": "Admin's own"})
    created = Integration.objects.get(name="Admin's own")
    page = admin_client_.get(url("settings", created.pk)).content.decode()
    assert f'value="{admin_user.username}" selected' in page
    response = admin_client_.post(
        url("access", created.pk),
        {
            "grants-TOTAL_FORMS": "2",
            "grants-INITIAL_FORMS": "1",
            "grants-0-user": admin_user.username,
            "grants-0-level": "manage",
            "grants-1-user": developer.username,
            "grants-1-level": "monitor",
        },
    )
    assert response.status_code == 302
    assert set(created.grants.values_list("user__username", "level")) == {
        (admin_user.username, "manage"),
        (developer.username, "monitor"),
    }


# One version per committed change, through every editor ----------------------------------


def _editor_posts(integration):
    """(label, url, data) for one successful POST of each editor, in an order that works."""
    flow = FlowFactory(integration=integration, name="F")
    step = StepFactory(flow=flow, name="S1", position=1)
    StepFactory(flow=flow, name="S2", position=2)
    conn = ConnectionFactory(integration=integration, name="C")
    cache = LookupCacheFactory(integration=integration, name="L", key_path="sku")
    CacheEntryFactory(cache=cache)
    script = ScriptFactory(integration=integration, name="Sc")
    pk = integration.pk
    no_mappings = {"mappings-TOTAL_FORMS": "0", "mappings-INITIAL_FORMS": "0"}
    return [
        (
            "connection new",
            url("resource_new", pk, "connections"),
            {"name": "C2", "kind": "ftp", "config": "{}"},
        ),
        (
            "connection edit",
            url("resource_edit", pk, "connections", conn.pk),
            {"name": "C", "kind": "ftp", "config": '{"host": "x"}'},
        ),
        ("flow new", url("resource_new", pk, "flows"), {"name": "F2"}),
        (
            "flow edit",
            url("resource_edit", pk, "flows", flow.pk),
            {"name": "F", "schedule": "@daily"},
        ),
        ("step new", url("step_new", pk, flow.pk), {"name": "S3", "kind": "import", **no_mappings}),
        (
            "step edit",
            url("step_edit", pk, flow.pk, step.pk),
            {"name": "S1", "kind": "lookup", **no_mappings},
        ),
        ("step move", url("step_move", pk, flow.pk, step.pk), {"direction": "down"}),
        ("step delete", url("step_delete", pk, flow.pk, step.pk), {}),
        (
            "script edit",
            url("resource_edit", pk, "scripts", script.pk),
            {"name": "Sc", "function": "main", "code": "x"},
        ),
        ("script delete", url("resource_delete", pk, "scripts", script.pk), {}),
        ("cache new", url("resource_new", pk, "caches"), {"name": "L2", "key_path": "id"}),
        (
            "cache edit",
            url("resource_edit", pk, "caches", cache.pk),
            {"name": "L", "key_path": "sku", "settings": '{"ttl_days": 1}'},
        ),
        ("entry add", url("cache_entry_add", pk, cache.pk), {"key": "K", "value": "{}"}),
        ("entries clear", url("cache_clear", pk, cache.pk), {}),
        ("flow delete", url("resource_delete", pk, "flows", flow.pk), {}),
        ("connection delete", url("resource_delete", pk, "connections", conn.pk), {}),
        (
            "settings",
            url("settings", pk),
            {
                "name": "Renamed",
                "environment": integration.environment,
                "snapshot_schedule": "weekly",
            },
        ),
    ]


def test_each_editor_raises_the_version_by_exactly_one(dev_client, integration):
    for label, target, data in _editor_posts(integration):
        before = version_of(integration)
        response = dev_client.post(target, data)
        assert response.status_code == 302, (label, response.content.decode()[:500])
        assert version_of(integration) == before + 1, label


def test_saving_an_editor_unchanged_raises_nothing(dev_client, integration):
    flow = FlowFactory(integration=integration, name="F", description="", schedule="")
    before = version_of(integration)
    response = dev_client.post(
        url("resource_edit", integration.pk, "flows", flow.pk), {"name": "F", "enabled": "on"}
    )
    assert response.status_code == 302
    assert version_of(integration) == before


def test_documentation_preview_renders_safely_while_typing(dev_client, integration):
    response = dev_client.post(
        url("docs_preview", integration.pk),
        {"documentation": "## Owner\n\n<img src=x onerror=alert(1)>**ops**"},
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert "<h2>Owner</h2>" in html and "<strong>ops</strong>" in html
    assert "onerror" not in html
    integration.refresh_from_db()
    assert integration.documentation == ""  # a preview saves nothing


def test_documentation_preview_needs_edit_rights(monitor_client, integration):
    response = monitor_client.post(url("docs_preview", integration.pk), {"documentation": "x"})
    assert response.status_code == 403


def test_cache_entries_are_paged_and_searchable(dev_client, integration):
    cache = LookupCacheFactory(integration=integration)
    services.cache_entries_add(
        cache=cache, entries=[{"key": f"K{n:03d}", "value": {}} for n in range(120)]
    )
    page_url = url("cache", integration.pk, cache.pk)
    first = dev_client.get(page_url).content.decode()
    assert "K000" in first and "K049" in first and "K050" not in first
    assert "1–50 of 120" in first and "page=2" in first
    last = dev_client.get(page_url, {"page": 3}).content.decode()
    assert "K119" in last and "K099" not in last
    found = dev_client.get(page_url, {"q": "K11"}).content.decode()
    assert "K110" in found and "K119" in found and "K000" not in found


def test_flow_page_marks_a_mapping_whose_cache_is_gone(dev_client, integration):
    flow = FlowFactory(integration=integration)
    cache = LookupCacheFactory(integration=integration, name="Old map")
    StepFactory(
        flow=flow,
        config={
            "mappings": [{"source": "a", "target": "b", "lookup_cache": str(cache.lineage_id)}]
        },
    )
    assert "Old map" in dev_client.get(url("flow", integration.pk, flow.pk)).content.decode()
    dev_client.post(url("resource_delete", integration.pk, "caches", cache.pk))
    html = dev_client.get(url("flow", integration.pk, flow.pk)).content.decode()
    assert "deleted lookup cache «Old map»" in html and "badge-danger" in html
    assert str(cache.lineage_id) not in html


def test_a_second_integration_with_the_same_name_in_an_environment_is_warned_about(
    dev_client, developer, integration
):
    """Names are how people tell integrations apart: a duplicate (ignoring case) in the
    same environment is saved, with a warning; hidden integrations are never hinted at."""
    GrantFactory(
        integration=IntegrationFactory(name="Payroll", environment=Environment.SANDBOX),
        user=developer,
    )
    IntegrationFactory(name="Secret thing", environment=Environment.SANDBOX)  # not granted
    IntegrationFactory(name="Ledger", environment=Environment.PRODUCTION)
    response = dev_client.post(url("create"), {"name": "  payroll "}, follow=True)
    assert "is also named" in response.content.decode()
    response = dev_client.post(url("create"), {"name": "Secret Thing"}, follow=True)
    assert "is also named" not in response.content.decode()
    assert Integration.objects.filter(name__iexact="secret thing").count() == 2
    response = dev_client.post(url("create"), {"name": "Ledger"}, follow=True)
    assert "is also named" not in response.content.decode()  # another environment
