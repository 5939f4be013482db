"""The base of every /api/v1 endpoint (docs/api.md): list shape, write rate, error answers.

It lives in the lowest app that has endpoints, so every app's API can build on it without
importing the site; the exception handler that turns errors into the documented shape is
the site's (`ilm_site.api_errors.exception_handler`).
"""

from typing import Any

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from .throttles import TokenWriteThrottle


class Pagination(PageNumberPagination):
    """`{"results": [...], "next": url-or-null}` (docs/api.md); `?page=` and `?page_size=`."""

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
    """Documents the error answers every endpoint can give, in their docs/api.md shapes."""

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


def validated(serializer_class: type[serializers.Serializer], data: Any, **kwargs: Any) -> Any:
    """The request data checked by `serializer_class` (400 in the documented shape
    otherwise), as plain dicts: one dict, or a list with many=True."""
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    if kwargs.get("many"):
        return [dict(item) for item in serializer.validated_data]
    return dict(serializer.validated_data)
