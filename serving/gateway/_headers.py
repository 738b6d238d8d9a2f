"""Gavel's request headers: metadata, a replay date, and the source of Gavel's own calls."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import get_args

from serving._wire import SOURCE_HEADER, ApiKey, HeaderSource, Source
from serving.gateway._context import RequestContext
from serving.gateway._refusal import Refusal
from serving.gateway._text import unstorable_path

METADATA_MAX_BYTES = 4096


@dataclass(frozen=True)
class Extras:
    """What the Gavel headers of one request say."""

    metadata: dict[str, str] = field(default_factory=dict)
    ts: datetime | None = None
    """Back-dated capture time (``X-Gavel-Replay-Date``, admin keys only)."""
    source: Source = "production"


def _bad(message: str, status: int = 400) -> Refusal:
    kind = "permission_error" if status == 403 else "invalid_request_error"
    return Refusal(status, message, type_=kind, reason="header")


def _is_admin(key: ApiKey | None) -> bool:
    return key is None or key.allows("admin")  # None: auth is off


def may_name_source(key: ApiKey | None) -> bool:
    """Whether ``key`` may send its calls as Gavel's own (``X-Gavel-Source: judge|eval``):
    keys with the ``judge`` or ``eval`` scope (``admin`` included), or any when auth is off."""
    return key is None or key.allows("judge") or key.allows("eval")


def parse_extras(
    headers: Mapping[str, str], key: ApiKey | None, *, steering: tuple[str, ...] = ()
) -> Extras:
    """The extras, or raise a :class:`Refusal` (an OpenAI-style 4xx naming the header).

    ``steering`` metadata keys (those the judges read) need an ``admin`` key, as does a
    replay date. ``X-Gavel-Source`` is honoured only from a key that :func:`may_name_source`;
    from any other key it is ignored (the request is production traffic: it takes no
    background slot, stays in the daily sample, and keeps its retention and cost class).
    """
    meta: dict[str, str] = {}
    raw = headers.get("x-gavel-metadata")
    if raw:
        try:
            if len(raw) > METADATA_MAX_BYTES:
                raise ValueError
            data = json.loads(raw)
            if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
                raise ValueError
        except (ValueError, RecursionError):
            raise _bad(
                "X-Gavel-Metadata must be a JSON object of strings (at most 4 KiB)."
            ) from None
        if unstorable_path(data) is not None:
            raise _bad("X-Gavel-Metadata may not contain NUL or lone surrogates.")
        meta = data
        steered = sorted(k for k in meta if k in steering)
        if steered and not _is_admin(key):
            raise _bad(
                f"X-Gavel-Metadata key(s) {', '.join(steered)} steer judging and need a key "
                "with the 'admin' scope.",
                403,
            )
    ts = None
    day = headers.get("x-gavel-replay-date")
    if day:
        if not _is_admin(key):
            raise _bad("X-Gavel-Replay-Date needs a key with the 'admin' scope.", 403)
        try:
            d = datetime.fromisoformat(day).date()
        except ValueError:
            raise _bad("X-Gavel-Replay-Date must be YYYY-MM-DD.") from None
        ts = datetime.now(UTC).replace(year=d.year, month=d.month, day=d.day)
    source = headers.get(SOURCE_HEADER, "production")
    if source not in get_args(HeaderSource):
        names = ", ".join(get_args(HeaderSource))
        raise _bad(f"X-Gavel-Source must be one of {names}.")
    if not may_name_source(key):
        source = "production"
    return Extras(metadata=meta, ts=ts, source=source)  # type: ignore[arg-type]


class HeadersHook:
    """Gavel's headers: metadata, a replay date, and the source (see :func:`parse_extras`)."""

    name = "headers"

    def __init__(self, steering: tuple[str, ...]) -> None:
        self._steering = steering

    async def before(self, ctx: RequestContext) -> None:
        extras = parse_extras(ctx.request.headers, ctx.key, steering=self._steering)
        ctx.metadata, ctx.source = extras.metadata, extras.source
        if extras.ts is not None:
            ctx.ts = extras.ts

    def end(self, ctx: RequestContext) -> None:
        """Nothing is held."""
