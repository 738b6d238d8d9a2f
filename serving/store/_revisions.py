"""The store's schema revision, through Alembic: where a database is, where this Gavel
needs it, and the upgrade between the two (under a lock, so that several processes that
open one new store create it once)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

MIGRATIONS = Path(__file__).parent / "_migrations"
_PG_LOCK = 0x6761_7665  # "gave": the advisory lock every Gavel migration holds


class SchemaOutOfDate(RuntimeError):
    """The store is older (or newer) than this Gavel; the message says what to run."""


@dataclass(frozen=True)
class SchemaState:
    """Where a store's schema is."""

    current: str | None
    """The store's revision; ``None`` for an empty store or one made before Alembic."""
    head: str
    """The revision this Gavel's code needs."""
    empty: bool
    """No Gavel table at all (a new store)."""

    @property
    def up_to_date(self) -> bool:
        """True if the store is at ``head``."""
        return self.current == self.head

    def describe(self) -> str:
        """One line: the revision, and whether it is the one needed."""
        if self.empty:
            return f"empty store (no tables); this Gavel needs revision {self.head}"
        have = self.current or "none (made before migrations)"
        verdict = "up to date" if self.up_to_date else f"this Gavel needs {self.head}"
        return f"revision {have}: {verdict}"


def _config(conn: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def known_revisions() -> set[str]:
    """Every revision among the migration scripts."""
    return {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}


def head_revision() -> str:
    """The newest revision among the migration scripts."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "no migration scripts"
    return head


def schema_state(engine: Engine) -> SchemaState:
    """Read the store's revision (no writes)."""
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        tables = inspect(conn).get_table_names()
    empty = not any(t.startswith("gavel_") for t in tables)
    return SchemaState(current=current, head=head_revision(), empty=empty)


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """One migration at a time per store: an advisory lock (PostgreSQL) or a lock file
    beside the SQLite file."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK})
                conn.commit()
        return
    db = engine.url.database
    if not db or db == ":memory:":
        yield
        return
    with open(f"{db}.migrate-lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def upgrade(engine: Engine, target: str = "head") -> tuple[SchemaState, SchemaState]:
    """Upgrade the store to ``target``; (the state before, the state after).

    Each revision commits on its own (Alembic's ``transaction_per_migration``): a
    revision that fails leaves the store at the last one that succeeded."""
    with _migration_lock(engine):
        before = schema_state(engine)
        if before.current != before.head or target != "head":
            with engine.connect() as conn:
                command.upgrade(_config(conn), target)
                conn.commit()
        return before, schema_state(engine)


def downgrade(engine: Engine, target: str) -> None:
    """Downgrade the store to ``target`` (tests and emergencies; text erased stays erased)."""
    with _migration_lock(engine), engine.begin() as conn:
        command.downgrade(_config(conn), target)


def pending_changes(engine: Engine) -> list[object]:
    """Differences between the store and the code's tables (Alembic's autogenerate
    comparison): empty when the revisions describe the schema exactly."""
    from alembic.autogenerate import compare_metadata

    from serving.store._schema import metadata

    def modelled(name: str | None, _type: str, _parents: object) -> bool:
        # The full-text index (revision 0007) is raw DDL: an FTS5 table and its shadow
        # tables on SQLite, an expression index on PostgreSQL; not in the code's tables.
        return not (name or "").replace("ix_", "", 1).startswith("gavel_traffic_fts")

    opts = {"include_name": modelled}
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn, opts=opts), metadata))
