"""`make bench` finds every figure module and runs the figures in number order; a MISS
without a profile is called out."""

from tests.bench import figures
from tests.bench.measure import Row


def test_figures_run_in_number_order_and_every_fig_module_is_found():
    assert sorted(["10", "2", "7", "1"], key=figures._number) == ["1", "2", "7", "10"]
    figures.discover()
    assert {"1", "2", "5", "6", "7", "8", "9", "10", "11"} <= set(figures.FIGURES)
    # the million-row figures make their data once, into the template database
    assert {"9", "11"} <= set(figures.PREPARE)


def test_a_missed_goal_is_marked_profiled_only_when_a_profile_was_written(tmp_path):
    ctx = figures.Context(url="", runs=1, events=0, load_seconds=1, profiles=tmp_path)
    row = ctx.row("9", "thing / floor", "×", [5.0], goal="≤ 3×", check=lambda v: v <= 3)
    assert row.verdict == "MISS" and not row.profiled
    figures.profile_miss(ctx, row, "fig9-thing", lambda: sum(range(1000)))
    assert row.profiled
    assert (tmp_path / "fig9-thing.txt").exists()
    assert ctx.notes and ctx.notes[-1].startswith("Fig 9 (thing / floor) misses ≤ 3×")
    passing = Row("9", "other", "×", [1.0], goal="≤ 3×", check=lambda v: v <= 3)
    assert passing.verdict == "PASS" and not passing.profiled
