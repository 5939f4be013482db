"""Production keeps database connections and reads sessions from a shared cache only."""

import hashlib
import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings

SHOW = (
    "from django.conf import settings as s; d = s.DATABASES['default'];"
    " print(d['CONN_MAX_AGE'], d['CONN_HEALTH_CHECKS'], s.SESSION_ENGINE)"
)


def _production(env: dict[str, str]) -> str:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ILM_", "DJANGO_", "DATABASE_", "SECRET_", "ALLOWED_", "CACHE_"))
        and k not in ("CELERY_BROKER_URL", "CONN_MAX_AGE")
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SHOW],
        env={
            **base,
            "DJANGO_SETTINGS_MODULE": "ilm_site.settings.production",
            "SECRET_KEY": "test-only-" + hashlib.sha256(b"x").hexdigest(),
            "ALLOWED_HOSTS": "ilm.example.com",
            "ILM_SECRET_KEYS": "0PnmEy1wXJ3e6cXoTxCl8_aPYv6cR4o0N6k5t0MEN1c=",
            "ILM_AUDIT_KEY": "k" * 40,
            **env,
        },
        cwd=django_settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1].split()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, ["60", "True", "django.contrib.sessions.backends.db"]),
        (
            {"CACHE_URL": "redis://127.0.0.1:6379/4", "CONN_MAX_AGE": "5"},
            ["5", "True", "django.contrib.sessions.backends.cached_db"],
        ),
    ],
)
def test_connections_persist_and_sessions_use_the_cache_only_when_it_is_shared(env, expected):
    assert _production(env) == expected
