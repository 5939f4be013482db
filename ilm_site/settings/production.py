"""Production: secrets come only from the environment; the site refuses to start without."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import DEV_AUDIT_KEY, env

DEBUG = False
SECRET_KEY = env("SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
# Links in mails: the site's first named host over HTTPS, unless ILM_SITE_URL says otherwise.
ILM_SITE_URL = env(
    "ILM_SITE_URL",
    default="https://" + next((h.lstrip(".") for h in ALLOWED_HOSTS if h != "*"), "localhost"),
)
# No default: credentials are never encrypted with the development key in production.
ILM_SECRET_KEYS = env.list("ILM_SECRET_KEYS")
# Runs may not reach private, loopback or link-local addresses unless a host is listed in
# ILM_RUN_ALLOWED_HOSTS.
ILM_RUN_ALLOW_PRIVATE = env.bool("ILM_RUN_ALLOW_PRIVATE", default=False)

# The audit chain's keys: required, never the development key (see base.py).
ILM_AUDIT_KEYS = [key.strip() for key in env.list("ILM_AUDIT_KEY")]
if not ILM_AUDIT_KEYS or any(len(k) < 32 or k == DEV_AUDIT_KEY for k in ILM_AUDIT_KEYS):
    raise ImproperlyConfigured(
        "ILM_AUDIT_KEY must list one or more keys (comma-separated, the signing key first), "
        "each at least 32 characters and not the development key; generate one with "
        "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`."
    )

# Persistent database connections: a new PostgreSQL connection per request (Django's
# default) was a large part of a page's time (make bench, fig 7). Checked before reuse.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)  # noqa: F405
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True  # noqa: F405
# Sessions read from the cache, written through to the database: no session query on a
# page view. Only with a cache every process shares (Redis): with each process's own
# memory, a session signed out in one would live on in the others' caches.
if "locmem" not in CACHES["default"]["BACKEND"].lower():  # noqa: F405
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
