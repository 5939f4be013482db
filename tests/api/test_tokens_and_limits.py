"""Tokens on the profile page and from the command line; rate limits; user command."""

from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from integrations.models import ApiToken, Role, User
from integrations.throttles import LoginThrottle, TokenWriteThrottle
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def test_profile_creates_token_shown_once_and_stored_hashed(dev_client, developer):
    response = dev_client.post("/account/tokens/", {"name": "CI pipeline"})
    assert response.status_code == 200
    raw = response.context["new_token"]
    assert raw.startswith("ilm_")
    assert raw in response.content.decode()
    token = ApiToken.objects.get(user=developer)
    assert token.name == "CI pipeline"
    assert raw not in (token.key_hash, token.prefix)
    page = dev_client.get("/account/").content.decode()
    assert "CI pipeline" in page
    assert raw not in page  # never again
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/integrations").status_code == 200
    assert "ago" in dev_client.get("/account/").content.decode()  # last used shown


def test_token_without_name_is_refused(dev_client, developer):
    response = dev_client.post("/account/tokens/", {"name": "  "})
    assert response.status_code == 400
    assert "Give the token a name" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_revoked_token_gets_401(dev_client, developer):
    raw = dev_client.post("/account/tokens/", {"name": "t"}).context["new_token"]
    token = ApiToken.objects.get(user=developer)
    response = dev_client.post(f"/account/tokens/{token.pk}/revoke/")
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert "Revoked" in dev_client.get("/account/").content.decode()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/integrations").status_code == 401


def test_cannot_revoke_someone_elses_token(dev_client, monitor):
    other = ApiToken.objects.create(user=monitor, name="x", prefix="p", key_hash="h")
    assert dev_client.post(f"/account/tokens/{other.pk}/revoke/").status_code == 404
    other.refresh_from_db()
    assert other.revoked_at is None


def test_profile_needs_login(client):
    response = client.get("/account/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_create_user_command_creates_and_updates_role():
    out = StringIO()
    call_command(
        "create_user", "carol", "--role", "approver", "--password", "pw-long-1", stdout=out
    )
    assert "Created user carol" in out.getvalue()
    carol = User.objects.get(username="carol")
    assert carol.role == Role.APPROVER
    assert carol.check_password("pw-long-1")
    call_command("create_user", "carol", "--role", "monitor", stdout=StringIO())
    carol.refresh_from_db()
    assert carol.role == Role.MONITOR
    assert carol.check_password("pw-long-1")  # kept when not given


def test_create_user_rejects_unknown_role():
    with pytest.raises(CommandError):
        call_command("create_user", "x", "--role", "overlord", stdout=StringIO(), stderr=StringIO())
    assert not User.objects.filter(username="x").exists()


def test_create_api_token_command_prints_a_working_token(developer):
    out = StringIO()
    call_command("create_api_token", "dev", stdout=out)
    raw = out.getvalue().strip()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/integrations").status_code == 200


def test_create_api_token_for_unknown_user_fails():
    with pytest.raises(CommandError, match="No user named"):
        call_command("create_api_token", "ghost", stdout=StringIO())


def test_token_writes_over_the_limit_get_429_with_retry_after(dev_api, monkeypatch):
    monkeypatch.setattr(TokenWriteThrottle, "THROTTLE_RATES", {"token_writes": "2/min"})
    for i in range(2):
        assert (
            dev_api.post("/api/v1/integrations", {"name": f"n{i}"}, format="json").status_code
            == 201
        )
    response = dev_api.post("/api/v1/integrations", {"name": "n3"}, format="json")
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert "throttled" in response.json()["detail"].lower()
    # Reads stay open.
    assert dev_api.get("/api/v1/integrations").status_code == 200


def test_browser_session_writes_are_not_token_limited(dev_client, monkeypatch):
    monkeypatch.setattr(TokenWriteThrottle, "THROTTLE_RATES", {"token_writes": "1/min"})
    for i in range(3):
        response = dev_client.post(
            "/api/v1/integrations", {"name": f"s{i}"}, content_type="application/json"
        )
        assert response.status_code == 201


def test_login_attempts_over_the_limit_get_429_with_retry_after(client, monkeypatch):
    UserFactory(username="lou")
    monkeypatch.setattr(LoginThrottle, "THROTTLE_RATES", {"login": "3/min"})
    for _ in range(3):
        assert client.post("/login/", {"username": "lou", "password": "wrong"}).status_code == 200
    response = client.post("/login/", {"username": "lou", "password": "pw"})
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert "Too many sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session  # even the right password waits
    assert client.get("/login/").status_code == 200  # the page itself stays readable
