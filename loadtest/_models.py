"""Wire formats of a load-test run: per-request records, cell summaries, the result file."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from serving import GavelModel

SCHEMA_VERSION: Literal["gavel.loadtest/1"] = "gavel.loadtest/1"

Mode = Literal["closed", "poisson"]


class RequestRecord(GavelModel):
    """One streamed chat completion, as the Locust user measured it."""

    index: int = 0
    """Its index in the cell's budget (its ``X-Request-Id`` suffix when ids are sent)."""
    output_len: int
    """The output length the cell asked for (``max_tokens``)."""
    concurrency: int
    start_s: float
    """Start time, seconds since the cell began."""
    ok: bool
    error: str | None = None
    ttft_s: float | None = None
    e2e_s: float | None = None
    output_tokens: int | None = None
    """N, from the server's usage (``stream_options.include_usage``), not from chunks."""
    gaps_s: list[float] = Field(default_factory=list)
    """Inter-chunk gaps after the first content chunk."""

    @property
    def tpot_s(self) -> float | None:
        """Time per output token after the first: (E2E - TTFT) / (N - 1)."""
        if self.ttft_s is None or self.e2e_s is None or not self.output_tokens:
            return None
        if self.output_tokens < 2:
            return None
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1)


class Percentiles(GavelModel):
    """p50/p90/p99 of one quantity, in milliseconds (``None`` when nothing was measured)."""

    p50: float | None
    p90: float | None
    p99: float | None


class CellSummary(GavelModel):
    """Aggregates of one (output length, concurrency) cell."""

    output_len: int
    concurrency: int
    mode: Mode
    rate_rps: float | None
    count: int
    errors: int
    duration_s: float
    ttft_ms: Percentiles
    tpot_ms: Percentiles
    e2e_ms: Percentiles
    output_tok_s: float
    """Output tokens per second over the cell's wall time."""
    request_rps: float
    goodput_rps: float | None = None
    """Requests per second meeting every SLO given."""
    cost_per_mtok_usd: float | None = None
    """Cost per 1M output tokens at this cell's throughput and the configured node price."""


class Outlier(GavelModel):
    """A measurement far from the fitted line."""

    output_tokens: int
    e2e_ms: float
    predicted_ms: float
    residual_ms: float


class LatencyFit(GavelModel):
    """E2E ≈ TTFT + (N − 1)·TPOT, fitted per concurrency level by least squares."""

    concurrency: int
    intercept_ms: float
    slope_ms_per_token: float
    r2: float
    points: int
    outliers: list[Outlier]
    """Measurements whose residual exceeds the threshold: where they leave the line."""


class Slo(GavelModel):
    """Service-level objectives for goodput; ``None`` means not constrained."""

    ttft_ms: Annotated[float, Field(gt=0)] | None = None
    tpot_ms: Annotated[float, Field(gt=0)] | None = None
    e2e_ms: Annotated[float, Field(gt=0)] | None = None


class SweepSpec(GavelModel):
    """What a sweep runs."""

    base_url: str
    model: str
    output_lens: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)]
    concurrency: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)]
    requests_per_cell: Annotated[int, Field(ge=1)] | None = None
    """Requests per cell; default: max(4, 2 x concurrency)."""
    prompt_tokens: Annotated[int, Field(ge=1)] = 128
    mode: Mode = "closed"
    rate_rps: Annotated[float, Field(gt=0)] | None = None
    """Poisson arrival rate for ``mode: poisson``."""
    slo: Slo = Slo()
    node_hour_usd: Annotated[float, Field(ge=0)] | None = None
    request_timeout_s: Annotated[float, Field(gt=0)] = 300

    @model_validator(mode="after")
    def _rate(self) -> SweepSpec:
        if self.mode == "poisson" and self.rate_rps is None:
            raise ValueError("mode 'poisson' needs rate_rps")
        return self

    def requests_for(self, concurrency: int) -> int:
        """Requests to send in a cell of this concurrency."""
        return self.requests_per_cell or max(4, 2 * concurrency)


class RunInfo(GavelModel):
    """Where and on what a sweep ran."""

    started_at: str
    git_commit: str | None
    machine: dict[str, str | int | None]
    stack_config: dict[str, object] | None


class SweepResult(GavelModel):
    """The schema-versioned result file of ``gavel loadtest sweep``."""

    schema_version: Literal["gavel.loadtest/1"] = SCHEMA_VERSION
    spec: SweepSpec
    run: RunInfo
    cells: list[CellSummary]
    fits: list[LatencyFit]
    records: list[RequestRecord]
