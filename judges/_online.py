"""Online judging's rules and what each picks (pure functions).

A rule names a filter (model, source, key, metadata), a sampling rate, its criteria and a
cap per hour. A record is in a rule's sample when a hash of the rule's name and the
request id falls under the rate: a rerun, or a restarted loop, picks the same records.
The cap counts per hour of capture, across passes (what was picked is stored).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from serving import GavelModel

RULE_NAME = r"^[a-z][a-z0-9_-]{0,63}$"


class OnlineFilter(GavelModel):
    """Which captured records a rule looks at (every field must match)."""

    model: str | None = None
    """A served model id; ``None``: every model."""
    source: Literal["production", "judge", "eval", "shadow"] = "production"
    key: str | None = None
    """An API key's name; ``None``: every key."""
    metadata: dict[str, str] = Field(default_factory=dict)
    """Request metadata (``X-Gavel-Metadata``) that must match; ``*`` matches any value."""


class OnlineRule(GavelModel):
    """One online judging rule (``online:`` in the judging config)."""

    name: Annotated[str, Field(pattern=RULE_NAME)]
    filter: OnlineFilter = OnlineFilter()
    sample_rate: Annotated[float, Field(gt=0, le=1)]
    criteria: Annotated[list[str], Field(min_length=1)]
    """Pass/fail criteria of the judging config's criteria folder."""
    max_per_hour: Annotated[int, Field(ge=1, le=1_000_000)] = 100
    """At most this many records per hour of capture are judged by this rule."""

    @model_validator(mode="after")
    def _unique(self) -> OnlineRule:
        if len(set(self.criteria)) != len(self.criteria):
            raise ValueError(f"criteria: a criterion is named twice ({', '.join(self.criteria)})")
        return self


class OnlineLoop(GavelModel):
    """How ``gavel judge online`` runs (``online_loop:`` in the judging config)."""

    interval_s: Annotated[float, Field(ge=1, le=3600)] = 60
    """Seconds between passes."""
    settle_s: Annotated[float, Field(ge=0, le=3600)] = 30
    """A record is read once it started this long ago (its capture is flushed by then)."""
    late_s: Annotated[float, Field(ge=0, le=86400)] = 900
    """Each pass reads this much before its cursor again, for records captured late (a
    long stream is captured when it ends; a spool is replayed after an outage); records
    a rule picked already are never picked twice. Later still: the daily job's."""
    start_lookback_h: Annotated[float, Field(gt=0, le=168)] = 1
    """A rule with no cursor yet starts this far back."""
    window_h: Annotated[float, Field(gt=0, le=24)] = 1
    """At most this much capture time is read per pass (a loop that was down catches up
    pass by pass)."""


@dataclass(frozen=True)
class Candidate:
    """What selection needs of a captured record (its text is read only if picked)."""

    request_id: str
    ts: datetime
    model: str
    key_name: str | None
    source: str
    answered: bool
    """A 2xx with a response text."""
    metadata: Mapping[str, str]


def in_sample(rule: str, request_id: str, rate: float) -> bool:
    """Whether ``request_id`` is in rule ``rule``'s sample at ``rate`` (deterministic)."""
    digest = hashlib.sha256(f"{rule}:{request_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def hour_of(ts: datetime) -> str:
    """The hour a record counts in: ``YYYY-MM-DDTHH`` (UTC)."""
    return ts.strftime("%Y-%m-%dT%H")


def matches(c: Candidate, f: OnlineFilter) -> bool:
    """Whether a record passes a rule's filter."""
    if not c.answered or c.source != f.source:
        return False
    if (f.model is not None and c.model != f.model) or (f.key is not None and c.key_name != f.key):
        return False
    return all(
        k in c.metadata and (want == "*" or c.metadata[k] == want) for k, want in f.metadata.items()
    )


def pick(
    candidates: Sequence[Candidate], rule: OnlineRule, taken: Mapping[str, int]
) -> list[Candidate]:
    """The records ``rule`` judges, oldest first: filtered, sampled by hash, and at most
    ``max_per_hour`` per hour counting those ``taken`` already (hour -> count)."""
    by_hour: dict[str, list[Candidate]] = defaultdict(list)
    for c in sorted(candidates, key=lambda c: (c.ts, c.request_id)):
        if matches(c, rule.filter) and in_sample(rule.name, c.request_id, rule.sample_rate):
            by_hour[hour_of(c.ts)].append(c)
    out: list[Candidate] = []
    for hour, cs in sorted(by_hour.items()):
        out += cs[: max(0, rule.max_per_hour - taken.get(hour, 0))]
    return out
