"""Every /api/ answer is JSON in the API's error shape (API.md), whatever went wrong.

DRF already answers its own errors that way. What it never sees is answered by Django
with an HTML page: a path no route matches (`/api/v1/integrations/-1`), a body over
`DATA_UPLOAD_MAX_MEMORY_SIZE`, an unhandled exception (500). This middleware, outermost
but for security, turns any such non-JSON error under /api/ into
`{"detail": ...}` (and `"errors"` for a 400), keeping the status.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse

API_PREFIX = "/api/"

_DETAILS = {
    400: "Bad request.",
    403: "You do not have permission.",
    404: "Not found.",
    405: "Method not allowed.",
    500: "Server error. The error was logged; try again or report it.",
}


def _json_error(status: int, detail: str) -> JsonResponse:
    body: dict = {"detail": detail}
    if status == 400:
        body["errors"] = {"non_field_errors": [detail]}
    return JsonResponse(body, status=status)


class ApiErrorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            not request.path.startswith(API_PREFIX)
            or response.status_code < 400
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        status = response.status_code
        detail = getattr(response, "ilm_api_detail", None) or _DETAILS.get(status)
        if detail is None:
            detail = f"{HTTPStatus(status).phrase}." if status in HTTPStatus else "Error."
        converted = _json_error(status, detail)
        for header in ("Allow", "Retry-After"):
            if header in response:
                converted[header] = response[header]
        return converted

    def process_exception(self, request: HttpRequest, exception: Exception):
        if request.path.startswith(API_PREFIX) and isinstance(exception, RequestDataTooBig):
            limit_mb = settings.DATA_UPLOAD_MAX_MEMORY_SIZE / (1024 * 1024)
            return _json_error(
                400,
                f"The request body is larger than {limit_mb:g} MB, the most this API "
                f"takes (a package may be up to {settings.ILM_PACKAGE_MAX_BYTES // 2**20} MB).",
            )
        return None
