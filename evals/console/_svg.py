"""Plots drawn server-side as SVG markup (pure functions: figures in, markup out).

Nothing is loaded from the internet and no script runs: the console works air-gapped and
under a CSP without inline styles (presentation attributes only). Every label goes
through :func:`html.escape`, so a criterion or key name cannot inject markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

W, H, PAD_L, PAD_B, PAD_T, PAD_R = 560, 180, 44, 28, 12, 12
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


@dataclass(frozen=True)
class Series:
    """One line: points (x label, value, optional interval), in x order."""

    name: str
    points: Sequence[tuple[str, float | None, tuple[float, float] | None]]


def _y(v: float, lo: float, hi: float) -> float:
    span = (hi - lo) or 1.0
    return PAD_T + (H - PAD_T - PAD_B) * (1 - (v - lo) / span)


def line_chart(
    series: Sequence[Series],
    *,
    y_range: tuple[float, float] | None = None,
    target: float | None = None,
    unit: str = "",
    sort_x: bool = True,
) -> str:
    """Lines over shared x labels, each point's interval as a vertical bar, and an
    optional dashed target line (an SLO). Empty series draw an empty frame. The x labels
    are sorted as text (days), or kept in the order the series give them (``sort_x``
    false: numbers)."""
    seen = list(dict.fromkeys(p[0] for s in series for p in s.points))
    xs = sorted(seen) if sort_x else seen
    values = [p[1] for s in series for p in s.points if p[1] is not None]
    lo, hi = y_range or ((min(values), max(values)) if values else (0.0, 1.0))
    if target is not None and y_range is None:
        lo, hi = min(lo, target), max(hi, target)
    step = (W - PAD_L - PAD_R) / max(1, len(xs) - 1)
    x_of = {x: PAD_L + i * step for i, x in enumerate(xs)}
    out = [_frame(lo, hi, unit)]
    if target is not None:
        ty = _y(target, lo, hi)
        out.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{ty:.1f}" y2="{ty:.1f}" '
                   'stroke="#888" stroke-dasharray="4 3"/>')  # fmt: skip
    for i, s in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        pts = [(x_of[x], _y(v, lo, hi)) for x, v, _ in s.points if v is not None]
        if len(pts) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}"/>')
        for x, v, ci in s.points:
            if v is None:
                continue
            cx, cy = x_of[x], _y(v, lo, hi)
            if ci is not None:
                y1, y2 = _y(ci[0], lo, hi), _y(ci[1], lo, hi)
                out.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y1:.1f}" y2="{y2:.1f}" '
                           f'stroke="{colour}" stroke-opacity="0.5"/>')  # fmt: skip
            out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.5" fill="{colour}">'
                       f"<title>{escape(s.name)} {escape(x)}: {v:.3g}{escape(unit)}</title>"
                       "</circle>")  # fmt: skip
        out.append(f'<text x="{PAD_L + 4 + 110 * i}" y="{H - 4}" font-size="10" '
                   f'fill="{colour}">{escape(s.name[:20])}</text>')  # fmt: skip
    if xs:
        out.append(f'<text x="{PAD_L}" y="{H - PAD_B + 12}" font-size="9">{escape(xs[0])}</text>')
        out.append(f'<text x="{W - PAD_R}" y="{H - PAD_B + 12}" font-size="9" '
                   f'text-anchor="end">{escape(xs[-1])}</text>')  # fmt: skip
    return _svg(out)


def bar_chart(bars: Sequence[tuple[str, float]], *, unit: str = "") -> str:
    """Horizontal bars, largest first as given (e.g. the top keys by cost)."""
    top = max((v for _, v in bars), default=0.0) or 1.0
    row, out = 18, []
    height = max(row, row * len(bars)) + 4
    for i, (name, v) in enumerate(bars):
        width = (W - 200) * v / top
        y = 2 + i * row
        out.append(f'<text x="0" y="{y + 12}" font-size="11">{escape(name[:28])}</text>')
        out.append(f'<rect x="180" y="{y}" width="{width:.1f}" height="{row - 4}" '
                   f'fill="{COLOURS[0]}"/>')  # fmt: skip
        out.append(f'<text x="{184 + width:.1f}" y="{y + 12}" font-size="11">'
                   f"{v:.4g}{escape(unit)}</text>")  # fmt: skip
    return _svg(out, height=height)


def _frame(lo: float, hi: float, unit: str) -> str:
    base = H - PAD_B
    return (
        f'<line x1="{PAD_L}" x2="{PAD_L}" y1="{PAD_T}" y2="{base}" stroke="#444"/>'
        f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{base}" y2="{base}" stroke="#444"/>'
        f'<text x="{PAD_L - 4}" y="{PAD_T + 8}" font-size="9" text-anchor="end">'
        f"{hi:.3g}{escape(unit)}</text>"
        f'<text x="{PAD_L - 4}" y="{base}" font-size="9" text-anchor="end">'
        f"{lo:.3g}{escape(unit)}</text>"
    )


def _svg(parts: list[str], *, height: int = H) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height}" '
            f'width="{W}" height="{height}" role="img">{"".join(parts)}</svg>')  # fmt: skip
