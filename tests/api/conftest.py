"""API clients that authenticate as the scripts do: with a bearer token."""

import pytest
from rest_framework.test import APIClient

from integrations.models import Role
from integrations.services import api_token_create
from tests.factories import UserFactory


def token_client(user) -> APIClient:
    _, raw = api_token_create(user=user, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.raw_token = raw
    return client


@pytest.fixture
def api_for():
    """`api_for(user)`: a client holding a fresh token of that user."""
    return token_client


@pytest.fixture
def dev_api(developer):
    return token_client(developer)


@pytest.fixture
def monitor_api(monitor):
    return token_client(monitor)


@pytest.fixture
def admin_api(admin_user):
    return token_client(admin_user)


@pytest.fixture
def approver_api(approver):
    return token_client(approver)


@pytest.fixture
def outsider(db):
    """A developer with no grant on anything."""
    return UserFactory(username="olga", role=Role.DEVELOPER)


@pytest.fixture
def outsider_api(outsider):
    return token_client(outsider)
