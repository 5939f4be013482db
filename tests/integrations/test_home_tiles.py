"""The home tiles keep their unchanging parts in the cache per integration version
(integrations/tiles.py): a second view shows the same page, and no write is ever hidden
behind what the cache kept."""

import re

import pytest
from django.urls import reverse

from integrations import services
from integrations.models import AccessLevel, Environment
from tests.factories import FlowFactory, GrantFactory, IntegrationFactory

pytestmark = pytest.mark.django_db

HOME = "/"


def tile(client, integration) -> str:
    html = client.get(HOME).content.decode()
    start = html.index(f'data-integration="{integration.pk}"')
    return html[start : html.index("</li>", start)]


def test_a_second_view_shows_the_same_tiles_as_the_first(dev_client, integration):
    FlowFactory.create_batch(2, integration=integration)
    first = dev_client.get(HOME).content.decode()
    second = dev_client.get(HOME).content.decode()
    strip = lambda html: re.sub(r'nonce="[^"]*"|value="[^"]{20,}"|"X-CSRFToken": "[^"]*"', "", html)  # noqa: E731
    assert strip(second) == strip(first)
    assert "<dt>Flows</dt><dd>2</dd>" in first


def test_a_renamed_integration_shows_its_new_name_at_once(dev_client, integration):
    assert "Storefront orders → ERP" in tile(dev_client, integration)
    services.integration_update(
        integration=integration, data={"name": "Webshop orders", "description": "Nightly."}
    )
    shown = tile(dev_client, integration)
    assert "Webshop orders" in shown and "Nightly." in shown
    assert "Storefront orders" not in shown
    assert f"v{integration.version}" in shown


def test_a_flow_added_or_deleted_changes_the_tile_count_at_once(dev_client, integration):
    assert "<dt>Flows</dt><dd>0</dd>" in tile(dev_client, integration)
    flow = services.resource_create(
        integration=integration, type_key="flow", data={"name": "Orders"}
    )
    assert "<dt>Flows</dt><dd>1</dd>" in tile(dev_client, integration)
    services.resource_delete(instance=flow)
    assert "<dt>Flows</dt><dd>0</dd>" in tile(dev_client, integration)


def test_a_flow_saved_outside_any_service_changes_the_tile_count(dev_client, integration):
    assert "<dt>Flows</dt><dd>0</dd>" in tile(dev_client, integration)
    FlowFactory(integration=integration)
    assert "<dt>Flows</dt><dd>1</dd>" in tile(dev_client, integration)


def test_protecting_an_integration_shows_on_its_tile_at_once(admin_client_, admin_user):
    sandbox = IntegrationFactory(name="Orders sandbox", environment=Environment.SANDBOX)
    assert "badge-protected" not in tile(admin_client_, sandbox)
    services.integration_protection_set(integration=sandbox, protected=True, user=admin_user)
    assert "badge-protected" in tile(admin_client_, sandbox)


def test_a_clone_tile_shows_its_source_renamed(dev_client, developer, integration):
    clone = IntegrationFactory(
        name="Orders sandbox", environment=Environment.SANDBOX, cloned_from=integration
    )
    GrantFactory(integration=clone, user=developer)
    assert "Storefront orders → ERP" in tile(dev_client, clone)
    services.integration_update(integration=integration, data={"name": "Webshop orders"})
    shown = tile(dev_client, clone)
    assert "Cloned from" in shown and "Webshop orders" in shown
    assert "Storefront orders" not in shown


def test_the_source_is_named_to_each_user_as_they_may_see_it(
    dev_client, admin_client_, developer, integration
):
    source = IntegrationFactory(name="Secret ERP feed", environment=Environment.PRODUCTION)
    clone = IntegrationFactory(
        name="Feed sandbox", environment=Environment.SANDBOX, cloned_from=source
    )
    GrantFactory(integration=clone, user=developer)
    # The administrator's view fills the cache first: the developer must not get its name.
    assert "Secret ERP feed" in tile(admin_client_, clone)
    hidden = tile(dev_client, clone)
    assert "a source you cannot see" in hidden and "Secret ERP feed" not in hidden
    services.access_set(
        integration=source, grants=[{"user": developer.username, "level": AccessLevel.MONITOR}]
    )
    assert "Secret ERP feed" in tile(dev_client, clone)
    services.access_set(integration=source, grants=[])
    shown = tile(dev_client, clone)
    assert "Secret ERP feed" not in shown and "a source you cannot see" in shown


def test_the_tile_links_keep_working_from_the_cache(dev_client, integration):
    tile(dev_client, integration)
    shown = tile(dev_client, integration)
    assert f'href="{reverse("integrations:detail", args=[integration.pk])}"' in shown


# The tab bar's counts are kept per version too (integrations.views.tab_counts).

TAB = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "tab-content"}


def tab_count(client, integration, key: str) -> str:
    html = client.get(reverse("integrations:flows", args=[integration.pk])).content.decode()
    anchor = html[html.index(f'data-tab="{key}"') :]
    anchor = anchor[: anchor.index("</a>")]
    found = re.search(r'<span class="tab-count">(\d+)</span>', anchor)
    return found.group(1) if found else ""


def test_the_tab_bar_counts_follow_every_added_and_deleted_resource(dev_client, integration):
    assert tab_count(dev_client, integration, "flows") == "0"
    flow = services.resource_create(
        integration=integration, type_key="flow", data={"name": "Orders"}
    )
    assert tab_count(dev_client, integration, "flows") == "1"
    FlowFactory(integration=integration)  # a save outside any service
    assert tab_count(dev_client, integration, "flows") == "2"
    services.resource_delete(instance=flow)
    assert tab_count(dev_client, integration, "flows") == "1"


def test_the_tab_bar_counts_are_fresh_when_the_view_wrote_after_loading(integration):
    from integrations.views import tab_counts

    assert tab_counts(integration)["flow_count"] == 0
    services.resource_create(integration=integration, type_key="flow", data={"name": "Orders"})
    # `integration` still carries the version it was loaded at.
    assert tab_counts(integration)["flow_count"] == 1
