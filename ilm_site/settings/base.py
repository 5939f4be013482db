"""Settings for every environment, all driven by environment variables (django-environ).

With nothing set the site runs on an SQLite file with Celery in eager mode, so a fresh
machine needs no services. `DATABASE_URL` and `CELERY_BROKER_URL` switch to PostgreSQL
and Redis.
"""

from pathlib import Path

import environ
from celery.schedules import crontab
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default="insecure-local-development-key-do-not-use-in-production")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "simple_history",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "pgtrigger",
    "integrations",
    "revisions",
    "audit",
    "runs",
    "ilm_site",  # site-level commands (load_demo)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "ilm_site.api_errors.ApiErrorMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "ilm_site.permissions_policy.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "audit.middleware.AuditContextMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

# Content-Security-Policy: everything from this site only; no inline script or style
# except what a template marks with the request's nonce (the API docs page's one
# <style>). Images may be data: URLs (Swagger UI's icons). Nothing may frame the site.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
# Browser features the site may use: none of these.
ILM_PERMISSIONS_POLICY = {
    feature: []
    for feature in (
        "accelerometer",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "usb",
    )
}

ROOT_URLCONF = "ilm_site.urls"
WSGI_APPLICATION = "ilm_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "integrations.context_processors.navigation",
                "revisions.context_processors.approvals",
                "runs.context_processors.notification_bell",
            ],
        },
    }
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=0))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "integrations.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "integrations:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]


def _cache_config() -> dict:
    """Redis whenever the site has Redis, so rate-limit counts are shared by every process.

    `CACHE_URL` wins; otherwise a Redis `CELERY_BROKER_URL` is used for the cache too
    (keys prefixed `ilm`; nothing in the site ever clears the cache, which would flush
    that Redis database). Without either: the in-memory cache of the embedded site.
    """
    if env("CACHE_URL", default=""):
        return env.cache("CACHE_URL")
    broker = env("CELERY_BROKER_URL", default="")
    if broker.startswith(("redis://", "rediss://")):
        return {**env.cache_url_config(broker), "KEY_PREFIX": "ilm"}
    return env.cache_url_config("locmemcache://ilm")


CACHES = {"default": _cache_config()}


# Email (notifications): one mailer (Django's MAILERS), described by `EMAIL_URL` as
# django-environ reads it: smtp+tls://user:pass@host:587 (STARTTLS), smtp+ssl://…:465,
# smtp://host:25, consolemail://, filemail:///path. By default the local mail server;
# local development prints mails on the console (local.py).
def mailer(url: str) -> dict:
    """A MAILERS entry from an email URL."""
    parsed = env.email_url_config(url)
    backend = parsed["EMAIL_BACKEND"]
    if backend.endswith("smtp.EmailBackend"):
        options = {
            "host": parsed.get("EMAIL_HOST") or "localhost",
            "port": parsed.get("EMAIL_PORT") or 25,
            "username": parsed.get("EMAIL_HOST_USER") or "",
            "password": parsed.get("EMAIL_HOST_PASSWORD") or "",
            "use_tls": bool(parsed.get("EMAIL_USE_TLS")),
            "use_ssl": bool(parsed.get("EMAIL_USE_SSL")),
            "timeout": env.int("EMAIL_TIMEOUT", default=10),
        }
    elif backend.endswith("filebased.EmailBackend"):
        options = {"file_path": parsed["EMAIL_FILE_PATH"]}
    else:
        options = {}
    return {"BACKEND": backend, "OPTIONS": options}


MAILERS = {"default": mailer(env("EMAIL_URL", default="smtp://localhost:25"))}
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="ILM <ilm@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Where the site is reached from outside: links in mails are built on it.
ILM_SITE_URL = env("ILM_SITE_URL", default="http://127.0.0.1:8000")

# Requests reach the site through this many reverse proxies, each appending the address
# it got the request from to X-Forwarded-For. 0: the socket's address is the client's,
# and X-Forwarded-For (which any client can write) is ignored.
ILM_TRUSTED_PROXIES = env.int("ILM_TRUSTED_PROXIES", default=0)
# Sign-in backoff per username: after this many failures in a row, wait BASE seconds,
# doubling with each further failure, at most MAX seconds.
ILM_LOGIN_FREE_FAILURES = env.int("ILM_LOGIN_FREE_FAILURES", default=5)
ILM_LOGIN_BACKOFF_BASE_S = env.int("ILM_LOGIN_BACKOFF_BASE_S", default=30)
ILM_LOGIN_BACKOFF_MAX_S = env.int("ILM_LOGIN_BACKOFF_MAX_S", default=15 * 60)

# Celery: no broker configured means eager mode, so one command runs everything.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Redis redelivers an unacknowledged task only after this; keep it above the longest task.
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=7200),
}
CELERY_TIMEZONE = "UTC"
# Audit log (audit/chain.py, audit/checkpoints.py). The keys that sign the hash chain live
# outside the database: a comma-separated list, the first signs new events, the others are
# retired keys kept to verify older ones. Local and test runs share a fixed development
# key; production refuses to start without its own (production.py).
DEV_AUDIT_KEY = "ilm-development-audit-key-not-secret-never-use-in-production"
ILM_AUDIT_KEYS = env.list("ILM_AUDIT_KEY", default=[DEV_AUDIT_KEY])
# Events written before the chain had a key: only this many, at the start of the log.
ILM_AUDIT_LEGACY_EVENTS = env.int("ILM_AUDIT_LEGACY_EVENTS", default=0)
# Checkpoints of the chain's head (JSON lines) go here and to logger ilm.audit.checkpoint.
ILM_AUDIT_CHECKPOINT_FILE = env("ILM_AUDIT_CHECKPOINT_FILE", default="")
ILM_AUDIT_CHECKPOINT_SECONDS = env.int("ILM_AUDIT_CHECKPOINT_SECONDS", default=900)
# The database role the site runs as (not the one that owns the tables and migrates):
# migration 0003 of audit revokes its rights to rewrite the audit log.
ILM_DB_RUNTIME_ROLE = env("ILM_DB_RUNTIME_ROLE", default="")

