"""Response-time histograms with fixed log buckets, so percentiles merge across runs.

A histogram is a plain list of counts, one per bucket of `BUCKETS_MS` plus a last one for
everything slower than the last bound: `hist[i]` counts calls that took at most
`BUCKETS_MS[i]` ms and more than `BUCKETS_MS[i - 1]`. The bounds never change, so two
histograms (two steps, two runs, an hour of runs) merge by adding counts, and a
percentile read from the sum is as good as one read from the raw timings, to within a
bucket (about ±25 %). An empty list is an empty histogram.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

# Upper bounds in ms, roughly ×1.6 apart (log spaced), from 1 ms to a minute.
BUCKETS_MS: tuple[float, ...] = (
    1,
    2,
    3,
    5,
    8,
    13,
    20,
    30,
    50,
    80,
    130,
    200,
    300,
    500,
    800,
    1300,
    2000,
    3000,
    5000,
    8000,
    13000,
    20000,
    30000,
    60000,
)
SIZE = len(BUCKETS_MS) + 1  # the last bucket holds everything above 60 s


def empty() -> list[int]:
    return [0] * SIZE


def observe(hist: list[int], ms: float) -> None:
    """Count one call of `ms` milliseconds into `hist` (in place; an empty list grows)."""
    if len(hist) < SIZE:
        hist.extend([0] * (SIZE - len(hist)))
    hist[bisect_left(BUCKETS_MS, ms)] += 1


def merge(a: Sequence[int], b: Sequence[int]) -> list[int]:
    """A new histogram holding the counts of both."""
    out = empty()
    for h in (a, b):
        for i, n in enumerate(h[:SIZE]):
            out[i] += n
    return out


def count(hist: Sequence[int]) -> int:
    return sum(hist)


def percentile(hist: Sequence[int], q: float) -> float | None:
    """The q-th percentile (q from 0 to 100) in ms; None for an empty histogram.

    Within the bucket that holds the rank, the value is interpolated linearly between
    the bucket's bounds (0 below the first); the overflow bucket answers its lower bound.
    """
    if not 0 <= q <= 100:
        raise ValueError("q is a percentile from 0 to 100.")
    total = sum(hist)
    if total == 0:
        return None
    rank = q / 100 * total
    seen = 0
    for i, n in enumerate(hist):
        if n == 0:
            continue
        if seen + n >= rank:
            low = BUCKETS_MS[i - 1] if i > 0 else 0.0
            if i >= len(BUCKETS_MS):
                return float(BUCKETS_MS[-1])
            high = BUCKETS_MS[i]
            return float(low + (high - low) * max(0.0, rank - seen) / n)
        seen += n
    return float(BUCKETS_MS[-1])
