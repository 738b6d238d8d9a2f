"""Pure functions over load-test records: percentiles, cell summaries, latency fit, goodput, cost.

No I/O here: the Locust user produces :class:`RequestRecord`s, these functions compute,
and the report writer writes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from loadtest._models import (
    CellSummary,
    LatencyFit,
    Mode,
    Outlier,
    Percentiles,
    RequestRecord,
    Slo,
)
from serving import hourly_per_mtok


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation; ``None`` for no values."""
    if not values:
        return None
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    k = (len(xs) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def percentiles_ms(values_s: Sequence[float]) -> Percentiles:
    """p50/p90/p99 in milliseconds of values given in seconds."""
    ms = [v * 1000 for v in values_s]
    return Percentiles(p50=percentile(ms, 50), p90=percentile(ms, 90), p99=percentile(ms, 99))


def meets_slo(rec: RequestRecord, slo: Slo) -> bool:
    """True when a successful request meets every SLO that is set."""
    if not rec.ok or rec.ttft_s is None or rec.e2e_s is None:
        return False
    if slo.ttft_ms is not None and rec.ttft_s * 1000 > slo.ttft_ms:
        return False
    tpot = rec.tpot_s
    if slo.tpot_ms is not None and (tpot is None or tpot * 1000 > slo.tpot_ms):
        return False
    return not (slo.e2e_ms is not None and rec.e2e_s * 1000 > slo.e2e_ms)


def cost_per_mtok(node_hour_usd: float, output_tok_s: float) -> float | None:
    """USD per 1M output tokens for a node billed hourly, at a measured throughput."""
    if output_tok_s <= 0:
        return None
    return hourly_per_mtok(node_hour_usd, output_tok_s)


def summarize_cell(
    records: Sequence[RequestRecord],
    *,
    output_len: int,
    concurrency: int,
    duration_s: float,
    mode: Mode = "closed",
    rate_rps: float | None = None,
    slo: Slo | None = None,
    node_hour_usd: float | None = None,
) -> CellSummary:
    """Aggregate one cell's records."""
    ok = [r for r in records if r.ok]
    tokens = sum(r.output_tokens or 0 for r in ok)
    tok_s = tokens / duration_s if duration_s > 0 else 0.0
    has_slo = slo is not None and any(v is not None for v in slo.model_dump().values())
    goodput = None
    if has_slo and slo is not None and duration_s > 0:
        goodput = sum(meets_slo(r, slo) for r in records) / duration_s
    return CellSummary(
        output_len=output_len,
        concurrency=concurrency,
        mode=mode,
        rate_rps=rate_rps,
        count=len(records),
        errors=len(records) - len(ok),
        duration_s=duration_s,
        ttft_ms=percentiles_ms([r.ttft_s for r in ok if r.ttft_s is not None]),
        tpot_ms=percentiles_ms([t for r in ok if (t := r.tpot_s) is not None]),
        e2e_ms=percentiles_ms([r.e2e_s for r in ok if r.e2e_s is not None]),
        output_tok_s=tok_s,
        request_rps=len(ok) / duration_s if duration_s > 0 else 0.0,
        goodput_rps=goodput,
        cost_per_mtok_usd=(
            cost_per_mtok(node_hour_usd, tok_s) if node_hour_usd is not None else None
        ),
    )


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares ``y = a + b·x``: returns (a, b, R²). Needs two distinct x values."""
    n = len(xs)
    if n != len(ys) or n < 2:
        raise ValueError("need at least two points")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("need at least two distinct x values")
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return a, b, r2


def fit_latency(
    records: Sequence[RequestRecord], *, outlier_rel: float = 0.25, outlier_abs_ms: float = 50
) -> list[LatencyFit]:
    """Fit E2E ≈ TTFT + (N − 1)·TPOT per concurrency level.

    x is N − 1 (N from the server's usage), y is E2E in ms: the intercept estimates TTFT
    and the slope TPOT. A point is an outlier when its residual exceeds
    ``outlier_abs_ms``, ``outlier_rel`` of the prediction and 3.5 robust sigmas.
    """
    fits: list[LatencyFit] = []
    for c in sorted({r.concurrency for r in records}):
        pts = [
            (float(r.output_tokens - 1), r.e2e_s * 1000)
            for r in records
            if r.concurrency == c and r.ok and r.output_tokens and r.e2e_s is not None
        ]
        if len({x for x, _ in pts}) < 2:
            continue
        a, b, r2 = fit_line([x for x, _ in pts], [y for _, y in pts])
        residuals = [y - (a + b * x) for x, y in pts]
        # Robust spread (MAD): one stall pulls the least-squares line, not the median.
        sigma = 1.4826 * (percentile([abs(r) for r in residuals], 50) or 0.0)
        outliers = []
        for (x, y), resid in zip(pts, residuals, strict=True):
            pred = a + b * x
            if abs(resid) > max(outlier_abs_ms, outlier_rel * abs(pred), 3.5 * sigma):
                outliers.append(
                    Outlier(
                        output_tokens=int(x) + 1, e2e_ms=y, predicted_ms=pred, residual_ms=resid
                    )
                )
        fits.append(
            LatencyFit(
                concurrency=c,
                intercept_ms=a,
                slope_ms_per_token=b,
                r2=r2,
                points=len(pts),
                outliers=outliers,
            )
        )
    return fits
