"""Errors as CSV, streamed (the Errors page's download and `/errors.csv`): one row per
error, the masked record as JSON, cells that a spreadsheet would run as formulas quoted."""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from audit.csv_stream import _Echo, cell

from .models import FlowError

HEADER = (
    "id",
    "state",
    "flow",
    "flow_name",
    "step",
    "step_name",
    "kind",
    "http_status",
    "message",
    "record",
    "occurrences",
    "retries",
    "first_seen",
    "last_seen",
    "assignee",
    "resolved_by",
    "resolved_at",
    "comment",
    "run",
)


def rows(errors: QuerySet[FlowError], *, chunk_size: int = 2000) -> Iterator[list[str]]:
    yield list(HEADER)
    columns = (
        "pk",
        "state",
        "flow_lineage_id",
        "flow_name",
        "step_lineage_id",
        "step_name",
        "kind",
        "http_status",
        "message",
        "record",
        "occurrences",
        "retries",
        "first_seen",
        "last_seen",
        "assignee__username",
        "resolved_by",
        "resolved_by_user__username",
        "resolved_at",
        "resolve_comment",
        "run_id",
    )
    for values in errors.values_list(*columns).iterator(chunk_size):
        row = dict(zip(columns, values, strict=True))
        by = row.pop("resolved_by_user__username")
        if row["resolved_by"] == "user":
            row["resolved_by"] = by or "user"
        for key in ("first_seen", "last_seen", "resolved_at"):
            row[key] = row[key].isoformat() if row[key] else None
        yield [cell(v) for v in row.values()]


def csv_response(errors: QuerySet[FlowError], *, filename: str) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in rows(errors)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
