import pytest
from django.test import Client

from integrations.models import AccessLevel, Role
from tests.factories import GrantFactory, IntegrationFactory, UserFactory


@pytest.fixture
def admin_user(db):
    return UserFactory(username="ada", role=Role.ADMINISTRATOR, is_staff=True)


@pytest.fixture
def approver(db):
    return UserFactory(username="april", role=Role.APPROVER)


@pytest.fixture
def developer(db):
    return UserFactory(username="dev", role=Role.DEVELOPER)


@pytest.fixture
def monitor(db):
    return UserFactory(username="mo", role=Role.MONITOR)


@pytest.fixture
def integration(db, developer, monitor):
    """A production integration the developer manages and the monitor may watch."""
    integration = IntegrationFactory(name="Storefront orders → ERP")
    GrantFactory(integration=integration, user=developer, level=AccessLevel.MANAGE)
    GrantFactory(integration=integration, user=monitor, level=AccessLevel.MONITOR)
    return integration


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def dev_client(developer):
    return _client(developer)


@pytest.fixture
def monitor_client(monitor):
    return _client(monitor)


@pytest.fixture
def admin_client_(admin_user):
    return _client(admin_user)


@pytest.fixture
def approver_client(approver):
    return _client(approver)
