"""The production settings, as the site-ceiling figure (fig 7) serves them with gunicorn.

`ilm_site.settings.production` unchanged (DEBUG off, cached templates, hashed static
files, PostgreSQL), except what plain HTTP on 127.0.0.1 needs (a TLS proxy does it in
production: no HTTPS redirect, cookies not marked Secure) and one URL more: a trivial
Django view, the baseline every page is measured against (the same gunicorn, middleware
and URL resolver, no session, no database, no template). The cache is Redis, as the
deployment docs require under gunicorn (CACHE_URL, set by fig_load.py), under a prefix of
the run's own.
"""

import os

from ilm_site.settings.production import *  # noqa: F403

ROOT_URLCONF = "tests.bench.site_urls"
SECURE_SSL_REDIRECT = False
SECURE_HSTS_SECONDS = 0
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
STATIC_ROOT = os.environ["BENCH_STATIC_ROOT"]
CACHES["default"]["KEY_PREFIX"] = os.environ["BENCH_CACHE_PREFIX"]  # noqa: F405
