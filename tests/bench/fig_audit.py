"""Figure 6: the audit log at 1,000,000 events (issue 5's benchmark).

- The global audit page filtered to one integration and one resource type, first page,
  against the bare indexed SQL for the same page of rows.
- The CSV download of one integration: 100,000 rows (one per field change), streamed; its
  time and the peak of Python memory while it streams (tracemalloc, a separate pass, as
  tracing slows the code down). Half the rows again (a date range) shows whether memory
  grows with the rows.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.bench import audit_events
from tests.bench.measure import hot_spots, timed

RESOURCE_TYPE = "step"


def _get(client: Client, url: str) -> Any:
    response = client.get(url)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} answered {response.status_code}")
    return response


def _consume(response: Any) -> tuple[int, int]:
    """Bytes and lines of a (streamed) response, read chunk by chunk as a client would."""
    size = lines = 0
    if response.streaming:
        for chunk in response.streaming_content:
            size += len(chunk)
            lines += chunk.count(b"\n")
    else:
        size, lines = len(response.content), response.content.count(b"\n")
    return size, lines


def _peak_mb(client: Client, url: str) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        _consume(client.get(url))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 1e6


def fig6_audit(ctx: Any) -> None:
    """audit log at 1,000,000 events: filtered list vs bare SQL; CSV of 100,000 rows"""
    from audit.models import Event

    if not audit_events.available():
        raise RuntimeError("audit.models.Event is not there yet")
    targets = audit_events.integrations()
    total = Event.objects.count()
    target = targets[0]
    client = Client()
    client.force_login(ctx.admin)

    page_url = f"{reverse('audit:log')}?integration={target.pk}&resource_type={RESOURCE_TYPE}"
    first = _get(client, page_url)
    page_size = _page_size(first)
    table = Event._meta.db_table
    bare_sql = (
        f'SELECT * FROM "{table}" WHERE integration_id = %s AND resource_type = %s'
        " ORDER BY at DESC, id DESC LIMIT %s"
    )

    def bare() -> list[tuple]:
        with connection.cursor() as cursor:
            cursor.execute(bare_sql, [target.pk, RESOURCE_TYPE, page_size])
            return cursor.fetchall()

    # The floor under the page: a signed-in page with the same layout, navigation and
    # middleware and almost nothing of its own (one small query), measured in turn.
    floor_url = reverse("account:profile")
    _get(client, floor_url)

    page_t, sql_t, floor_t, queries = [], [], [], []
    for _ in range(max(7, 2 * ctx.runs + 1)):
        gc.collect()
        with CaptureQueriesContext(connection) as captured:
            t, _ = timed(lambda: _get(client, page_url))
        page_t.append(t)
        queries.append(len(captured.captured_queries))
        gc.collect()
        sql_t.append(timed(bare)[0])
        gc.collect()
        floor_t.append(timed(lambda: _get(client, floor_url))[0])

    page_profile = hot_spots(lambda: _get(client, page_url))

    csv_url = _csv_url(target)
    csv_t, csv_rows = [], []
    for _ in range(ctx.runs):
        gc.collect()
        t, (_, lines) = timed(lambda: _consume(client.get(csv_url)))
        csv_t.append(t)
        csv_rows.append(lines - 1)  # the header
    peak_full = _peak_mb(client, csv_url)
    half_url = _csv_url(target, half=True)
    _, (_, half_lines) = timed(lambda: _consume(client.get(half_url)))
    peak_half = _peak_mb(client, half_url)

    ctx.method.append(
        f"Fig 6: {total:,} audit events in the table ({len(targets)} generated integrations"
        f" of {total // len(targets):,} events, two field changes each; tests/bench/"
        "audit_events.py). List: the global audit page (administrator) filtered to one"
        f" integration and resource type '{RESOURCE_TYPE}', first page of {page_size} rows,"
        " through Django's test client; bare SQL: the same WHERE, ORDER BY at DESC, id DESC"
        f" LIMIT {page_size} on a cursor; floor: the account page (same layout, navigation,"
        " session and middleware, one small query of its own), in turn with the list. CSV:"
        " the audit CSV of that integration"
        f" ({csv_rows[0]:,} rows), read to the end; peak = tracemalloc peak of Python"
        f" memory during one download; the same for half the rows ({half_lines - 1:,})."
    )
    ctx.pages["audit page (1 integration + type)"] = page_url
    page_row = ctx.row(
        "6",
        f"audit list page, 1 integration + type, at {total:,} events",
        "s",
        page_t,
        goal="≤ 25 ms",
        check=lambda v: v <= 0.025,
    )
    ctx.row("6", "… queries", "queries", queries)
    ctx.row("6", "bare indexed SQL, same page", "s", sql_t)
    ctx.row("6", "… floor: account page (layout + navigation), same client", "s", floor_t)
    ctx.row(
        "6",
        "list page time / bare SQL time",
        "×",
        [p / s for p, s in zip(page_t, sql_t, strict=True)],
    )
    from tests.bench.figures import explain_miss

    explain_miss(ctx, page_row, "fig6-audit-page", page_profile)
    ctx.row("6", f"CSV download, {csv_rows[0]:,} rows", "s", csv_t)
    ctx.row("6", "CSV rows/s", "rows/s", [r / t for r, t in zip(csv_rows, csv_t, strict=True)])
    ctx.row(
        "6",
        f"CSV peak Python memory ({csv_rows[0]:,} rows)",
        "MB",
        [peak_full],
        goal=f"streamed: ≤ 1.5× the peak at half the rows ({peak_half:.1f} MB)",
        check=lambda v: v <= 1.5 * peak_half,
    )


def _page_size(response: Any) -> int:
    from audit.selectors import PAGE_SIZE

    return PAGE_SIZE


def _csv_url(target: Any, *, half: bool = False) -> str:
    from audit.models import Event

    url = f"{reverse('audit:csv')}?integration={target.pk}"
    if half:
        times = Event.objects.filter(integration=target).order_by("at").values_list("at", flat=True)
        count = times.count()
        middle = times[count // 2]
        url += f"&since={middle.date().isoformat()}"
    return url
