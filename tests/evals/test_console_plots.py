"""The console's pure parts: SVG plots (labels escaped, empty series drawn as a frame)
and the pass rates and feedback shares behind them."""

from __future__ import annotations

from evals.console._data import Rate, pass_rates, percentile
from evals.console._svg import Series, bar_chart, line_chart


def test_plots_escape_their_labels_and_draw_intervals() -> None:
    s = Series("<b>x</b>", [("2026-12-01", 0.5, (0.4, 0.6)), ("2026-12-02", None, None)])
    svg = line_chart([s], y_range=(0, 1), target=0.9)
    assert svg.startswith("<svg") and "<b>" not in svg and "&lt;b&gt;" in svg
    assert svg.count("<circle") == 1 and 'stroke-dasharray="4 3"' in svg
    assert line_chart([]).startswith("<svg")  # an empty window still draws a frame
    bars = bar_chart([("<k>", 2.0), ("b", 1.0)], unit=" USD")
    assert "&lt;k&gt;" in bars and bars.count("<rect") == 2


def test_pass_rates_per_day_leave_errors_out_with_wilson_intervals() -> None:
    rates = pass_rates([("c", "d1", "pass", 1), ("c", "d1", "fail", 1), ("c", "d1", "error", 3),
                        ("c", "d2", "pass", 1)])  # fmt: skip
    assert (rates["c"]["d1"].passes, rates["c"]["d1"].n) == (1, 2)
    low, high = rates["c"]["d1"].interval
    assert low < 0.5 < high and Rate(0, 0).value is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0 and percentile([5.0], 0.99) == 5.0
