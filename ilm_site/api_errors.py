"""Every /api/ answer is JSON in the API's error shape (docs/api.md), whatever went wrong.

DRF's errors are put in that shape by `exception_handler` (the REST_FRAMEWORK setting).
What DRF never sees is answered by Django with an HTML page: a path no route matches
(`/api/v1/integrations/-1`), a body over `DATA_UPLOAD_MAX_MEMORY_SIZE`, an unhandled
exception (500). This middleware, outermost but for security, turns any such non-JSON
error under /api/ into `{"detail": ...}` (and `"errors"` for a 400), keeping the status.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions
from rest_framework import status as drf_status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from revisions.models import InvalidTransition

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


def exception_handler(exc, context):
    """DRF's errors in the documented shape (REST_FRAMEWORK["EXCEPTION_HANDLER"])."""
    if isinstance(exc, InvalidTransition):
        # A status move the declared transitions refuse is a state conflict, not a crash.
        return Response({"detail": str(exc)}, status=drf_status.HTTP_409_CONFLICT)
    # Engine refusals (revisions.errors) carry their own status: 409, or 403 for approval.
    http_status = getattr(exc, "http_status", None)
    if isinstance(http_status, int) and not isinstance(exc, exceptions.APIException):
        return Response({"detail": str(exc)}, status=http_status)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    if isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or "You do not have permission.")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = _flat_errors(
            response.data
            if isinstance(response.data, dict)
            else {"non_field_errors": response.data}
        ) or {"non_field_errors": ["Invalid input."]}
        key = "non_field_errors" if "non_field_errors" in errors else next(iter(errors))
        detail = errors[key][0]
        if "." in key or "[" in key:  # a nested field: say where
            detail = f"{key}: {detail}"
        response.data = {"detail": detail, "errors": errors}
        response.status_code = drf_status.HTTP_400_BAD_REQUEST
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"detail": str(response.data["detail"])}
    return response


def _flat_errors(errors, prefix: str = "") -> dict[str, list[str]]:
    """`{field: [messages]}` (docs/api.md) from DRF's nested errors: `resolutions[0].lineage_id`."""
    flat: dict[str, list[str]] = {}

    def key_of(key) -> str:
        key = str(key)
        if not prefix:
            return key
        return f"{prefix}[{key}]" if key.isdigit() else f"{prefix}.{key}"

    if isinstance(errors, dict):
        for key, value in errors.items():
            flat.update(_flat_errors(value, key_of(key)))
    elif isinstance(errors, list | tuple):
        for i, item in enumerate(errors):
            if isinstance(item, dict | list | tuple):
                flat.update(_flat_errors(item, key_of(i)))
            else:
                flat.setdefault(prefix or "non_field_errors", []).append(str(item))
    elif errors is not None:
        flat.setdefault(prefix or "non_field_errors", []).append(str(errors))
    return flat
