"""User-facing errors: OpenAI-shaped HTTP errors (gateway, labelling page) and CLI errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi.responses import JSONResponse


def openai_error(
    status: int,
    message: str,
    *,
    type_: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error response in OpenAI's JSON shape."""
    from fastapi.responses import JSONResponse

    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return JSONResponse(status_code=status, content=body, headers=headers)


class CliError(Exception):
    """An expected failure: ``str(err)`` is the one-line message, ``code`` the exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code
