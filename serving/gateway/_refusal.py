"""A request refused before it reaches a model: its OpenAI-style error and the reason it
is counted under."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from serving._errors import openai_error

if TYPE_CHECKING:
    from fastapi.responses import JSONResponse


@dataclass
class Refusal(Exception):
    """A request refused before it reaches a model: its OpenAI-style error, and the
    ``reason`` label it is counted under in ``gavel_rejected_requests``."""

    status: int
    message: str
    type_: str = "invalid_request_error"
    code: str | None = None
    reason: str = "body"
    headers: dict[str, str] | None = None

    def response(self) -> JSONResponse:
        """The OpenAI-style error response (it never echoes the client's input)."""
        return openai_error(
            self.status, self.message, type_=self.type_, code=self.code, headers=self.headers
        )
