"""Tests: the same settings as local, with a fast password hasher.

`make test` sets DATABASE_URL and CELERY_BROKER_URL to the real PostgreSQL and Redis;
tests that need a real worker start one themselves (tests/integration). Everything else
runs tasks eagerly so a test sees the outcome of what it started.
"""

from .base import *  # noqa: F403
from .base import env

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = False
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
REST_FRAMEWORK = {**REST_FRAMEWORK}  # noqa: F405
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"token_writes": "10000/min", "login": "1000/min"}
# The fixed development key, whatever the environment says: hashes are reproducible.
ILM_AUDIT_KEYS = [DEV_AUDIT_KEY]  # noqa: F405
ILM_AUDIT_LEGACY_EVENTS = 0
ILM_AUDIT_CHECKPOINT_FILE = ""
# Tests clear the cache between cases, and that would flush the Celery broker's Redis
# database: keep the in-memory cache unless a test run names its own (CACHE_URL).
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://ilm-tests")}
# Serve static files from the app's folders (no collectstatic in tests), as in local.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
