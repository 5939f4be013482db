"""Sign-in limits: per client address (not fooled by X-Forwarded-For) and per username.

Counts live in the cache; with Redis configured every process shares them.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache
from django.test import override_settings

from audit.models import Event
from integrations import throttles
from integrations.throttles import LoginThrottle
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def _wrong(client, username="lou", **extra):
    return client.post("/login/", {"username": username, "password": "wrong"}, **extra)


def test_a_new_x_forwarded_for_per_attempt_is_still_the_same_client(client, monkeypatch):
    monkeypatch.setattr(LoginThrottle, "THROTTLE_RATES", {"login": "3/min"})
    codes = [
        _wrong(client, username=f"user{i}", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code
        for i in range(6)
    ]
    assert codes[:3] == [200, 200, 200]
    assert codes[3:] == [429, 429, 429]


@override_settings(ILM_TRUSTED_PROXIES=1)
def test_behind_one_trusted_proxy_the_client_is_the_last_forwarded_address(client, monkeypatch):
    monkeypatch.setattr(LoginThrottle, "THROTTLE_RATES", {"login": "2/min"})
    # The proxy at 10.0.0.1 appends the real client's address; what the client wrote
    # to the left of it changes with every attempt and must not matter.
    for i in range(2):
        forwarded = f"198.51.100.{i}, 203.0.113.7"
        assert _wrong(client, f"a{i}", HTTP_X_FORWARDED_FOR=forwarded).status_code == 200
    assert _wrong(client, "a3", HTTP_X_FORWARDED_FOR="192.0.2.99, 203.0.113.7").status_code == 429
    # Another client behind the same proxy has its own count.
    assert _wrong(client, "b", HTTP_X_FORWARDED_FOR="203.0.113.8").status_code == 200


def test_client_ip_reads_only_as_many_hops_as_proxies_are_trusted(rf):
    request = rf.get("/", HTTP_X_FORWARDED_FOR="1.1.1.1, 2.2.2.2, 3.3.3.3", REMOTE_ADDR="10.0.0.9")
    with override_settings(ILM_TRUSTED_PROXIES=0):
        assert throttles.client_ip(request) == "10.0.0.9"
    with override_settings(ILM_TRUSTED_PROXIES=1):
        assert throttles.client_ip(request) == "3.3.3.3"
    with override_settings(ILM_TRUSTED_PROXIES=2):
        assert throttles.client_ip(request) == "2.2.2.2"
    with override_settings(ILM_TRUSTED_PROXIES=9):
        assert throttles.client_ip(request) == "1.1.1.1"


@override_settings(ILM_LOGIN_FREE_FAILURES=3, ILM_LOGIN_BACKOFF_BASE_S=30)
def test_wrong_passwords_on_one_username_back_off_from_any_address(client, monkeypatch):
    UserFactory(username="lou", password="right-password")
    now = [1_000_000.0]
    monkeypatch.setattr(throttles.time, "time", lambda: now[0])
    for i in range(3):  # each from another address: the per-address limit never bites
        assert _wrong(client, "LOU" if i else "lou", REMOTE_ADDR=f"192.0.2.{i}").status_code == 200
    response = client.post(
        "/login/", {"username": "lou", "password": "right-password"}, REMOTE_ADDR="192.0.2.50"
    )
    assert response.status_code == 429
    assert response["Retry-After"] == "30"
    assert "Sign-in for this user is paused" in response.content.decode()
    assert "_auth_user_id" not in client.session  # even the right password waits

    now[0] += 31  # the wait is over; one more wrong password doubles it
    assert _wrong(client, "lou", REMOTE_ADDR="192.0.2.60").status_code == 200
    response = _wrong(client, "lou", REMOTE_ADDR="192.0.2.61")
    assert response.status_code == 429 and response["Retry-After"] == "60"

    now[0] += 61
    response = client.post("/login/", {"username": "lou", "password": "right-password"})
    assert response.status_code == 302 and "_auth_user_id" in client.session
    # A successful sign-in forgets the streak: the next mistake is free again.
    client.logout()
    assert _wrong(client, "lou").status_code == 200


@override_settings(ILM_LOGIN_FREE_FAILURES=2)
def test_refused_attempts_during_backoff_are_not_audited_as_failures(client):
    UserFactory(username="lou")
    for _ in range(2):
        _wrong(client, "lou")
    before = Event.objects.filter(action="sign_in_failed").count()
    assert _wrong(client, "lou").status_code == 429
    # The password was never checked, so no failed sign-in is recorded for it.
    assert Event.objects.filter(action="sign_in_failed").count() == before == 2


def test_another_username_is_not_held_back_by_someone_elses_failures(client, settings):
    settings.ILM_LOGIN_FREE_FAILURES = 2
    UserFactory(username="ann", password="ann-password")
    for i in range(2):
        _wrong(client, "lou", REMOTE_ADDR=f"192.0.2.{i}")
    assert _wrong(client, "lou", REMOTE_ADDR="192.0.2.9").status_code == 429
    response = client.post("/login/", {"username": "ann", "password": "ann-password"})
    assert response.status_code == 302


def _cache_backend(**env) -> dict:
    code = (
        "import django, json; from django.conf import settings; django.setup(); "
        "print(json.dumps(settings.CACHES['default']))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("CACHE_URL", "CELERY_BROKER_URL")}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "DJANGO_SETTINGS_MODULE": "ilm_site.settings.base", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def test_counts_live_in_redis_whenever_the_site_runs_with_redis():
    # Per-process memory would give each gunicorn worker its own count (39 of 50 passed).
    assert _cache_backend()["BACKEND"].endswith("LocMemCache")
    with_broker = _cache_backend(CELERY_BROKER_URL="redis://127.0.0.1:6379/5")
    assert with_broker["BACKEND"] == "django_redis.cache.RedisCache"
    assert with_broker["LOCATION"] == "redis://127.0.0.1:6379/5"
    with_cache = _cache_backend(
        CELERY_BROKER_URL="redis://127.0.0.1:6379/5", CACHE_URL="redis://127.0.0.1:6379/7"
    )
    assert with_cache["LOCATION"] == "redis://127.0.0.1:6379/7"
