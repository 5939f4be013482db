"""API error shape (API.md): {"detail": ..., "errors": {field: [messages]}} for bad input."""

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.openapi import AutoSchema
from rest_framework import exceptions, serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from integrations.throttles import TokenWriteThrottle


def exception_handler(exc, context):
    from revisions.models import InvalidTransition

    if isinstance(exc, InvalidTransition):
        # A status move the declared transitions refuse is a state conflict, not a crash.
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
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
        response.status_code = status.HTTP_400_BAD_REQUEST
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"detail": str(response.data["detail"])}
    return response


def _flat_errors(errors, prefix: str = "") -> dict[str, list[str]]:
    """`{field: [messages]}` (API.md) from DRF's nested errors: `resolutions[0].lineage_id`."""
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


def error(detail: str, code: int) -> Response:
    return Response({"detail": detail}, status=code)


class Pagination(PageNumberPagination):
    """`{"results": [...], "next": url-or-null}` (API.md); `?page=` and `?page_size=`."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_paginated_response(self, data):
        return Response({"results": data, "next": self.get_next_link()})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {
                "results": schema,
                "next": {"type": "string", "format": "uri", "nullable": True},
            },
        }


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class BadRequestSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class ApiSchema(AutoSchema):
    """Documents the error answers every endpoint can give, in their API.md shapes."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        writes = self.method not in ("GET", "HEAD", "OPTIONS")
        errors: dict[str, tuple[type[serializers.Serializer], str]] = {
            "401": (ErrorSerializer, "No token, or a revoked one."),
            "403": (ErrorSerializer, "Your role or access does not allow this."),
        }
        if self.path_regex and "{" in self.path:
            errors["404"] = (ErrorSerializer, "Not found, or not visible to you.")
        if writes or self._has_query_filters():
            errors["400"] = (BadRequestSerializer, "Bad input; nothing was changed.")
        if writes:
            errors["409"] = (ErrorSerializer, "State conflict; nothing was changed.")
            errors["429"] = (ErrorSerializer, "Too many writes; see Retry-After.")
        for code, (serializer, description) in errors.items():
            if code not in responses:
                response = self._get_response_for_code(serializer, code)
                response["description"] = description
                responses[code] = response
        return responses

    def _has_query_filters(self) -> bool:
        return bool(getattr(self.view, "filterset_class", None))


class ApiView(GenericAPIView):
    """Base of every /api/v1 endpoint: the list shape, the token-write rate limit, errors."""

    pagination_class = Pagination
    throttle_classes = [TokenWriteThrottle]
    schema = ApiSchema()
