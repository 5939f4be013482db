"""The audit log as CSV, streamed: one row per field change, read in chunks.

The rows are produced while the response is sent (StreamingHttpResponse over a
server-side cursor), so a download of a million events holds one chunk in memory, not
the whole log. An event without field changes (a sign-in, an ILM step) is one row with
empty field, old and new.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

import orjson
from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from .models import Event

HEADER = (
    "time",
    "source",
    "user",
    "integration_id",
    "integration",
    "resource_type",
    "resource_id",
    "resource_name",
    "action",
    "operation_id",
    "revision_id",
    "field",
    "old",
    "new",
)
_COLUMNS = (
    "at",
    "source",
    "username",
    "integration_id",
    "integration_name",
    "resource_type",
    "resource_id",
    "resource_name",
    "action",
    "operation_id",
    "revision_id",
    "changes",
)
# Spreadsheets run cells that start with these as formulas; a leading quote stops that.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    def write(self, value: str) -> str:
        return value


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (dict, list)):
        text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    else:
        text = str(value)
    if text.startswith(_FORMULA_START) and not _is_number(text):
        text = "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def rows(events: QuerySet[Event], *, chunk_size: int = 2000) -> Iterator[list[str]]:
    yield list(HEADER)
    for values in events.order_by("-at", "-id").values_list(*_COLUMNS).iterator(chunk_size):
        at, *middle, changes = values
        head = [at.isoformat(), *(cell(v) for v in middle)]
        if not changes:
            yield [*head, "", "", ""]
            continue
        for change in changes:
            yield [
                *head,
                cell(change.get("field")),
                cell(change.get("old")),
                cell(change.get("new")),
            ]


def csv_response(events: QuerySet[Event], *, filename: str) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in rows(events)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
