"""Rate limits: token-authenticated API writes, and sign-in attempts.

All answer 429 with `Retry-After` (seconds). Counts live in the Django cache, which the
settings make Redis whenever the site runs with Redis (`CACHE_URL` or
`CELERY_BROKER_URL`), so every gunicorn process and machine shares them; the in-memory
cache (no Redis configured) counts per process, fine for the one-process embedded site.

Sign-in is limited twice:
- per client address (`login` rate), the address taken from the socket, or from
  `X-Forwarded-For` only as far as `ILM_TRUSTED_PROXIES` proxies vouch for it: a header
  the client writes itself must not make each attempt look like a new client;
- per username, with backoff: after `ILM_LOGIN_FREE_FAILURES` failed attempts on one
  username, that username waits `ILM_LOGIN_BACKOFF_BASE_S` seconds, doubling with each
  further failure up to `ILM_LOGIN_BACKOFF_MAX_S`, from whatever addresses the attempts
  come. While it waits, even the right password is refused (otherwise the wait would
  tell a guesser nothing); a successful sign-in clears the count.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from rest_framework.throttling import SimpleRateThrottle

from .models import ApiToken

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def client_ip(request) -> str:
    """The client's address: the socket's, or the one the trusted proxies vouch for.

    With `ILM_TRUSTED_PROXIES = N` (N proxies in front of the site, each appending the
    address it got the request from), the client is the Nth address from the right of
    `X-Forwarded-For`; anything left of it was written by the client and is ignored.
    """
    meta = getattr(request, "META", {})
    remote = meta.get("REMOTE_ADDR", "") or ""
    trusted = int(getattr(settings, "ILM_TRUSTED_PROXIES", 0) or 0)
    forwarded = meta.get("HTTP_X_FORWARDED_FOR", "")
    if trusted <= 0 or not forwarded:
        return remote
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    if not hops:
        return remote
    return hops[-min(trusted, len(hops))]


class TokenWriteThrottle(SimpleRateThrottle):
    """Writes made with a bearer token, counted per user (all their tokens together)."""

    scope = "token_writes"

    def get_cache_key(self, request, view) -> str | None:
        if request.method in SAFE_METHODS or not isinstance(request.auth, ApiToken):
            return None  # reads and browser (session) writes are not limited here
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class LoginThrottle(SimpleRateThrottle):
    """Sign-in attempts (POSTs to the login page), counted per client address."""

    scope = "login"

    def get_ident(self, request) -> str:
        return client_ip(request)

    def get_cache_key(self, request, view) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def _username_key(username: str, what: str) -> str:
    # Hashed: usernames are user input, cache keys must stay short and plain.
    digest = hashlib.sha256(username.strip().casefold().encode()).hexdigest()[:32]
    return f"ilm-login-{what}-{digest}"


def login_wait_for(username: str) -> int:
    """Seconds this username must still wait before its next sign-in attempt (0: none)."""
    if not username.strip():
        return 0
    until = cache.get(_username_key(username, "until"))
    if not until:
        return 0
    return max(0, math.ceil(until - time.time()))


def login_failure_record(username: str) -> int:
    """Count a failed sign-in on this username; returns the backoff now in force (s)."""
    if not username.strip():
        return 0
    key = _username_key(username, "failures")
    # A failure streak is forgotten a day after its last attempt.
    window = 24 * 3600
    cache.add(key, 0, window)
    try:
        failures = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, window)
        failures = 1
    cache.touch(key, window)
    free = settings.ILM_LOGIN_FREE_FAILURES
    if failures < free:
        return 0
    wait = min(
        settings.ILM_LOGIN_BACKOFF_MAX_S,
        settings.ILM_LOGIN_BACKOFF_BASE_S * 2 ** (failures - free),
    )
    cache.set(_username_key(username, "until"), time.time() + wait, wait)
    return wait


def login_failures_clear(username: str) -> None:
    cache.delete_many([_username_key(username, "failures"), _username_key(username, "until")])


def _refused(request: HttpRequest, wait: int, *, per_username: bool) -> HttpResponse:
    response = TemplateResponse(
        request,
        "account/login_rate_limited.html",
        {
            "retry_after": wait,
            "per_username": per_username,
            "next": request.POST.get("next", ""),
        },
        status=429,
    )
    response["Retry-After"] = str(wait)
    return response


def login_rate_limited(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap the login view: per-address limit and per-username backoff → 429 with Retry-After."""

    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        throttle = LoginThrottle()
        if not throttle.allow_request(request, None):
            return _refused(request, max(1, math.ceil(throttle.wait() or 1)), per_username=False)
        username = str(request.POST.get("username", ""))[:300]
        wait = login_wait_for(username)
        if wait:
            return _refused(request, wait, per_username=True)
        response = view(request, *args, **kwargs)
        if getattr(request, "user", None) is not None and request.user.is_authenticated:
            login_failures_clear(username)
        else:
            login_failure_record(username)
        return response

    wrapped.__name__ = getattr(view, "__name__", "login")
    wrapped.__doc__ = view.__doc__
    return wrapped
