"""A clone's source is named only to users who may see it (sync badge, tiles, header)."""

import pytest
from django.urls import reverse

from integrations.models import Environment
from tests.factories import GrantFactory, IntegrationFactory

pytestmark = pytest.mark.django_db

SECRET_NAME = "Storefront orders → ERP"


@pytest.fixture
def sandbox_only(developer, monkeypatch):
    """A developer who manages a sandbox clone of a production integration they cannot see."""
    from revisions import selectors

    source = IntegrationFactory(name=SECRET_NAME, environment=Environment.PRODUCTION)
    clone = IntegrationFactory(
        name="Orders sandbox", environment=Environment.SANDBOX, cloned_from=source
    )
    GrantFactory(integration=clone, user=developer)
    monkeypatch.setattr(
        selectors, "sync_status", lambda i: {"state": "diverged", "source": i.cloned_from}
    )
    return source, clone


def test_the_sync_badge_does_not_name_a_source_the_user_cannot_see(dev_client, sandbox_only):
    source, clone = sandbox_only
    assert dev_client.get(f"/api/v1/integrations/{source.pk}").status_code == 404
    for page in ("integrations:sync_badge", "integrations:detail"):
        html = dev_client.get(reverse(page, args=[clone.pk])).content.decode()
        assert "Diverged from a source you cannot see" in html
        assert SECRET_NAME not in html and "Storefront orders" not in html
    home = dev_client.get(reverse("integrations:home")).content.decode()
    assert "Cloned from <span" in home and "a source you cannot see" in home
    assert "Storefront orders" not in home


def test_users_who_may_see_the_source_get_its_name_and_link(dev_client, developer, sandbox_only):
    source, clone = sandbox_only
    GrantFactory(integration=source, user=developer)
    html = dev_client.get(reverse("integrations:sync_badge", args=[clone.pk])).content.decode()
    assert "Diverged from Storefront orders → ERP" in html
    page = dev_client.get(reverse("integrations:detail", args=[clone.pk])).content.decode()
    assert f'href="{reverse("integrations:detail", args=[source.pk])}"' in page
