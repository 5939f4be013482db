"""Fixed log buckets: percentiles to within a bucket, merging by adding counts."""

from __future__ import annotations

import pytest

from runs import histogram


def test_percentiles_land_in_the_bucket_of_the_true_value():
    hist = []
    for ms in [4] * 50 + [40] * 45 + [900] * 5:
        histogram.observe(hist, ms)
    assert 3 < histogram.percentile(hist, 50) <= 5
    assert 30 < histogram.percentile(hist, 95) <= 50
    assert 800 < histogram.percentile(hist, 99) <= 1300


def test_calls_slower_than_the_last_bound_count_in_the_overflow_bucket():
    hist = histogram.empty()
    histogram.observe(hist, 120_000)
    assert hist[-1] == 1
    assert histogram.percentile(hist, 50) == histogram.BUCKETS_MS[-1]


def test_merge_accepts_empty_histograms():
    hist = histogram.empty()
    histogram.observe(hist, 10)
    assert histogram.merge([], hist) == hist
    assert histogram.percentile(histogram.merge([], []), 50) is None


def test_a_percentile_out_of_range_is_refused():
    with pytest.raises(ValueError, match="0 to 100"):
        histogram.percentile([1], 101)
