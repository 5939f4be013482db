"""Bearer-token authentication for the API (docs/api.md, "Auth").

`Authorization: Bearer <token>`: the token is looked up by its hash through
`integrations.services.api_token_authenticate`; a missing, unknown or revoked token is a
401 with a `WWW-Authenticate: Bearer` challenge. `token_authenticated` tells the audit
context the middleware opened before DRF knew the user who the token belongs to, so
history rows name them.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from .services import api_token_authenticate
from .signals import token_authenticated


class BearerTokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None  # not ours: session authentication may still apply
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header; send 'Authorization: Bearer <token>'."
            )
        try:
            raw = header[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(
                "The token contains invalid characters."
            ) from None
        token = api_token_authenticate(raw)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        token_authenticated.send(sender=type(self), user=token.user, token=token)
        # Throttles tell token writes from browser writes by this.
        request.api_token = token
        return token.user, token

    def authenticate_header(self, request) -> str:
        # Its presence turns DRF's "not authenticated" into 401 rather than 403.
        return f'{self.keyword} realm="api"'


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Names the scheme in the OpenAPI schema so clients know to send a bearer token."""

    target_class = BearerTokenAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(
            header_name="Authorization", token_prefix="Bearer"
        )
