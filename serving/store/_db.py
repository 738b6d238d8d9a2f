"""The database under every Gavel table: one engine, one schema, one write helper per dialect.

SQLAlchemy Core keeps one schema for SQLite (the embedded default) and PostgreSQL
(several nodes). Methods block; callers on an event loop run them in a thread.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Executable,
    Table,
    create_engine,
    event,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from serving.store._revisions import SchemaOutOfDate, SchemaState, schema_state, upgrade

Row = dict[str, Any]
log = logging.getLogger("gavel.store")
__all__ = ["Database", "Row", "SchemaOutOfDate", "as_utc"]


def as_utc(value: Any) -> Any:
    """The one UTC rule: a naive datetime read back (SQLite drops the zone) is UTC."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def _private_sqlite_file(path: Path) -> None:
    """Create the SQLite file (and its folder) readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


class Database:
    """One Gavel database: the schema of :mod:`serving.store._schema` on one engine."""

    def __init__(self, url: str, *, connect_timeout_s: float = 5) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            path = url.removeprefix("sqlite:///")
            if path and path != url and path != ":memory:":
                _private_sqlite_file(Path(path))
            kwargs["connect_args"] = {"timeout": 5}
        elif url.startswith("postgresql"):
            kwargs["connect_args"] = {"connect_timeout": int(connect_timeout_s)}
        self._engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self._engine, "connect", _sqlite_pragmas)
        self._schema_ready = False

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    def ensure_schema(self) -> None:
        """Make sure the schema is the one this code needs (checked once per instance).

        A new (empty) store is created at the newest revision; an embedded SQLite store
        that is behind is upgraded in place (and a warning says so). A PostgreSQL store
        that is behind raises :class:`SchemaOutOfDate`, whose message names the command
        to run: several nodes share it, and its upgrade is an operator's decision.
        """
        if self._schema_ready:
            return
        state = schema_state(self._engine)
        if not state.up_to_date:
            if state.current is not None and state.current > state.head:
                raise SchemaOutOfDate(
                    f"the store is at revision {state.current}, newer than this Gavel "
                    f"({state.head}); upgrade Gavel"
                )
            if not (state.empty or self.dialect == "sqlite"):
                raise SchemaOutOfDate(
                    f"the store's schema is at {state.describe()}; run `gavel store upgrade`"
                )
            before, after = upgrade(self._engine)
            if not before.empty and before.current != after.current:
                log.warning(
                    "upgraded the store's schema from revision %s to %s",
                    before.current or "none",
                    after.current,
                )
        self._schema_ready = True

    def schema(self) -> SchemaState:
        """Where the store's schema is (reads only)."""
        return schema_state(self._engine)

    def upgrade(self) -> tuple[SchemaState, SchemaState]:
        """Upgrade the schema to the newest revision: (before, after)."""
        before, after = upgrade(self._engine)
        self._schema_ready = True
        return before, after

    def close(self) -> None:
        """Release pooled connections."""
        self._engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection in one transaction (committed on success, rolled back on error)."""
        self.ensure_schema()
        with self._engine.begin() as conn:
            yield conn

    def fetch(self, stmt: Executable) -> list[Row]:
        """Run a SELECT; rows as dicts, datetimes in UTC."""
        self.ensure_schema()
        with self._engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [{k: as_utc(v) for k, v in r._mapping.items()} for r in rows]

    def tuples(self, stmt: Executable) -> list[tuple[Any, ...]]:
        """Run a SELECT; rows as plain tuples, as the driver gives them (no UTC rule:
        for numbers and text, where a dict per row would cost more than the query)."""
        self.ensure_schema()
        with self._engine.connect() as conn:
            return [tuple(r) for r in conn.execute(stmt)]

    def scalar(self, stmt: Executable) -> Any:
        """Run a SELECT of one value."""
        self.ensure_schema()
        with self._engine.connect() as conn:
            return as_utc(conn.execute(stmt).scalar_one())

    def execute(self, stmt: Executable, rows: Sequence[Mapping[str, Any]] | None = None) -> int:
        """Run a write in its own transaction; returns the rows it touched (when known)."""
        with self.transaction() as conn:
            res = conn.execute(stmt, list(rows)) if rows is not None else conn.execute(stmt)
        return int(res.rowcount) if res.rowcount is not None and res.rowcount >= 0 else 0

    def _insert(self, table: Table) -> Any:
        return pg_insert(table) if self.dialect == "postgresql" else sqlite_insert(table)

    def insert_ignore(
        self,
        table: Table,
        rows: Iterable[Mapping[str, Any]],
        *,
        conn: Connection | None = None,
    ) -> int:
        """Insert rows, skipping those whose primary key is stored; returns rows inserted."""
        batch = list(rows)
        if not batch:
            return 0
        keys = [c.name for c in table.primary_key.columns]
        stmt = self._insert(table).on_conflict_do_nothing(index_elements=keys)
        n = self._run_batch(stmt, batch, conn)
        return n if n >= 0 else len(batch)

    def upsert(
        self,
        table: Table,
        rows: Iterable[Mapping[str, Any]],
        *,
        update: Sequence[str],
        conn: Connection | None = None,
    ) -> int:
        """Insert rows, or update ``update`` columns of rows whose primary key is stored."""
        batch = list(rows)
        if not batch:
            return 0
        keys = [c.name for c in table.primary_key.columns]
        ins = self._insert(table)
        stmt = ins.on_conflict_do_update(
            index_elements=keys, set_={c: ins.excluded[c] for c in update}
        )
        self._run_batch(stmt, batch, conn)
        return len(batch)

    def _run_batch(self, stmt: Any, batch: list[Mapping[str, Any]], conn: Connection | None) -> int:
        """Run ``stmt`` over ``batch`` in ``conn``'s transaction, or in one of its own;
        returns the driver's row count (-1 when unknown)."""
        if conn is not None:
            res = conn.execute(stmt, batch)
        else:
            with self.transaction() as c:
                res = c.execute(stmt, batch)
        return int(res.rowcount) if res.rowcount is not None else -1
