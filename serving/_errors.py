"""HTTP errors in OpenAI's JSON shape, shared by the gateway and the labelling page."""

from __future__ import annotations

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
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return JSONResponse(status_code=status, content=body, headers=headers)
