"""The Gavel store: API keys and captured traffic, in SQLite (default) or PostgreSQL.

SQLAlchemy Core keeps one schema for both. Inserts of traffic are idempotent on the
request id (``ON CONFLICT DO NOTHING``), so replaying a spool never writes twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from serving._wire import ApiKey, TrafficRecord

metadata = MetaData()

api_keys = Table(
    "gavel_api_keys",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("scopes", String(128), nullable=False),
    Column("rpm", Integer),
    Column("tpm", Integer),
    Column("metadata_only", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

traffic = Table(
    "gavel_traffic",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("ts", DateTime(timezone=True), nullable=False, index=True),
    Column("day", String(10), nullable=False, index=True),
    Column("key_name", String(128)),
    Column("model", String(128), nullable=False),
    Column("role", String(16)),
    Column("endpoint", String(32), nullable=False),
    Column("stream", Boolean, nullable=False),
    Column("request_json", Text, nullable=False),
    Column("response_text", Text),
    Column("finish_reason", String(32)),
    Column("status", Integer, nullable=False),
    Column("error", Text),
    Column("prompt_tokens", Integer),
    Column("completion_tokens", Integer),
    Column("ttft_ms", Float),
    Column("e2e_ms", Float),
    Column("cost_usd", Float),
    Column("metadata_only", Boolean, nullable=False, default=False),
    Column("metadata_json", Text),
)


def add_missing_columns(engine: Engine, md: MetaData) -> None:
    """Additive migration: add nullable columns a newer Gavel defines to existing tables."""
    insp = inspect(engine)
    with engine.begin() as conn:
        for table in md.sorted_tables:
            if not insp.has_table(table.name):
                continue
            have = {c["name"] for c in insp.get_columns(table.name)}
            for col in table.columns:
                if col.name not in have and col.nullable:
                    ddl = col.type.compile(dialect=engine.dialect)
                    conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{col.name}" {ddl}'))


def resolve_url(url: str, *, base_dir: Path) -> str:
    """Make a relative SQLite path absolute (Ray workers do not share the CLI's cwd)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
        path = (base_dir / url[len(prefix) :]).resolve()
        return prefix + str(path)
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


class Store:
    """Keys and traffic in one database. Methods are blocking; call them off the event loop."""

    def __init__(self, url: str, *, connect_timeout_s: float = 5) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            path = url.removeprefix("sqlite:///")
            if path and path != url:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 5}
        elif url.startswith("postgresql"):
            kwargs["connect_args"] = {"connect_timeout": int(connect_timeout_s)}
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._schema_ready = False

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def ensure_schema(self) -> None:
        """Create the tables if they do not exist (idempotent)."""
        if not self._schema_ready:
            metadata.create_all(self.engine)
            add_missing_columns(self.engine, metadata)
            self._schema_ready = True

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    # --- keys -----------------------------------------------------------------

    def add_key(self, key: ApiKey) -> None:
        """Insert a key; raises ``ValueError`` if the name is taken."""
        self.ensure_schema()
        with self.engine.begin() as conn:
            exists = conn.execute(select(api_keys.c.name).where(api_keys.c.name == key.name))
            if exists.first() is not None:
                raise ValueError(f"a key named {key.name!r} already exists")
            conn.execute(api_keys.insert().values(**_key_row(key)))

    def key_by_hash(self, key_hash: str) -> ApiKey | None:
        """The key with this hash, revoked or not."""
        self.ensure_schema()
        with self.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_hash == key_hash)).first()
        return _key_from_row(row._mapping) if row is not None else None

    def list_keys(self) -> list[ApiKey]:
        """Every key, by name."""
        self.ensure_schema()
        with self.engine.connect() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.name)).all()
        return [_key_from_row(r._mapping) for r in rows]

    def revoke_key(self, name: str) -> bool:
        """Mark a key revoked; False if there is no such active key."""
        self.ensure_schema()
        with self.engine.begin() as conn:
            res = conn.execute(
                update(api_keys)
                .where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
        return bool(res.rowcount)

    # --- traffic --------------------------------------------------------------

    def insert_traffic(self, records: Iterable[TrafficRecord]) -> int:
        """Insert records, skipping request ids already stored; returns rows inserted."""
        rows = [_traffic_row(r) for r in records]
        if not rows:
            return 0
        self.ensure_schema()
        ins = pg_insert(traffic) if self.dialect == "postgresql" else sqlite_insert(traffic)
        stmt = ins.on_conflict_do_nothing(index_elements=["request_id"])
        with self.engine.begin() as conn:
            res = conn.execute(stmt, rows)
        return int(res.rowcount) if res.rowcount is not None and res.rowcount >= 0 else len(rows)

    def traffic_for_day(self, day: date) -> list[TrafficRecord]:
        """Every record captured on ``day`` (UTC), oldest first."""
        self.ensure_schema()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(traffic).where(traffic.c.day == day.isoformat()).order_by(traffic.c.ts)
            ).all()
        return [_traffic_from_row(r._mapping) for r in rows]

    def traffic_by_ids(self, ids: Iterable[str]) -> list[TrafficRecord]:
        """The stored records with these request ids."""
        wanted = list(ids)
        if not wanted:
            return []
        self.ensure_schema()
        with self.engine.connect() as conn:
            rows = conn.execute(select(traffic).where(traffic.c.request_id.in_(wanted))).all()
        return [_traffic_from_row(r._mapping) for r in rows]

    def count_traffic(self) -> int:
        """Number of captured records."""
        self.ensure_schema()
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(traffic)).scalar_one())


def _key_row(k: ApiKey) -> dict[str, Any]:
    row = k.model_dump()
    row["scopes"] = ",".join(k.scopes)
    return row


def _key_from_row(m: Any) -> ApiKey:
    d = dict(m)
    d["scopes"] = [s for s in str(d["scopes"]).split(",") if s]
    for col in ("created_at", "revoked_at"):
        if isinstance(d[col], datetime) and d[col].tzinfo is None:
            d[col] = d[col].replace(tzinfo=UTC)
    return ApiKey.model_validate(d)


def _traffic_row(r: TrafficRecord) -> dict[str, Any]:
    row = r.model_dump(exclude={"request", "metadata"})
    row["request_json"] = json.dumps(r.request, sort_keys=True)
    row["metadata_json"] = json.dumps(r.metadata, sort_keys=True) if r.metadata else None
    row["day"] = r.ts.astimezone(UTC).date().isoformat()
    return row


def _traffic_from_row(m: Any) -> TrafficRecord:
    d = dict(m)
    d["request"] = json.loads(d.pop("request_json"))
    meta = d.pop("metadata_json", None)
    d["metadata"] = json.loads(meta) if meta else {}
    d.pop("day", None)
    if isinstance(d["ts"], datetime) and d["ts"].tzinfo is None:
        d["ts"] = d["ts"].replace(tzinfo=UTC)
    return TrafficRecord.model_validate(d)
