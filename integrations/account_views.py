"""The account page: who you are, and your API tokens (create — shown once — and revoke)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from .models import ApiToken
from .permissions import allowed_actions
from .services import api_token_create, api_token_revoke


def _profile(request: HttpRequest, *, new_token: str = "", error: str = "", status: int = 200):
    tokens = request.user.api_tokens.order_by("revoked_at", "-created_at")
    return render(
        request,
        "account/profile.html",
        {
            "tokens": tokens,
            "active_count": sum(1 for t in tokens if t.is_active),
            "new_token": new_token,
            "error": error,
            "name": request.POST.get("name", "") if error else "",
            "perms_ilm": allowed_actions(request.user),
        },
        status=status,
    )


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    return _profile(request)


@login_required
@require_POST
def token_create(request: HttpRequest) -> HttpResponse:
    try:
        token, raw = api_token_create(user=request.user, name=request.POST.get("name", ""))
    except ValidationError as exc:
        return _profile(request, error=" ".join(exc.messages), status=400)
    # Rendered, not redirected: the raw token exists only in this response.
    response = _profile(request, new_token=raw)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    # Someone else's token is "not found": its existence is not told.
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    api_token_revoke(token=token)
    messages.success(request, f"Token “{token.name}” revoked; scripts using it now get 401.")
    return redirect("account:profile")
