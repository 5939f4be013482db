"""The global audit list's filter choices are cached between events (make bench fig 6):
what a reader is offered is always current, and the chosen filter stays selected."""

import re

import pytest
from django.core.cache import cache
from django.urls import reverse

from audit.models import Event
from audit.selectors import FACETS_KEY
from integrations import services
from tests.factories import FlowFactory, IntegrationFactory, UserFactory

pytestmark = pytest.mark.django_db


def _select(body: str, name: str) -> str:
    return re.search(rf'<select name="{name}">(.*?)</select>', body, re.S).group(1)


def _options(body: str, name: str) -> list[str]:
    return re.findall(r"<option[^>]*>[^<]*</option>", _select(body, name))


def _datalist(body: str) -> list[str]:
    found = re.search(r'<datalist id="au-usernames">(.*?)</datalist>', body, re.S)
    return re.findall(r'<option value="([^"]*)">', found.group(1)) if found else []


def test_a_new_or_renamed_integration_is_offered_at_once(admin_client_, integration):
    url = reverse("audit:log")
    FlowFactory(integration=integration)
    first = admin_client_.get(url).content.decode()
    assert cache.get(FACETS_KEY) is not None  # the choices were cached with the page
    assert f">{integration.name}</option>" in _select(first, "integration")

    added = IntegrationFactory(name="Payroll <export> & co")
    body = admin_client_.get(url).content.decode()
    assert f'<option value="{added.pk}">Payroll &lt;export&gt; &amp; co</option>' in _select(
        body, "integration"
    )

    services.integration_update(integration=added, data={"name": "Payroll nightly"})
    body = admin_client_.get(url).content.decode()
    assert f'<option value="{added.pk}">Payroll nightly</option>' in _select(body, "integration")
    assert "Payroll &lt;export&gt;" not in _select(body, "integration")

    services.integration_delete(integration=added)
    body = admin_client_.get(url).content.decode()
    assert f'value="{added.pk}"' not in _select(body, "integration")


def test_a_new_user_is_offered_at_once_though_users_make_no_event(admin_client_, integration):
    url = reverse("audit:log")
    FlowFactory(integration=integration)
    admin_client_.get(url)
    before = _datalist(admin_client_.get(url).content.decode())
    events = Event.objects.count()
    UserFactory(username="zoe")
    assert Event.objects.count() == events  # so the log's head did not move
    after = _datalist(admin_client_.get(url).content.decode())
    assert after == sorted([*before, "zoe"])


def test_the_chosen_filters_stay_selected(admin_client_, integration):
    FlowFactory(integration=integration)
    other = IntegrationFactory(name="Other")
    url = reverse("audit:log")
    params = {
        "integration": integration.pk,
        "resource_type": "flow",
        "action": "created",
        "source": "system",
    }
    for _ in range(2):  # the choices read fresh, then from the cache
        body = admin_client_.get(url, params).content.decode()
        integrations = _options(body, "integration")
        assert f'<option value="{integration.pk}" selected>{integration.name}</option>' in (
            integrations
        )
        assert f'<option value="{other.pk}">Other</option>' in integrations
        assert [o for o in _options(body, "resource_type") if " selected" in o] == [
            '<option value="flow" selected>Flow</option>'
        ]
        assert [o for o in _options(body, "action") if " selected" in o] == [
            '<option value="created" selected>Created</option>'
        ]
        assert [o for o in _options(body, "source") if " selected" in o] == [
            '<option value="system" selected>System</option>'
        ]
    plain = admin_client_.get(url).content.decode()
    for name in ("integration", "resource_type", "action", "source"):
        assert not [o for o in _options(plain, name) if " selected" in o], name


def test_rows_count_the_field_changes(admin_client_, integration):
    flow = FlowFactory(integration=integration, name="Counted")
    flow.name = "Counted again"
    flow.save()
    body = admin_client_.get(reverse("audit:log"), {"resource_type": "flow"}).content.decode()
    counts = re.findall(r'<span class="au-count">(.*?)</span>\n', body)
    created = Event.objects.get(resource_type="flow", action="created")
    assert counts[0] == "1 field"  # the rename, newest first
    assert counts[1] == f"{len(created.changes)} fields"
