"""Full-text search over captured traffic (the console's explorer).

What is indexed is the text a person reads, decoded: each message's ``content`` (when it
is a string), a completion's ``prompt`` (when it is a string) and the response, joined,
its first ``SEARCH_CHARS`` characters. Never the request's JSON itself: escapes
(``\\n``, ``\\u00e9``) would hide words, and keys (``role``, ``content``) would match
every record. The cap bounds what one hostile body can cost the index (PostgreSQL
refuses a ``tsvector`` over 1 MB, and the insert with it: capture must never fail).

- SQLite: a contentless FTS5 table keyed by the traffic row's ``rowid``, kept by
  triggers (insert, delete, and an update of the text: erasure and retention blank text
  in place, so removed words leave the index).
- PostgreSQL: ``gavel_search_text(request_json, response_text)``, an immutable SQL
  function, and a GIN index on its ``tsvector`` (``simple``: no stemming, any language).

The SQLite table maps rows by ``rowid``, which ``VACUUM`` may renumber (the traffic
table has a text primary key): Gavel never runs it; after a manual ``VACUUM``, run
``INSERT INTO gavel_traffic_fts(gavel_traffic_fts) VALUES ('delete-all')`` and re-run
this revision's fill statement (``FILL`` below).

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
SEARCH_CHARS = 100_000


def sqlite_text(row: str) -> str:
    """The indexed text of ``row`` (``new``, ``old`` or a table alias) in SQLite's SQL.
    Nested CASEs: SQLite does not short-circuit AND, and ``json_type`` of a message that
    is not an object would be an error."""
    content = (
        "CASE WHEN m.type = 'object' THEN CASE WHEN json_type(m.value, '$.content') = 'text' "
        "THEN json_extract(m.value, '$.content') END END"
    )
    prompt = (
        f"CASE WHEN json_type({row}.request_json, '$.prompt') = 'text' "
        f"THEN json_extract({row}.request_json, '$.prompt') END"
    )
    messages = (
        f"(SELECT group_concat({content}, ' ') FROM json_each({row}.request_json, '$.messages') "
        "AS m)"
    )
    return (
        f"substr(coalesce({messages}, '') || ' ' || coalesce({prompt}, '') || ' ' || "
        f"coalesce({row}.response_text, ''), 1, {SEARCH_CHARS})"
    )


FILL = f"INSERT INTO {FTS}(rowid, body) SELECT t.rowid, {sqlite_text('t')} FROM gavel_traffic t"
_SQLITE = [
    f"CREATE VIRTUAL TABLE {FTS} USING fts5(body, content='')",
    f"CREATE TRIGGER {FTS}_ai AFTER INSERT ON gavel_traffic BEGIN "
    f"INSERT INTO {FTS}(rowid, body) VALUES (new.rowid, {sqlite_text('new')}); END",
    f"CREATE TRIGGER {FTS}_ad AFTER DELETE ON gavel_traffic BEGIN "
    f"INSERT INTO {FTS}({FTS}, rowid, body) VALUES ('delete', old.rowid, {sqlite_text('old')}); "
    "END",
    f"CREATE TRIGGER {FTS}_au AFTER UPDATE OF request_json, response_text ON gavel_traffic "
    f"BEGIN INSERT INTO {FTS}({FTS}, rowid, body) "
    f"VALUES ('delete', old.rowid, {sqlite_text('old')}); "
    f"INSERT INTO {FTS}(rowid, body) VALUES (new.rowid, {sqlite_text('new')}); END",
    FILL,
]
_PG_FUNCTION = f"""
CREATE FUNCTION gavel_search_text(request_json text, response_text text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT left(
    coalesce((SELECT string_agg(m->>'content', ' ') FROM jsonb_array_elements(
      CASE WHEN jsonb_typeof(request_json::jsonb->'messages') = 'array'
           THEN request_json::jsonb->'messages' ELSE '[]'::jsonb END) AS m
      WHERE jsonb_typeof(m) = 'object' AND jsonb_typeof(m->'content') = 'string'), '')
    || ' ' || CASE WHEN jsonb_typeof(request_json::jsonb->'prompt') = 'string'
                   THEN request_json::jsonb->>'prompt' ELSE '' END
    || ' ' || coalesce(response_text, ''), {SEARCH_CHARS})
$$"""
PG_VECTOR = "to_tsvector('simple'::regconfig, gavel_search_text(request_json, response_text))"
"""The indexed expression; a query must use it verbatim for the index to serve it."""


def upgrade() -> None:
    """Create the full-text index of the traffic's text."""
    if op.get_bind().dialect.name == "sqlite":
        for stmt in _SQLITE:
            op.execute(stmt)
    else:
        op.execute(_PG_FUNCTION)
        op.execute(f"CREATE INDEX ix_{FTS} ON gavel_traffic USING gin ({PG_VECTOR})")


def downgrade() -> None:
    """Drop it."""
    if op.get_bind().dialect.name == "sqlite":
        for suffix in ("ai", "ad", "au"):
            op.execute(f"DROP TRIGGER IF EXISTS {FTS}_{suffix}")
        op.execute(f"DROP TABLE IF EXISTS {FTS}")
    else:
        op.execute(f"DROP INDEX IF EXISTS ix_{FTS}")
        op.execute("DROP FUNCTION IF EXISTS gavel_search_text(text, text)")
