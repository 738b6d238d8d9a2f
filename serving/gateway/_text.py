"""Text that a store cannot hold: NUL characters and lone UTF-16 surrogates.

PostgreSQL refuses NUL in text, and a lone surrogate cannot be encoded as UTF-8 (the
spool, the SQLite driver and JSONL export all fail on it). Requests carrying either are
refused at the edge; anything else that reaches capture (a model's output) is cleaned.
"""

from __future__ import annotations

import re
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def shown_key(key: object, limit: int = 64) -> str:
    """A JSON key as an error message may show it: NULs and lone surrogates escaped
    (``\\ud800``), so the message itself can be encoded, and cut to ``limit`` characters."""
    text = str(key)
    escaped = _UNSTORABLE.sub(lambda m: m.group().encode("unicode_escape").decode(), text)
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"


def depth(value: Any) -> int:
    """How deeply JSON arrays and objects nest in ``value`` (a scalar is 0), without
    recursion (the value may be nested as deep as the JSON parser goes)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            v = list(v.values())
        if isinstance(v, list):
            deepest = max(deepest, d + 1)
            stack.extend((item, d + 1) for item in v)
    return deepest


def unstorable_path(value: Any, path: str = "") -> str | None:
    """The JSON path of the first string (key or value) with a NUL or a lone surrogate;
    keys in it are shown escaped and cut (:func:`shown_key`), never as sent."""
    if isinstance(value, str):
        return path or "(body)" if _UNSTORABLE.search(value) else None
    if isinstance(value, dict):
        for k, v in value.items():
            here = f"{path}.{shown_key(k)}" if path else shown_key(k)
            if isinstance(k, str) and _UNSTORABLE.search(k):
                return here
            found = unstorable_path(v, here)
            if found:
                return found
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = unstorable_path(v, f"{path}[{i}]")
            if found:
                return found
    return None


def clean(value: Any) -> Any:
    """``value`` with every NUL and lone surrogate replaced by U+FFFD."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(REPLACEMENT, value)
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value
