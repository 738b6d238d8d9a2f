"""The lifecycle object of one request, and how the response fills it in (JSON or SSE).

The SSE tap passes the stream through untouched (but for the usage chunk the client
did not ask for) and assembles the text, the timings and the usage for capture.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from serving._wire import ApiKey, Source
from serving.gateway._refusal import Refusal


@dataclass
class RequestContext:
    """One request, from its first header byte to its capture: the one lifecycle object.

    The hooks of :mod:`._hooks` fill it in, in their declared order (the key, the body,
    the arm, the slot, the reservation); the engine's response fills in the rest (the
    text, the timings, the usage). :meth:`end` runs the chain's ending exactly once,
    whatever happened: a refusal, an engine error, a client gone, a stream cut.
    """

    endpoint: str
    request: Any = None
    """The HTTP request (a Starlette ``Request``; ``None`` for a shadow)."""
    request_id: str = field(default_factory=lambda: secrets.token_hex(16))
    key: ApiKey | None = None
    charged: bool = True
    """False for a shadow: it carries its twin's key (for capture and erasure) but is
    never charged to it."""
    data: dict[str, Any] = field(default_factory=dict)
    """The client's parsed body."""
    asked: str | None = None
    """The model id the client asked for."""
    model: str = ""
    """The model id that answers (the candidate's on the canary arm)."""
    role: str | None = None
    stream: bool = False
    body: dict[str, Any] = field(default_factory=dict)
    """What is captured of the request (the client's body without its ``request_id``)."""
    engine_request: Any = None
    """Ray's request model, as the engine gets it."""
    engine_body: dict[str, Any] = field(default_factory=dict)
    source: Source = "production"
    t0: float = field(default_factory=time.perf_counter)
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))
    text: list[str] = field(default_factory=list)
    ttft_s: float | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    status: int = 200
    error: str | None = None
    refusal: Refusal | None = None
    """Why the request was refused before it reached a model (else ``None``)."""
    metadata: dict[str, str] = field(default_factory=dict)
    client_request_id: str | None = None
    prompt_estimate: int = 0
    """A high estimate of the prompt's tokens, charged if a stream ends without usage."""
    reserve: int = 0
    """Tokens reserved against the key's tpm (the prompt estimate plus the most it may
    generate)."""
    cap: int | None = None
    """The ``max_tokens`` Gavel set because the client set none (metered keys)."""
    pass_usage: bool = True
    """Whether the client asked for the usage chunk of a stream."""
    reservation: str | None = None
    """The limiter's reservation of this request's tokens and USD, settled when it ends."""
    admitted: bool = False
    """Admission took this request's share of the key's limits (settled when it ends)."""
    background_slot: bool = False
    """It holds one of its replica's background slots until it ends."""
    engine_called: bool = False
    """The request reached a model (it is counted, priced and captured)."""
    pieces: int = 0
    """Content deltas streamed so far (about one token each)."""
    arm: str | None = None
    """Under a model swap, the arm that answers (``production`` or ``candidate``)."""
    twin_id: str | None = None
    """A shadow request's production twin."""
    handler: Any = None
    """Ray's handler of the endpoint (the shadow sends its request through it)."""
    cost: float | None = None
    e2e_s: float = 0.0
    on_end: Callable[[RequestContext], None] | None = None
    """The chain's ending (set by :class:`~._hooks.HookChain`)."""
    entered: list[Any] = field(default_factory=list)
    """The hooks whose ``before`` ran, in order (their ``end`` runs in reverse)."""
    finished: bool = False
    """Set by :meth:`end`: the request's one ending ran."""
    trace: Any = None
    """With tracing on, the request's open trace (:class:`~._tracing.TraceState`): the
    chain times its hooks into it."""
    trace_id: str | None = None
    """The W3C trace id (32 hex digits), kept on the captured record."""

    def end(self) -> None:
        """End the request: the chain's ending runs exactly once, whichever path gets here."""
        if self.finished:
            return
        self.finished = True
        self.e2e_s = time.perf_counter() - self.t0
        if self.on_end is not None:
            self.on_end(self)

    def refuse(self, refusal: Refusal) -> None:
        """Record why the request is refused (its status is the refusal's)."""
        self.refusal = refusal
        self.status, self.error = refusal.status, refusal.message

    def end_if_abandoned(self) -> None:
        """The request's task ended: if nothing ended the request (a client gone before its
        stream was first read, or during admission), end it now as a disconnect, charging
        what was generated."""
        if self.finished:
            return
        if self.status == 200:
            self.status, self.error = 499, "client disconnected before the response was read"
        self.settle_usage()
        self.end()

    @property
    def used_tokens(self) -> int:
        """Prompt and completion tokens used (as far as known)."""
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)

    def adopt_id(self, response_id: object) -> None:
        """Use the id the client sees, if it is the one Gavel gave the engine."""
        ours = isinstance(response_id, str) and self.request_id in response_id
        if ours and len(str(response_id)) <= 64:
            self.request_id = str(response_id)

    def settle_usage(self) -> None:
        """A stream that ended early has no usage: charge what was generated (estimated)."""
        if not self.engine_called:
            return
        if self.completion_tokens is None and (self.pieces or self.prompt_estimate):
            self.completion_tokens = self.pieces
            self.prompt_tokens = self.prompt_tokens or self.prompt_estimate


