"""Reading and checking a request body before the OpenAI layer parses it.

The body is read only after the key is checked, at most ``max_body_bytes`` of it (413
beyond), must be UTF-8 JSON without NUL characters or lone surrogates, must name a
model that is exactly one of the configured ids, and must stay within the caps on
``n`` and on prompts. Every refusal is an OpenAI-style 4xx that never echoes input.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from serving._config import LimitsConfig
from serving.gateway._refusal import Refusal
from serving.gateway._text import depth, unstorable_path

if TYPE_CHECKING:
    from fastapi import Request

    from serving._gateway_config import GatewayConfig
    from serving.gateway._context import RequestContext


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, or a 413 as soon as it is known to exceed ``max_bytes``."""
    too_big = Refusal(
        413,
        f"The request body exceeds {max_bytes} bytes.",
        code="request_too_large",
        reason="too_large",
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(raw: bytes, *, max_depth: int = 64) -> dict[str, Any]:
    """A JSON object nested at most ``max_depth`` levels, or a 400 saying what is wrong
    (never echoing the input)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Refusal(400, "The request body is not valid UTF-8.") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise Refusal(400, "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise Refusal(400, "The request body must be a JSON object.")
    if depth(data) > max_depth:
        raise Refusal(
            400, f"The request body nests arrays and objects deeper than {max_depth} levels."
        )
    where = unstorable_path(data)
    if where is not None:
        raise Refusal(
            400, f"{where}: text may not contain NUL characters or lone UTF-16 surrogates."
        )
    return data


def check_request(
    data: dict[str, Any], *, endpoint: str, roles: dict[str, str], limits: LimitsConfig
) -> tuple[str, str]:
    """(model id, role): the model must be exactly a configured id; ``n`` and prompts capped."""
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise Refusal(400, "model: a model id (string) is required.")
    role = roles.get(model)
    if role is None:
        raise Refusal(
            404, f"The model {model[:64]!r} does not exist or you do not have access to it.",
            type_="invalid_request_error", code="model_not_found", reason="model",
        )  # fmt: skip
    n = data.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n > limits.max_n:
        raise Refusal(400, f"n: at most {limits.max_n} choices per request.")
    prompt = data.get("prompt") if endpoint == "completions" else None
    many = isinstance(prompt, list) and bool(prompt) and not isinstance(prompt[0], int)
    if many and len(prompt) > limits.max_prompts:  # type: ignore[arg-type]
        raise Refusal(400, f"prompt: at most {limits.max_prompts} prompts per request.")
    return model, role


def token_reserve(data: dict[str, Any], *, default_completion: int) -> tuple[int, int]:
    """(estimated prompt tokens, tokens to reserve against the key's tpm).

    The prompt estimate is deliberately high (a token per 3 characters plus a chat
    template allowance per message); completion tokens are ``max_tokens`` (or
    ``max_completion_tokens``, else ``default_completion``) times the number of choices
    and prompts. The real usage settles the reservation when the request ends.
    """
    messages = data.get("messages")
    prompt = data.get("prompt")
    if isinstance(messages, list):
        chars = len(json.dumps(messages, ensure_ascii=False))
        prompt_est = math.ceil(chars / 3) + 16 * len(messages) + 16
        prompts = 1
    else:
        chars = len(json.dumps(prompt, ensure_ascii=False)) if prompt is not None else 0
        prompt_est = math.ceil(chars / 3) + 8
        prompts = len(prompt) if isinstance(prompt, list) and prompt else 1
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], int):
            prompts = 1
    completion = data.get("max_tokens") or data.get("max_completion_tokens") or default_completion
    if not isinstance(completion, int) or isinstance(completion, bool) or completion < 1:
        completion = default_completion
    n = data.get("n") if isinstance(data.get("n"), int) else 1
    choices = max(1, n or 1) * prompts
    return prompt_est, prompt_est + completion * choices


MAX_TOKENS_HEADER = "X-Gavel-Max-Tokens"
"""Set on a response whose completion Gavel capped (the request set no ``max_tokens``)."""


def cap_completion(data: dict[str, Any], cap: int) -> dict[str, Any]:
    """``data`` with ``max_tokens`` set to ``cap``, and a ``min_tokens`` above it lowered
    to it (a floor above the cap would get the engine's 400 about a limit the client
    never set)."""
    out = {**data, "max_tokens": cap}
    floor = out.get("min_tokens")
    if isinstance(floor, int) and not isinstance(floor, bool) and floor > cap:
        out["min_tokens"] = cap
    return out


def completion_cap(
    data: dict[str, Any], *, default: int, context_len: int | None, prompt_est: int
) -> int | None:
    """The ``max_tokens`` Gavel sets on a request of a tpm-limited key that set none, so
    that it cannot generate more than was reserved; ``None`` when the request set one.

    The cap is ``default`` (``limits.default_completion_reserve``), or less when the
    context left after the (high) prompt estimate is smaller, and never below 1.
    """
    if data.get("max_tokens") is not None or data.get("max_completion_tokens") is not None:
        return None
    left = default if context_len is None else context_len - prompt_est
    return max(1, min(default, left))


def client_request_id(data: dict[str, Any], header: str | None, max_len: int) -> str | None:
    """The id a client sent (body ``request_id`` or ``X-Request-Id``), cut to ``max_len``."""
    value = data.get("request_id")
    found = value if isinstance(value, str) and value else header
    return found[:max_len] if found else None


class BodyHook:
    """Reads and checks the body (after the key: an unauthenticated client never gets
    its body read): size, UTF-8 JSON, storable text, exactly a configured model, caps."""

    name = "body"

    def __init__(self, config: GatewayConfig, roles: dict[str, str]) -> None:
        self._limits = config.limits
        self._roles = roles
        self._id_max = config.capture.client_request_id_max

    async def before(self, ctx: RequestContext) -> None:
        raw = await read_body(ctx.request, self._limits.max_body_bytes)
        data = parse_body(raw, max_depth=self._limits.max_json_depth)
        model, role = check_request(
            data, endpoint=ctx.endpoint, roles=self._roles, limits=self._limits
        )
        ctx.data, ctx.asked, ctx.model, ctx.role = data, model, model, role
        ctx.stream = bool(data.get("stream"))
        header = ctx.request.headers.get("x-request-id")
        ctx.client_request_id = client_request_id(data, header, self._id_max)
        ctx.body = {k: v for k, v in data.items() if k != "request_id"}

    def end(self, ctx: RequestContext) -> None:
        """Nothing is held."""
