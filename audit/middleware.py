from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from .context import Source, acting


class AuditContextMiddleware:
    """Opens the audit context of a request: its user, source (ui/api) and request id."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        source = Source.API if request.path.startswith("/api/") else Source.UI
        user = getattr(request, "user", None)
        # The session user is known now; token users are set by the authentication class.
        user = user if user is not None and user.is_authenticated else None
        with acting(user, source, remote_addr=request.META.get("REMOTE_ADDR")) as ctx:
            request.audit_request_id = ctx.request_id
            return self.get_response(request)
