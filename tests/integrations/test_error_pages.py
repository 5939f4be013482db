"""Refusals and missing pages are ILM pages that say what happened and where to go next."""

import pytest
from django.test import override_settings
from django.urls import reverse

from tests.factories import IntegrationFactory

pytestmark = pytest.mark.django_db


@override_settings(DEBUG=False)
def test_an_unseen_integration_is_a_friendly_404(dev_client):
    hidden = IntegrationFactory()
    response = dev_client.get(reverse("integrations:detail", args=[hidden.pk]))
    assert response.status_code == 404
    body = response.content.decode()
    assert "Nothing here" in body and hidden.name not in body
    assert reverse("integrations:home") in body


@override_settings(DEBUG=False)
def test_a_refused_action_says_why(monitor_client, integration):
    response = monitor_client.get(reverse("revisions:snapshot", args=[integration.pk]))
    assert response.status_code == 403
    body = response.content.decode()
    assert "You can’t do that here" in body
    assert "does not allow" in body
