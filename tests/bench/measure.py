"""Timing, figures and the results table of `make bench` (no Django import here)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
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
    # Set when a profile of this MISS was written (figures.explain_miss).
    profiled: bool = False

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


_PROJECT = str(Path(__file__).resolve().parents[2]) + "/"
_BENCH = str(Path(__file__).resolve().parent) + "/"


class Profile:
    """A pyinstrument recording: its text report and where its time goes."""

    def __init__(self) -> None:
        from pyinstrument import Profiler

        self._profiler = Profiler(interval=0.001)
        self.report = ""
        self.calls: list[tuple[str, float]] = []
        self.packages: list[tuple[str, float]] = []

    def __enter__(self) -> Profile:
        self._profiler.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._profiler.stop()
        session = self._profiler.last_session
        root = session.root_frame()
        self.report = self._profiler.output_text(unicode=False, color=False, show_all=False)
        if root is None:
            return
        total = root.time or 1.0
        calls: dict[str, float] = {}
        packages: dict[str, float] = {}
        # (frame, package of the nearest real frame, project calls above it)
        stack: list[tuple[Any, str, frozenset[str]]] = [(root, "", frozenset())]
        while stack:
            frame, owner, above = stack.pop()
            path = frame.file_path_short or ""
            real = not frame.is_synthetic
            package = (path.split("/")[0] or "?") if real else owner
            children = list(frame.children)
            own = frame.time - sum(c.time for c in children if not c.is_synthetic)
            if real and own > 0:
                packages[package] = packages.get(package, 0.0) + own
            # Project code (not the bench, not libraries): what a reader can act on.
            full = frame.file_path or ""
            # Middleware `__call__`s wrap the whole view: they are where a request passes,
            # not what it costs (a page's profile named only them); their own work shows
            # in the package totals.
            if (
                real
                and full.startswith(_PROJECT)
                and "/.venv/" not in full
                and not full.startswith(_BENCH)
                and frame.function != "__call__"
            ):
                where = f"{frame.function} ({path}:{frame.line_no})"
                # Summed over every call (a profile of ten requests holds ten `home`
                # frames), but not again inside itself (recursion).
                if where not in above:
                    calls[where] = calls.get(where, 0.0) + frame.time
                    above = above | {where}
            stack.extend((c, package, above) for c in children)
        self.calls = sorted(((w, t / total) for w, t in calls.items()), key=lambda x: -x[1])
        own_total = sum(packages.values()) or 1.0
        self.packages = sorted(
            ((p, t / own_total) for p, t in packages.items()), key=lambda x: -x[1]
        )

    def summary(self, calls: int = 6, packages: int = 4) -> str:
        # Calls that wrap nearly everything (the entry points) say nothing about the cause.
        inner = [(w, share) for w, share in self.calls if share < 0.9] or self.calls
        call_text = ", ".join(f"{w} {share:.0%}" for w, share in inner[:calls])
        package_text = ", ".join(f"{p} {share:.0%}" for p, share in self.packages[:packages])
        return f"time inside: {call_text}; own time by package: {package_text}"


def hot_spots(fn: Callable[[], Any]) -> Profile:
    """Profile one call with pyinstrument."""
    with Profile() as profile:
        fn()
    return profile