_SERVER_ERROR_EVENT = "data: " + json.dumps(
    {
        "error": {
            "message": "The model failed while streaming; the request was recorded.",
            "type": "server_error",
            "param": None,
            "code": 500,
        }
    }
)


def absorb_json(call: RequestContext, raw: bytes) -> None:
    """Fill ``call`` from a non-streamed OpenAI response body."""
    try:
        data = json.loads(raw)
    except ValueError:
        return
    if not isinstance(data, dict):
        return
    call.adopt_id(data.get("id"))
    choice = (data.get("choices") or [{}])[0]
    if call.endpoint == "chat":
        call.text.append((choice.get("message") or {}).get("content") or "")
    else:
        call.text.append(choice.get("text") or "")
    call.finish_reason = choice.get("finish_reason")
    usage = data.get("usage") or {}
    call.prompt_tokens = usage.get("prompt_tokens")
    call.completion_tokens = usage.get("completion_tokens")


def absorb_event(call: RequestContext, event: str) -> bool:
    """Update ``call`` from one SSE event; False for a usage-only event."""
    if not event.startswith("data: "):
        return True
    payload = event[6:].strip()
    if payload == "[DONE]":
        return True
    try:
        data = json.loads(payload)
    except ValueError:
        return True
    if not isinstance(data, dict):
        return True
    if "error" in data and not data.get("choices"):
        err = data["error"] if isinstance(data["error"], dict) else {"message": data["error"]}
        call.status = int(err.get("code") or 500) if str(err.get("code", "")).isdigit() else 500
        call.error = str(err.get("message"))
        return True
    if call.ttft_s is None:
        call.adopt_id(data.get("id"))  # the id the client sees
    choices = data.get("choices") or []
    for ch in choices:
        piece = (
            (ch.get("delta") or {}).get("content") if call.endpoint == "chat" else ch.get("text")
        )
        if piece:
            if call.ttft_s is None:
                call.ttft_s = time.perf_counter() - call.t0
            call.text.append(piece)
            call.pieces += 1
        if ch.get("finish_reason"):
            call.finish_reason = ch["finish_reason"]
    usage = data.get("usage")
    if usage:
        call.prompt_tokens = usage.get("prompt_tokens")
        call.completion_tokens = usage.get("completion_tokens")
        return bool(choices)
    return True


async def tap(
    it: AsyncIterable[Any],
    call: RequestContext,
    *,
    pass_usage: bool,
) -> AsyncIterator[str]:
    """Pass the SSE stream through, filling ``call``; it ends exactly once.

    An error event with a 5xx code is passed on without its (internal) message.
    """
    try:
        async for packet in it:
            text = packet.decode() if isinstance(packet, bytes) else packet
            out: list[str] = []
            for event in text.split("\n\n"):
                if not event.strip():
                    continue
                keep = absorb_event(call, event)
                if call.status >= 500 and call.error is not None and '"error"' in event:
                    event = _SERVER_ERROR_EVENT
                if keep or pass_usage:
                    out.append(event + "\n\n")
            if any(e.strip() == "data: [DONE]" for e in text.split("\n\n")):
                # Everything was streamed: end the call before the last chunk goes out, so
                # that a client that hangs up on [DONE] is recorded as served.
                call.end()
            if out:
                yield "".join(out)
    except BaseException as exc:  # client gone (cancelled, or closed) or stream failure
        if call.status == 200:
            gone = isinstance(exc, asyncio.CancelledError | GeneratorExit)
            call.status = 499 if gone else 500
            call.error = call.error or type(exc).__name__
        call.settle_usage()
        raise
    finally:
        call.end()
