"""The body of ``POST /v1/feedback`` and the feedback Gavel keeps."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StrictBool, StrictFloat, StrictInt

from serving._base import GavelModel
from serving.feedback._config import NAME_PATTERN

USER_PATTERN = r"^[A-Za-z0-9._@:-]{1,128}$"


class FeedbackIn(GavelModel):
    """What a client sends: about which answer, what, and optionally who and why."""

    id: Annotated[str, Field(pattern=r"^[\x21-\x7e]{1,256}$")]
    """The response's ``id`` as the client received it, or Gavel's request id."""
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    value: StrictBool | StrictInt | StrictFloat
    """``true``/``false`` for a boolean name; a number within the name's range."""
    comment: Annotated[str, Field(max_length=100_000)] | None = None
    user: Annotated[str, Field(pattern=USER_PATTERN)] | None = None
    """The end user's id in the application (opaque to Gavel); one value is kept per
    (request, name, user), and every change is kept in the history."""


class Feedback(GavelModel):
    """One kept piece of feedback (the latest per request, name and user)."""

    request_id: str
    name: str
    user: str
    """``""`` when the client named no user."""
    value: float
    """A boolean is kept as 1.0 (true) or 0.0 (false)."""
    positive: bool
    comment: str | None = None
    sent_by: str
    """The key that sent it."""
    model: str
    """The model of the request it is about."""
    day: str
    """The day of the request it is about (UTC)."""
    revision: int
    """1 for the first value, +1 for every change."""
    at: datetime
