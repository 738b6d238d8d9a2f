"""Gavel's request headers: metadata, a replay date, and the source of Gavel's own calls."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, get_args

from serving._errors import openai_error
from serving._wire import SOURCE_HEADER, ApiKey, HeaderSource, Source
from serving.gateway._text import unstorable_path

if TYPE_CHECKING:
    from fastapi.responses import JSONResponse

METADATA_MAX_BYTES = 4096


@dataclass(frozen=True)
class Extras:
    """What the Gavel headers of one request say."""

    metadata: dict[str, str] = field(default_factory=dict)
    ts: datetime | None = None
    """Back-dated capture time (``X-Gavel-Replay-Date``, admin keys only)."""
    source: Source = "production"


def _bad(message: str, status: int = 400) -> JSONResponse:
    kind = "permission_error" if status == 403 else "invalid_request_error"
    return openai_error(status, message, type_=kind)


def _is_admin(key: ApiKey | None) -> bool:
    return key is None or key.allows("admin")  # None: auth is off


def parse_extras(
    headers: Mapping[str, str], key: ApiKey | None, *, steering: tuple[str, ...] = ()
) -> tuple[Extras | None, JSONResponse | None]:
    """(the extras, None), or (None, an OpenAI-style 4xx naming the bad header).

    ``steering`` metadata keys (those the judges read) need an ``admin`` key, as does a
    replay date.
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
            return None, _bad("X-Gavel-Metadata must be a JSON object of strings (at most 4 KiB).")
        if unstorable_path(data) is not None:
            return None, _bad("X-Gavel-Metadata may not contain NUL or lone surrogates.")
        meta = data
        steered = sorted(k for k in meta if k in steering)
        if steered and not _is_admin(key):
            return None, _bad(
                f"X-Gavel-Metadata key(s) {', '.join(steered)} steer judging and need a key "
                "with the 'admin' scope.",
                403,
            )
    ts = None
    day = headers.get("x-gavel-replay-date")
    if day:
        if not _is_admin(key):
            return None, _bad("X-Gavel-Replay-Date needs a key with the 'admin' scope.", 403)
        try:
            d = datetime.fromisoformat(day).date()
        except ValueError:
            return None, _bad("X-Gavel-Replay-Date must be YYYY-MM-DD.")
        ts = datetime.now(UTC).replace(year=d.year, month=d.month, day=d.day)
    source = headers.get(SOURCE_HEADER, "production")
    if source not in get_args(HeaderSource):
        names = ", ".join(get_args(HeaderSource))
        return None, _bad(f"X-Gavel-Source must be one of {names}.")
    return Extras(metadata=meta, ts=ts, source=source), None  # type: ignore[arg-type]
