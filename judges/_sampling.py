"""Stratified, date-seeded sampling of captured traffic (pure)."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from serving import GavelModel, TrafficRecord

Stratum = Literal["model", "key", "length"]
LENGTH_BUCKETS = (32, 128, 512)


class SamplingConfig(GavelModel):
    """How much of a day's traffic is judged."""

    rate: float = Field(default=0.2, gt=0, le=1)
    """Share of each stratum to sample (rounded half up, at least 1 per non-empty stratum)."""
    max_per_stratum: int | None = Field(default=200, ge=1)
    stratify_by: tuple[Stratum, ...] = ("model",)


def length_bucket(tokens: int | None) -> str:
    """Output-length bucket of a record."""
    n = tokens or 0
    for edge in LENGTH_BUCKETS:
        if n <= edge:
            return f"<={edge}"
    return f">{LENGTH_BUCKETS[-1]}"


def stratum_of(rec: TrafficRecord, by: Sequence[Stratum]) -> tuple[str, ...]:
    """The stratum key of a record."""
    parts = {
        "model": rec.model,
        "key": rec.key_name or "-",
        "length": length_bucket(rec.completion_tokens),
    }
    return tuple(parts[b] for b in by)


def stratum_size(n: int, cfg: SamplingConfig) -> int:
    """How many of a stratum of n records are sampled."""
    if n == 0:
        return 0
    k = max(1, int(n * cfg.rate + 0.5))
    return min(n, k, cfg.max_per_stratum or n)


def _rank(seed: str, request_id: str) -> str:
    return hashlib.sha256(f"{seed}:{request_id}".encode()).hexdigest()


def sample(
    records: Sequence[TrafficRecord], cfg: SamplingConfig, *, seed: str
) -> dict[tuple[str, ...], list[TrafficRecord]]:
    """Sample each stratum; the same seed (the date) always picks the same records."""
    strata: dict[tuple[str, ...], list[TrafficRecord]] = defaultdict(list)
    for r in records:
        if r.status == 200 and r.response_text is not None:
            strata[stratum_of(r, cfg.stratify_by)].append(r)
    out = {}
    for key, recs in sorted(strata.items()):
        ranked = sorted(recs, key=lambda r: _rank(seed, r.request_id))
        out[key] = ranked[: stratum_size(len(recs), cfg)]
    return out
