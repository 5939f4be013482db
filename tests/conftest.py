import pytest
from django.test import Client

from integrations.models import AccessLevel, Role
from tests import hypothesis_profiles  # noqa: F401  (loads HYPOTHESIS_PROFILE)
from tests.factories import GrantFactory, IntegrationFactory, UserFactory


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Tests that commit (transaction=True) are cleaned up with TRUNCATE, which the audit
    log's guard refuses: the test database leaves that one trigger off. The guard's own
    tests (tests/audit/test_guard.py) switch it back on inside their transaction."""
    from django.db import connection

    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_truncate")


@pytest.fixture(autouse=True)
def _empty_cache():
    """Each test starts with an empty cache (the in-memory one, ilm_site/settings/test.py):
    reads cached by primary key and version, such as the tree hash, must not outlive the
    rows of the test that stored them (SQLite hands the same primary keys out again)."""
    from django.core.cache import cache

    cache.clear()
    yield


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
