"""Full-text search over captured traffic (the console's explorer): an FTS5 table kept by
triggers on SQLite, a GIN index of the text's ``tsvector`` on PostgreSQL.

Both index the request's JSON and the response's text. Erasure and retention blank the
text in place, and the index follows (SQLite's triggers; PostgreSQL's index is of the
row's current text), so removed text is never found.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

FTS = "gavel_traffic_fts"
_COLS = "request_json, response_text"
_SQLITE = [
    f"CREATE VIRTUAL TABLE {FTS} USING fts5({_COLS}, content='gavel_traffic', "
    "content_rowid='rowid')",
    f"CREATE TRIGGER {FTS}_ai AFTER INSERT ON gavel_traffic BEGIN "
    f"INSERT INTO {FTS}(rowid, {_COLS}) VALUES (new.rowid, new.request_json, new.response_text); "
    "END",
    f"CREATE TRIGGER {FTS}_ad AFTER DELETE ON gavel_traffic BEGIN "
    f"INSERT INTO {FTS}({FTS}, rowid, {_COLS}) "
    "VALUES ('delete', old.rowid, old.request_json, old.response_text); END",
    f"CREATE TRIGGER {FTS}_au AFTER UPDATE OF {_COLS} ON gavel_traffic BEGIN "
    f"INSERT INTO {FTS}({FTS}, rowid, {_COLS}) "
    "VALUES ('delete', old.rowid, old.request_json, old.response_text); "
    f"INSERT INTO {FTS}(rowid, {_COLS}) VALUES (new.rowid, new.request_json, new.response_text); "
    "END",
    f"INSERT INTO {FTS}({FTS}) VALUES ('rebuild')",
]
PG_VECTOR = (
    "to_tsvector('simple'::regconfig, coalesce(request_json, '') || ' ' || "
    "coalesce(response_text, ''))"
)
"""The indexed expression; a query must use it verbatim for the index to serve it."""


def upgrade() -> None:
    """Create the full-text index of the traffic's text."""
    if op.get_bind().dialect.name == "sqlite":
        for stmt in _SQLITE:
            op.execute(stmt)
    else:
        op.execute(f"CREATE INDEX ix_{FTS} ON gavel_traffic USING gin ({PG_VECTOR})")


def downgrade() -> None:
    """Drop it."""
    if op.get_bind().dialect.name == "sqlite":
        for suffix in ("ai", "ad", "au"):
            op.execute(f"DROP TRIGGER IF EXISTS {FTS}_{suffix}")
        op.execute(f"DROP TABLE IF EXISTS {FTS}")
    else:
        op.execute(f"DROP INDEX IF EXISTS ix_{FTS}")
