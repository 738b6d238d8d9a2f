"""Pure statistics for pass rates: Wilson intervals, the drop test, position consistency."""

from __future__ import annotations

import math

Z95 = 1.959963984540054


def wilson(passes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of a pass rate; (0, 1) when n is 0. ``n`` may be an
    effective sample size (not a whole number), ``passes`` the rate times it."""
    if n <= 0:
        return 0.0, 1.0
    p = passes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def drop_p_value(passes: int, n: int, base_passes: int, base_n: int) -> float | None:
    """One-sided p-value that today's rate is below the baseline's (two-proportion z-test)."""
    if n == 0 or base_n == 0:
        return None
    p1, p0 = passes / n, base_passes / base_n
    pooled = (passes + base_passes) / (n + base_n)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / base_n))
    if se == 0:
        return None if p1 == p0 else (0.0 if p1 < p0 else 1.0)
    z = (p1 - p0) / se
    return 0.5 * math.erfc(-z / math.sqrt(2))


def position_consistency(pairs: list[tuple[str, str]]) -> float | None:
    """Share of pairs whose two orders agree, given (winner in order AB, winner in order BA).

    Winners are named by response (``A``/``B``/``tie``), already mapped back from position.
    """
    if not pairs:
        return None
    return sum(a == b for a, b in pairs) / len(pairs)
