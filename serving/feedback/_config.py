"""What feedback a deployment takes: its names, each a boolean or a number in a range."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from serving._base import GavelModel

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
"""A feedback name: lowercase, digits and ``_``, at most 64 characters."""


class FeedbackName(GavelModel):
    """One kind of feedback: a thumbs up/down (``boolean``) or a score (``number``)."""

    kind: Literal["boolean", "number"] = "boolean"
    min: float | None = None
    """A number's lowest value (required for ``number``)."""
    max: float | None = None
    """A number's highest value (required for ``number``)."""
    positive_at: float | None = None
    """A number at or above this counts as positive (the reports' positive share); by
    default the middle of the range. ``true`` is positive for a boolean."""

    @model_validator(mode="after")
    def _range(self) -> FeedbackName:
        if self.kind == "boolean":
            if (self.min, self.max, self.positive_at) != (None, None, None):
                raise ValueError("a boolean feedback name takes no min, max or positive_at")
            return self
        if self.min is None or self.max is None or not self.min < self.max:
            raise ValueError("a number feedback name needs min < max")
        if self.positive_at is not None and not self.min <= self.positive_at <= self.max:
            raise ValueError("positive_at must lie within [min, max]")
        return self

    def threshold(self) -> float:
        """The value at or above which feedback counts as positive."""
        if self.kind == "boolean":
            return 1.0
        assert self.min is not None and self.max is not None  # the validator's
        return self.positive_at if self.positive_at is not None else (self.min + self.max) / 2


def _default_names() -> dict[str, FeedbackName]:
    return {"thumbs": FeedbackName(), "correct": FeedbackName()}


class FeedbackConfig(GavelModel):
    """``gateway.feedback``: ``POST /v1/feedback`` (end users' signals on answers)."""

    enabled: bool = True
    names: dict[Annotated[str, Field(pattern=NAME_PATTERN)], FeedbackName] = Field(
        default_factory=_default_names
    )
    """The names a client may send, each with its kind (default: ``thumbs`` and
    ``correct``, both boolean)."""
    comment_max_chars: Annotated[int, Field(ge=0, le=100_000)] = 2000
    """A longer comment is a 400 (0 takes no comments)."""
    capture_wait_s: Annotated[float, Field(ge=0, le=60)] = 5.0
    """How long feedback on an id not yet in the store waits for its capture (records
    are flushed every ``capture.flush_interval_s``) before it is a 404."""
