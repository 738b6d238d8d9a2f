"""Gavel's storage layer: one schema, one database, SQLite (default) or PostgreSQL.

Every table (keys, traffic, verdicts, labels, eval runs) is in :mod:`tables`; the
:class:`Store` runs statements over them with one insert-or-ignore and one upsert
helper for both dialects, one schema creation with additive migration, and one UTC
rule. Other packages build their queries on :mod:`tables` and run them through the
store's methods; nothing outside this package touches the engine.
"""

from serving._base import resolve_url
from serving.store import _schema as tables
from serving.store._db import Database, Row, as_utc
from serving.store._store import Store

__all__ = ["Database", "Row", "Store", "as_utc", "resolve_url", "tables"]
