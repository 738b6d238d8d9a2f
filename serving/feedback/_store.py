"""Feedback in the store: the request it is about, the latest value per (request, name,
user) with its revision, and every value as it was sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import and_, select

from serving.feedback._wire import Feedback
from serving.store import Store, tables

RESPONSE_PREFIXES = ("chatcmpl-", "cmpl-")
"""A response's ``id`` is Gavel's request id behind one of these (the engine's)."""


@dataclass(frozen=True)
class Target:
    """The captured request a piece of feedback is about."""

    request_id: str
    key_name: str | None
    model: str
    day: str
    text_held: bool
    """False for a metadata-only key's request, or one whose text was erased or purged
    by retention: feedback on it keeps no comment."""


def find_target(store: Store, given_id: str) -> Target | None:
    """The captured request ``given_id`` names (a response's id, or Gavel's request id)."""
    t = tables.traffic
    ids = [given_id] + [p + given_id for p in RESPONSE_PREFIXES if not given_id.startswith(p)]
    cols = (t.c.request_id, t.c.key_name, t.c.model, t.c.day, t.c.metadata_only,
            t.c.text_removed)  # fmt: skip
    rows = store.fetch(select(*cols).where(t.c.request_id.in_(ids)))
    if not rows:
        return None
    row = min(rows, key=lambda r: ids.index(r["request_id"]))
    held = not row["metadata_only"] and row["text_removed"] is None
    return Target(row["request_id"], row["key_name"], row["model"], row["day"], held)


def record(store: Store, fb: Feedback) -> Feedback:
    """Keep ``fb`` as the latest value of its (request, name, user) and append it to the
    history, in one transaction; returns it with its revision."""
    f = tables.feedback
    same = and_(f.c.request_id == fb.request_id, f.c.name == fb.name, f.c.user_id == fb.user)
    with store.transaction() as conn:
        prev = conn.execute(select(f.c.revision).where(same)).scalar()
        kept = fb.model_copy(update={"revision": (prev or 0) + 1})
        store.upsert(f, [_row(kept)], update=_UPDATED, conn=conn)
        conn.execute(tables.feedback_history.insert().values(
            request_id=kept.request_id, name=kept.name, user_id=kept.user, value=kept.value,
            comment=kept.comment, sent_by=kept.sent_by, at=kept.at,
        ))  # fmt: skip
    return kept


_UPDATED = ("value", "positive", "comment", "sent_by", "revision", "at")


def _row(fb: Feedback) -> dict[str, Any]:
    row = fb.model_dump()
    row["user_id"] = row.pop("user")
    return row


def _from_row(row: dict[str, Any]) -> Feedback:
    data = dict(row)
    data["user"] = data.pop("user_id")
    return Feedback.model_validate(data)


def feedback_for(store: Store, request_ids: list[str]) -> list[Feedback]:
    """The latest feedback on these requests."""
    f = tables.feedback
    out: list[Feedback] = []
    for i in range(0, len(request_ids), 500):
        rows = store.fetch(select(f).where(f.c.request_id.in_(request_ids[i : i + 500])))
        out += [_from_row(r) for r in rows]
    return out


def feedback_between(store: Store, start: date, end: date) -> list[Feedback]:
    """The latest feedback on requests of days ``start`` to ``end`` (inclusive)."""
    f = tables.feedback
    rows = store.fetch(select(f).where(f.c.day >= start.isoformat(), f.c.day <= end.isoformat()))
    return [_from_row(r) for r in rows]


def history(store: Store, request_id: str) -> list[dict[str, Any]]:
    """Every value sent about ``request_id``, oldest first."""
    h = tables.feedback_history
    return store.fetch(select(h).where(h.c.request_id == request_id).order_by(h.c.id))


def now_feedback(target: Target, **fields: Any) -> Feedback:
    """A :class:`Feedback` about ``target`` (``fields``: the rest, ``revision`` 0)."""
    return Feedback(request_id=target.request_id, model=target.model, day=target.day,
                    revision=0, **fields)  # fmt: skip
