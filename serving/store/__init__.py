"""Gavel's storage layer: one schema, one database, SQLite (default) or PostgreSQL.

Every table (keys, traffic, verdicts, labels, eval runs) is in :mod:`tables`; the
:class:`Store` runs statements over them with one insert-or-ignore and one upsert
helper for both dialects, one UTC rule, and the schema's revision kept by Alembic
(:meth:`Store.schema`, :meth:`Store.upgrade`). The data's lifecycle is here too:
retention (:func:`purge`), erasure (:func:`erase`), and :func:`backup`/:func:`restore`;
traffic per day pre-aggregated, with latency histograms (:func:`traffic_days`).
Other packages build their queries on :mod:`tables` and run them through the store's
methods; nothing outside this package touches the engine.
"""

from serving._base import resolve_url
from serving.store import _schema as tables
from serving.store._backup import BackupError, backup, describe, restore
from serving.store._db import Database, Row, SchemaOutOfDate, as_utc
from serving.store._erasure import erase, erase_files, erasure_log, reapply_erasures
from serving.store._lifecycle import (
    PurgeLine,
    PurgeReport,
    keep_golden,
    purge,
)
from serving.store._revisions import SchemaState
from serving.store._rollup import DayCache, TrafficDay, traffic_days
from serving.store._rollup import merge as merge_histograms
from serving.store._rollup import percentile as histogram_percentile
from serving.store._search import TrafficPage, TrafficQuery, VerdictFilter
from serving.store._store import Store

__all__ = [
    "BackupError",
    "Database",
    "DayCache",
    "PurgeLine",
    "PurgeReport",
    "Row",
    "SchemaOutOfDate",
    "SchemaState",
    "Store",
    "TrafficDay",
    "TrafficPage",
    "TrafficQuery",
    "VerdictFilter",
    "as_utc",
    "backup",
    "describe",
    "erase",
    "erase_files",
    "erasure_log",
    "histogram_percentile",
    "keep_golden",
    "merge_histograms",
    "purge",
    "reapply_erasures",
    "resolve_url",
    "restore",
    "tables",
    "traffic_days",
]
