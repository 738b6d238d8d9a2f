"""``POST /v1/feedback``: an end user's signal on an answer, kept once per (request, name,
user) with its history.

Who may send it: the key that made the request, or a key with the ``feedback`` scope (an
application's backend). Another key's request is a 403, an unknown id a 404 (after
waiting up to ``capture_wait_s`` for a capture still on its way). Feedback on a
metadata-only key's request, or on erased text, keeps no comment. Every answer is 2xx or
an OpenAI-style 4xx/503; nothing the client sent is echoed.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from serving._gateway_config import CaptureConfig
from serving._wire import ApiKey
from serving.feedback._config import FeedbackConfig
from serving.feedback._store import Target, find_target, now_feedback, record
from serving.feedback._wire import Feedback, FeedbackIn
from serving.gateway._body import parse_body
from serving.gateway._redact import redact
from serving.gateway._refusal import Refusal
from serving.gateway._text import clean
from serving.store import Store

MAX_BODY_BYTES = 256 * 1024
POLL_S = 0.25


def _store_down() -> Refusal:
    return Refusal(503, "The store is unavailable; send the feedback again shortly.",
                   type_="server_error", reason="store")  # fmt: skip


MAX_WAITING = 64
"""Feedback requests of one replica that may wait for a capture at once; beyond that an
unknown id is a 404 at once (a flood of made-up ids holds no more)."""


def parse_feedback(raw: bytes, config: FeedbackConfig) -> FeedbackIn:
    """The body as :class:`FeedbackIn`, checked against the configured names; raises a
    400 :class:`Refusal` that names the field (never its value, nor a client's own key:
    an unknown field is named as such). JSON, depth, NUL and lone surrogates are checked
    as on the model routes (:func:`parse_body`)."""
    if len(raw) > MAX_BODY_BYTES:
        raise Refusal(413, f"The request body exceeds {MAX_BODY_BYTES} bytes.",
                      code="request_too_large", reason="too_large")  # fmt: skip
    data = parse_body(raw, max_depth=4)
    try:
        body = FeedbackIn.model_validate(data)
    except ValidationError as exc:
        raise Refusal(400, _field_message(exc)) from None
    spec = config.names.get(body.name)
    if spec is None:
        names = ", ".join(sorted(config.names))
        raise Refusal(400, f"name: not a feedback name here (configured: {names}).")
    if spec.kind == "boolean" and not isinstance(body.value, bool):
        raise Refusal(400, f"value: {body.name} takes true or false.")
    if spec.kind == "number":
        assert spec.min is not None and spec.max is not None
        if isinstance(body.value, bool) or not spec.min <= body.value <= spec.max:
            raise Refusal(400, f"value: {body.name} takes a number in [{spec.min}, {spec.max}].")
    if body.comment is not None and len(body.comment) > config.comment_max_chars:
        raise Refusal(400, f"comment: at most {config.comment_max_chars} characters.")
    return body


def _field_message(exc: ValidationError) -> str:
    err = exc.errors()[0]
    field = str(err["loc"][0]) if err["loc"] else ""
    if field not in FeedbackIn.model_fields:
        return "The body has a field feedback does not take (id, name, value, comment, user)."
    return f"{field}: {err['msg']}"[:300]


class FeedbackRoute:
    """The route's work for one ingress replica: parse, authorise, find, keep."""

    def __init__(self, store: Store, config: FeedbackConfig, capture: CaptureConfig) -> None:
        self._store = store
        self._config = config
        self._capture = capture
        self._waiting = 0

    async def handle(self, raw: bytes, key: ApiKey | None) -> dict[str, Any]:
        """Keep the feedback ``raw`` from ``key`` (``None``: auth is off); returns the
        response body, or raises a :class:`Refusal`."""
        if not self._config.enabled:
            raise Refusal(404, "Feedback is not enabled on this gateway.", code="not_found")
        body = parse_feedback(raw, self._config)
        target = await self._target(body.id)
        if key is not None and not key.allows("feedback") and key.name != target.key_name:
            raise Refusal(403, "This key may not send feedback on that request.",
                          type_="permission_error", reason="scope")  # fmt: skip
        kept = await asyncio.to_thread(record, self._store, self._feedback(body, key, target))
        return {
            "object": "feedback", "id": kept.request_id, "name": kept.name,
            "user": kept.user or None, "value": kept.value, "positive": kept.positive,
            "comment_kept": kept.comment is not None, "revision": kept.revision,
        }  # fmt: skip

    async def _target(self, given_id: str) -> Target:
        wait = self._config.capture_wait_s if self._waiting < MAX_WAITING else 0.0
        deadline, pause = time.monotonic() + wait, POLL_S
        self._waiting += 1
        try:
            while True:
                try:
                    found = await asyncio.to_thread(find_target, self._store, given_id)
                except Exception:
                    raise _store_down() from None
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Refusal(404, "No request with that id.", code="not_found")
                await asyncio.sleep(min(pause, left))  # a few lookups, not one per POLL_S
                pause *= 2
        finally:
            self._waiting -= 1

    def _feedback(self, body: FeedbackIn, key: ApiKey | None, target: Target) -> Feedback:
        spec = self._config.names[body.name]
        value = float(body.value)
        comment = body.comment if target.text_held and body.comment else None
        if comment is not None and self._capture.redact:
            comment = redact(comment, max_chars=self._capture.redact_max_chars)
        return now_feedback(
            target, name=body.name, user=body.user or "", value=value,
            positive=value >= spec.threshold(), comment=clean(comment),
            sent_by=key.name if key is not None else "", at=datetime.now(UTC),
        )  # fmt: skip
