"""Rate limits: token-authenticated API writes, and sign-in attempts.

Both answer 429 with `Retry-After` (seconds). Rates come from settings
(`REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`: `token_writes`, `login`); counts live in the
Django cache, so several gunicorn processes share them when the cache is shared (Redis).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from rest_framework.throttling import SimpleRateThrottle

from .models import ApiToken

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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

    def get_cache_key(self, request, view) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def login_rate_limited(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap the login view: too many POSTs from one address → 429 with Retry-After."""

    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method == "POST":
            throttle = LoginThrottle()
            if not throttle.allow_request(request, None):
                wait = max(1, math.ceil(throttle.wait() or 1))
                response = TemplateResponse(
                    request,
                    "account/login_rate_limited.html",
                    {"retry_after": wait, "next": request.POST.get("next", "")},
                    status=429,
                )
                response["Retry-After"] = str(wait)
                return response
        return view(request, *args, **kwargs)

    wrapped.__name__ = getattr(view, "__name__", "login")
    wrapped.__doc__ = view.__doc__
    return wrapped
