"""A model swap in config: a candidate beside the production model, on shadow and canary.

The candidate is any served model, or a *variant* of one: the same engine with another
system prompt or other default parameters (a prompt change is a swap too, and it keeps
a CPU stack at two engines). Pure models: no I/O.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from serving._base import GavelModel

ModelId = Annotated[str, Field(min_length=1, max_length=128)]
Share = Annotated[float, Field(ge=0, le=1)]


class VariantConfig(GavelModel):
    """A model id served by another model's engine, with its own defaults."""

    model_id: ModelId
    """The variant's id: clients (and the swap) may ask for it like any served model."""
    base: ModelId
    """The configured model whose engine answers it."""
    system_prompt: Annotated[str, Field(min_length=1, max_length=20_000)] | None = None
    """Put first in every chat request's messages (completions requests are not changed)."""
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    """A cap on the answer's length: the request's own ``max_tokens``, if lower, stays."""
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    """Replaces the request's temperature."""

    @model_validator(mode="after")
    def _changes_something(self) -> VariantConfig:
        if self.model_id == self.base:
            raise ValueError(f"model_id: the variant needs an id of its own, not {self.base!r}")
        if self.system_prompt is None and self.max_tokens is None and self.temperature is None:
            raise ValueError(
                "a variant sets at least one of system_prompt, max_tokens, temperature"
            )
        return self


class SwapCheck(GavelModel):
    """A deterministic check of every answer on both arms: one of the evals' registered
    assertions (``max_words``, ``min_words``, ``valid_json``, ``regex``, ``no_refusal``),
    with the arguments it needs. A decision can rest on these when no judge is trusted."""

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")]
    assertion: Annotated[str, Field(min_length=1)]
    pattern: str | None = None
    max: Annotated[int, Field(ge=1)] | None = None
    min: Annotated[int, Field(ge=1)] | None = None
    refusal_patterns: list[str] | None = None


class SwapConfig(GavelModel):
    """A candidate beside the production model: a share of production's requests is also
    sent to it in the background (shadow), and a share is answered by it (canary)."""

    production: ModelId
    """The model id clients ask for."""
    candidate: ModelId
    """A served model's id, or ``variant.model_id``."""
    variant: VariantConfig | None = None
    """Set when the candidate is a variant of a served model's engine."""
    shadow_rate: Share = 0.0
    """Share of production's requests also sent to the candidate (never returned, never
    counted against the client's limits, captured with ``source: shadow``)."""
    canary_weight: Share = 0.0
    """Share of production's requests answered by the candidate."""
    sticky: bool = False
    """Canary per key instead of per request: a key is always on the same arm."""
    shadow_max_in_flight: Annotated[int, Field(ge=1, le=1024)] = 4
    """Shadow requests one gateway replica runs at once; more are dropped (and counted),
    so that the shadow never queues in front of production."""
    promoted: bool = False
    """Set by ``gavel swap promote``: the candidate answers every request for the
    production id."""
    checks: list[SwapCheck] = Field(default_factory=list)
    """Deterministic checks of both arms' answers (``gavel swap report``)."""
    pairwise: Annotated[str, Field(min_length=1)] = "preferred_response"
    """The pairwise criterion that judges shadow pairs (both orders)."""
    criteria: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    """Pass/fail criteria of the judging config that judge both arms' answers (shadow
    pairs and canary arms); a trusted one that shows the candidate worse rolls it back."""
    judge_sample: Annotated[int, Field(ge=1, le=100_000)] = 200
    """At most this many shadow pairs, and answers per canary arm, are judged per
    criterion (a stable sample by request id)."""
    min_pairs: Annotated[int, Field(ge=1)] = 30
    """With fewer shadow pairs (or answers per arm) no decision but ``continue``."""
    feedback: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]] = Field(
        default_factory=lambda: ["thumbs"]
    )
    """End users' feedback names (``POST /v1/feedback``) compared between the canary's
    arms: the positive share, a deterministic check (a candidate that users rate worse,
    by its confidence sequence, is rolled back). Shadow answers reach no user."""

    @model_validator(mode="after")
    def _two_models(self) -> SwapConfig:
        if self.candidate == self.production:
            raise ValueError("candidate: it is the production model; name another model")
        names = [c.name for c in self.checks]
        if len(set(names)) != len(names):
            raise ValueError(f"checks: names must be unique ({', '.join(names)})")
        if len(set(self.criteria)) != len(self.criteria):
            raise ValueError(f"criteria: a criterion is named twice ({', '.join(self.criteria)})")
        if self.variant is not None and self.variant.model_id != self.candidate:
            raise ValueError(
                f"variant.model_id: {self.variant.model_id!r} is not the candidate "
                f"{self.candidate!r}"
            )
        return self
