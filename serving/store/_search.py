"""Searching captured traffic: filters, full-text search and keyset paging (the console's
traffic explorer).

Full-text search uses the index of revision 0007: SQLite's FTS5 table (each word of the
query is matched as a quoted term, so the query language's operators are never
interpreted) or PostgreSQL's ``tsvector`` GIN index (``plainto_tsquery``). Pages are
keyset-paged, newest first, on ``(ts, request_id)``: the cursor is the last row's pair,
so a page costs the same at any depth and rows captured meanwhile do not shift it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import Field
from sqlalchemy import ColumnElement, Select, and_, exists, func, literal_column, or_, select, text

from serving._base import GavelModel
from serving._wire import TrafficRecord
from serving.store._db import as_utc
from serving.store._schema import labels, traffic, verdicts

PG_VECTOR = "to_tsvector('simple'::regconfig, gavel_search_text(request_json, response_text))"
"""Revision 0007's indexed expression, verbatim (the planner matches it textually)."""

Text64 = Annotated[str, Field(min_length=1, max_length=128)]


class VerdictFilter(GavelModel):
    """Records with a verdict of ``outcome`` on ``criterion`` (any version, any run)."""

    criterion: Text64
    outcome: Text64


class TrafficQuery(GavelModel):
    """The explorer's filters (all optional, combined with AND) and its page."""

    first_day: date | None = None
    last_day: date | None = None
    model: Text64 | None = None
    key: Text64 | None = None
    status: Annotated[int, Field(ge=100, le=599)] | None = None
    source: Literal["production", "judge", "eval", "shadow"] | None = None
    arm: Literal["production", "candidate"] | None = None
    finish_reason: Text64 | None = None
    verdict: VerdictFilter | None = None
    labelled: bool | None = None
    text: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    """Words that must all occur in the request or the response (full-text search)."""
    after: Annotated[str, Field(max_length=120)] | None = None
    """The cursor of the previous page (:attr:`TrafficPage.next`)."""
    limit: Annotated[int, Field(ge=1, le=200)] = 50


class TrafficPage(GavelModel):
    """One page of matching records, newest first."""

    records: list[TrafficRecord]
    next: str | None = None
    """The cursor of the next page (``None``: this was the last)."""


def cursor_of(record: TrafficRecord) -> str:
    """A record's keyset cursor: its capture time and request id."""
    return f"{as_utc(record.ts).isoformat()}|{record.request_id}"


def _parse_cursor(cursor: str) -> tuple[datetime, str]:
    ts, sep, rid = cursor.partition("|")
    try:
        when = datetime.fromisoformat(ts)
    except ValueError:
        raise ValueError("after: not a cursor this explorer gave out") from None
    if not sep or not rid:
        raise ValueError("after: not a cursor this explorer gave out")
    return when, rid


def fts5_query(words: str) -> str:
    """An FTS5 query that matches every word as a literal term (no operators)."""
    terms = [w.replace('"', '""') for w in words.split()]
    return " ".join(f'"{t}"' for t in terms if t)


def _text_match(dialect: str, words: str) -> ColumnElement[bool]:
    if dialect == "sqlite":
        match = text(
            "SELECT rowid FROM gavel_traffic_fts WHERE gavel_traffic_fts MATCH :fts"
        ).bindparams(fts=fts5_query(words))
        return literal_column("gavel_traffic.rowid").in_(match)
    vector: ColumnElement[Any] = literal_column(PG_VECTOR)
    return vector.op("@@")(func.plainto_tsquery(literal_column("'simple'::regconfig"), words))


def conditions(query: TrafficQuery, dialect: str) -> list[ColumnElement[bool]]:
    """The WHERE clauses of ``query`` (pure: no I/O)."""
    c = traffic.c
    out: list[ColumnElement[bool]] = []
    if query.first_day is not None:
        out.append(c.day >= query.first_day.isoformat())
    if query.last_day is not None:
        out.append(c.day <= query.last_day.isoformat())
    for column, value in (
        (c.model, query.model),
        (c.key_name, query.key),
        (c.status, query.status),
        (c.arm, query.arm),
        (c.finish_reason, query.finish_reason),
    ):
        if value is not None:
            out.append(column == value)
    if query.source == "production":
        out.append(or_(c.source == "production", c.source.is_(None)))
    elif query.source is not None:
        out.append(c.source == query.source)
    if query.verdict is not None:
        v = verdicts.c
        out.append(
            exists().where(
                v.item_id == c.request_id,
                v.criterion == query.verdict.criterion,
                v.verdict == query.verdict.outcome,
            )
        )
    if query.labelled is not None:
        labelled = exists().where(labels.c.item_id == c.request_id)
        out.append(labelled if query.labelled else ~labelled)
    if query.text is not None and query.text.split():
        out.append(_text_match(dialect, query.text))
    if query.after is not None:
        ts, rid = _parse_cursor(query.after)
        out.append(or_(c.ts < ts, and_(c.ts == ts, c.request_id < rid)))
    return out


def statement(query: TrafficQuery, dialect: str) -> Select[Any]:
    """The SELECT of one page (one row more than the page, to know if another follows)."""
    where = conditions(query, dialect)
    stmt = select(traffic).where(*where) if where else select(traffic)
    return stmt.order_by(traffic.c.ts.desc(), traffic.c.request_id.desc()).limit(query.limit + 1)
