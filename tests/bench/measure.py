"""Timing, figures and the results table of `make bench` (no Django import here)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall time of one call in seconds, and its result."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


@dataclass
class Row:
    """One line of the table: a measure over several runs, with its goal if it has one."""

    figure: str
    measure: str
    unit: str
    samples: list[float] = field(default_factory=list)
    goal: str = ""
    # Given the median, does it meet the goal? None: a measure reported without a goal.
    check: Callable[[float], bool] | None = None
    note: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def verdict(self) -> str:
        if not self.samples:
            return "NOT RUN"
        if self.check is None:
            return ""
        return "PASS" if self.check(self.median) else "MISS"


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "s":
        if value < 1e-3:
            return f"{value * 1e6:.0f} µs"
        if value < 1:
            return f"{value * 1e3:.1f} ms"
        return f"{value:.2f} s"
    if unit == "×":
        return f"{value:.1f}×" if value < 100 else f"{value:.0f}×"
    if unit in ("rows", "queries", "count"):
        return f"{value:.0f}"
    if unit == "rows/s" or unit == "req/s":
        return f"{value:,.0f} {unit}" if value >= 100 else f"{value:.1f} {unit}"
    if unit == "MB":
        return f"{value:.1f} MB"
    return f"{value:.3g} {unit}"


def table(rows: list[Row]) -> list[list[str]]:
    head = ["Fig", "Measure", "Median", "Min", "Max", "Runs", "Goal", "Result"]
    body = [head]
    for r in rows:
        body.append(
            [
                r.figure,
                r.measure,
                fmt(r.median, r.unit),
                fmt(min(r.samples), r.unit) if r.samples else "—",
                fmt(max(r.samples), r.unit) if r.samples else "—",
                str(len(r.samples)),
                r.goal,
                r.verdict,
            ]
        )
    return body


def as_text(rows: list[Row]) -> str:
    body = table(rows)
    widths = [max(len(line[i]) for line in body) for i in range(len(body[0]))]
    lines = []
    for n, line in enumerate(body):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def as_markdown(rows: list[Row]) -> str:
    body = table(rows)
    lines = ["| " + " | ".join(body[0]) + " |", "|" + "---|" * len(body[0])]
    lines.extend("| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in body[1:])
    return "\n".join(lines)


def hot_spots(fn: Callable[[], Any], *, top: int = 8) -> tuple[str, list[tuple[str, float]]]:
    """Profile one call with pyinstrument: its text report and the functions of most self time."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001)
    profiler.start()
    try:
        fn()
    finally:
        profiler.stop()
    session = profiler.last_session
    totals: dict[str, float] = {}
    stack = [session.root_frame()]
    while stack:
        frame = stack.pop()
        if frame is None:
            continue
        children = list(frame.children)
        own = frame.time - sum(c.time for c in children)
        if own > 0 and frame.function:
            where = f"{frame.function} ({frame.file_path_short}:{frame.line_no})"
            totals[where] = totals.get(where, 0.0) + own
        stack.extend(children)
    total = sum(totals.values()) or 1.0
    ranked = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)[:top]
    report = profiler.output_text(unicode=False, color=False, show_all=False)
    return report, [(where, t / total) for where, t in ranked]
