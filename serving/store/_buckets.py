"""Latency buckets of the pre-aggregated traffic (:mod:`serving.store._rollup`): log-spaced
upper bounds, each :data:`RATIO` times the one before, from :data:`FLOOR_MS`. One
definition for Python (:func:`bucket`) and for each store's SQL (:func:`bucket_sql`;
SQLite runs :func:`bucket` itself, registered on each connection)."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Integer, cast, func

RATIO = 1.05
"""Each bucket's upper bound is this times the one before: 5% relative resolution."""
FLOOR_MS = 0.1
SQLITE_FUNCTION = "gavel_bucket"


def bucket(ms: float | None) -> int | None:
    """The index of the bucket that holds ``ms`` (pure; ``None`` for none)."""
    if ms is None:
        return None
    return max(0, math.ceil(math.log(max(ms, FLOOR_MS) / FLOOR_MS, RATIO)))


def bucket_sql(dialect: str, ms: Any) -> Any:
    """:func:`bucket` of a SQL expression, in ``dialect``."""
    if dialect == "sqlite":
        return getattr(func, SQLITE_FUNCTION)(ms)
    scaled = func.ln(func.greatest(ms, FLOOR_MS) / FLOOR_MS) / math.log(RATIO)
    return cast(func.greatest(0, func.ceil(scaled)), Integer)
