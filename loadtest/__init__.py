"""Gavel load tests: Locust-driven sweeps of latency against output length and concurrency.

The public surface is the pure metrics and the result formats; the Locust user lives
in ``loadtest.locustfile`` and is imported only by the runner (it monkey-patches).
"""

from loadtest._models import (
    CellSummary,
    LatencyFit,
    RequestRecord,
    Slo,
    SweepResult,
    SweepSpec,
)
from loadtest.metrics import cost_per_mtok, fit_latency, fit_line, summarize_cell

__all__ = [
    "CellSummary",
    "LatencyFit",
    "RequestRecord",
    "Slo",
    "SweepResult",
    "SweepSpec",
    "cost_per_mtok",
    "fit_latency",
    "fit_line",
    "summarize_cell",
]