CELERY_BEAT_SCHEDULE = {
    "scheduled-snapshots": {
        "task": "revisions.tasks.scheduled_snapshots",
        "schedule": crontab(minute=5),
    },
    "audit-checkpoint": {
        "task": "audit.tasks.audit_checkpoint",
        "schedule": float(ILM_AUDIT_CHECKPOINT_SECONDS),
    },
    # Every minute: enqueue the flow runs whose cron schedule is due (read fresh each
    # tick, so a schedule edit takes effect without a restart).
    "runs-tick": {
        "task": "runs.tasks.runs_tick",
        "schedule": crontab(),
    },
    # Every minute: evaluate the alert rules (runs/alerts.py); a run that ends also has its
    # flow's rules evaluated at once, so this catches time passing (no success for H hours,
    # the last hour's p95) and mutes that end.
    "alerts-evaluate": {
        "task": "runs.tasks.alerts_evaluate",
        "schedule": crontab(),
    },
    "runs-prune": {
        "task": "runs.tasks.runs_prune_old",
        "schedule": crontab(minute=17, hour=3),
    },
    "errors-prune-retry-data": {
        "task": "runs.tasks.errors_prune_retry_data",
        "schedule": crontab(minute=37, hour=3),
    },
}

SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True
SIMPLE_HISTORY_REVERT_DISABLED = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "integrations.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["integrations.json_input.JSONInputParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "ilm_site.api_errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "token_writes": env("ILM_API_WRITE_RATE", default="600/min"),
        "login": env("ILM_LOGIN_RATE", default="10/min"),
    },
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ILM API",
    "DESCRIPTION": "Integration Lifecycle Management, REST API version 1.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema maps every endpoint, field and state: of use only to those who may
    # call them, so it needs a signed-in user (session) or a token, like the API.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # One name for the ours/theirs choice, used by resolutions and by the changes view.
    "ENUM_NAME_OVERRIDES": {
        "ChooseEnum": "revisions.models.Choice",
        "ErrorKindEnum": "runs.models.ErrorKind",
    },
}

# JSON input (API bodies, form fields, packages, cache files) nests at most this deep;
# see integrations/json_input.py for why one limit, and why this one.
ILM_JSON_MAX_DEPTH = 64

# A package (revisions/packages.py) may be this large; request bodies may carry one
# plus the request's own fields, so that is the most any request body may be.
ILM_PACKAGE_MAX_BYTES = 20 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = ILM_PACKAGE_MAX_BYTES + 1024 * 1024

# Clone copies lookup-cache entries only below this total size.
ILM_CLONE_CACHE_DATA_LIMIT_BYTES = 5 * 1024 * 1024
# Serve the demo systems under /demo-systems/ (stand-ins for a storefront, ERP, carrier,
# CRM) that the demo integrations run against; `make run` turns them on.
ILM_DEMO_SYSTEMS = env.bool("ILM_DEMO_SYSTEMS", default=False)

# Connection credentials are encrypted at rest with these Fernet keys (comma-separated):
# the first encrypts, every one decrypts. Rotate: put a new key first, run
# `manage.py credentials_reencrypt`, then drop the old one. The default is a fixed key for
# local development and tests only; production settings require the variable.
ILM_DEV_SECRET_KEY = "ZGV2LW9ubHktaWxtLWtleS1ub3QtZm9yLXByb2R1Y3Q="
ILM_SECRET_KEYS = env.list("ILM_SECRET_KEYS", default=[ILM_DEV_SECRET_KEY])

# Flow runs. Outbound requests of a run go through an SSRF guard: loopback, link-local and
# private ranges are refused unless allowed here (local and test allow them so the demo
# systems and test servers on 127.0.0.1 work; production refuses them).
ILM_RUN_ALLOW_PRIVATE = env.bool("ILM_RUN_ALLOW_PRIVATE", default=True)
ILM_RUN_ALLOWED_HOSTS = env.list("ILM_RUN_ALLOWED_HOSTS", default=[])
# Hook limits per call, and what a run keeps: first errors, samples, days of runs kept.
ILM_RUN_HOOK_TIME_LIMIT_MS = env.int("ILM_RUN_HOOK_TIME_LIMIT_MS", default=1000)
ILM_RUN_HOOK_MEMORY_LIMIT_MB = env.int("ILM_RUN_HOOK_MEMORY_LIMIT_MB", default=64)
ILM_RUN_MAX_ERRORS = 1000
ILM_RUN_SAMPLE_SIZE = env.int("ILM_RUN_SAMPLE_SIZE", default=20)
# Record fields masked in stored errors and samples (besides anything named like a secret).
ILM_RUN_MASKED_FIELDS = env.list(
    "ILM_RUN_MASKED_FIELDS",
    default=["password", "token", "secret", "api_key", "authorization", "card_number", "cvv"],
)
ILM_RUN_RETENTION_DAYS = env.int("ILM_RUN_RETENTION_DAYS", default=30)
# Error management: retry data (the failing record, encrypted) is kept for the most recent
# this many errors of each step; older errors keep their summary (`prune_error_retry_data`).
ILM_ERROR_RETRY_DATA_PER_STEP = env.int("ILM_ERROR_RETRY_DATA_PER_STEP", default=20_000)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="WARNING")},
    # Checkpoints are a record kept outside the database: always logged, whatever LOG_LEVEL.
    "loggers": {"ilm.audit.checkpoint": {"level": "INFO"}},
}
