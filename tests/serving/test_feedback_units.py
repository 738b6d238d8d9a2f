"""End users' feedback without a stack: the body's checks, who may send it, what is kept
(once per request, name and user, with history) on real stores, and what erasure and
retention take of it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from serving._gateway_config import CaptureConfig, RetentionConfig
from serving._wire import ApiKey, TrafficRecord
from serving.feedback import (
    FeedbackConfig,
    FeedbackName,
    FeedbackRoute,
    feedback_between,
    feedback_for,
    history,
)
from serving.feedback._route import parse_feedback
from serving.gateway._refusal import Refusal
from serving.store import Store, erase, purge
from serving.store import tables as t

TODAY = date(2026, 12, 4)
CONFIG = FeedbackConfig(
    names={"thumbs": FeedbackName(), "stars": FeedbackName(kind="number", min=1, max=5)},
    comment_max_chars=100, capture_wait_s=0.3,
)  # fmt: skip


def _key(name: str, *scopes: str, metadata_only: bool = False) -> ApiKey:
    return ApiKey(name=name, key_hash="0" * 64, scopes=list(scopes or ["infer"]),  # type: ignore[arg-type]
                  metadata_only=metadata_only, created_at=datetime.now(UTC))  # fmt: skip


def _record(key: str, *, day: date = TODAY, metadata_only: bool = False) -> TrafficRecord:
    return TrafficRecord(
        request_id=f"chatcmpl-{uuid.uuid4().hex}",
        ts=datetime(day.year, day.month, day.day, 9, tzinfo=UTC),
        key_name=key, model="app-model", endpoint="chat", stream=False,
        request={"messages": [{"role": "user", "content": "hi"}]}, response_text="hello",
        status=200, metadata_only=metadata_only,
    )  # fmt: skip


def _body(rid: str, name: str = "thumbs", value: object = True, **more: object) -> bytes:
    return json.dumps({"id": rid, "name": name, "value": value, **more}).encode()


def _route(store: Store, *, redact: bool = False) -> FeedbackRoute:
    return FeedbackRoute(store, CONFIG, CaptureConfig(redact=redact))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "not valid JSON"),
        (b'{"id": "r", "name": "thumbs", "value": true, "\\ud800": 1}', "lone UTF-16"),
        (b'{"id": "r\\u0000", "name": "thumbs", "value": true}', "NUL"),
        (b"[" * 100 + b"]" * 100, "JSON object"),
        (b"[1]", "body"),
        (_body("r", name="Thumbs Up"), "name"),
        (_body("r", name="stars_x"), "name: not a feedback name"),
        (_body("r", value="yes"), "value"),
        (_body("r", value=1), "value: thumbs takes true or false"),
        (_body("r", name="stars", value=True), "value: stars takes a number"),
        (_body("r", name="stars", value=6), "value: stars takes a number"),
        (_body("r", comment="x" * 101), "comment: at most 100"),
        (_body("r", user="a b"), "user"),
        (_body("r", extra=1), "a field feedback does not take"),
        (_body("r", **{"Thumbs Up": 1}), "a field feedback does not take"),
        (_body(""), "id"),
    ],
)
def test_a_bad_body_is_a_400_that_names_the_field(body: bytes, field: str) -> None:
    with pytest.raises(Refusal) as refused:
        parse_feedback(body, CONFIG)
    assert refused.value.status == 400 and field in refused.value.message
    assert "Thumbs Up" not in refused.value.message  # the client's input is never echoed


def test_a_number_name_needs_its_range() -> None:
    with pytest.raises(ValueError, match="min < max"):
        FeedbackName(kind="number", min=5, max=1)
    with pytest.raises(ValueError, match="takes no min"):
        FeedbackName(min=1)
    assert FeedbackName(kind="number", min=1, max=5).threshold() == 3


async def test_the_key_that_made_the_request_or_a_feedback_key_may_send_it(
    store_url: str,
) -> None:
    store = Store(store_url)
    mine, other = _record("app"), _record("other-app")
    store.insert_traffic([mine, other])
    route = _route(store)
    # The id the client saw, or Gavel's own id (without the engine's prefix).
    got = await route.handle(_body(mine.request_id), _key("app"))
    assert got["revision"] == 1 and got["positive"] is True
    bare = mine.request_id.removeprefix("chatcmpl-")
    got = await route.handle(_body(bare, value=False, comment="wrong"), _key("app"))
    assert got["id"] == mine.request_id and got["revision"] == 2 and got["positive"] is False
    with pytest.raises(Refusal) as refused:
        await route.handle(_body(other.request_id), _key("app"))
    assert refused.value.status == 403
    backend = await route.handle(_body(other.request_id, name="stars", value=4, user="u-1"),
                                 _key("backend", "feedback"))  # fmt: skip
    assert backend["revision"] == 1 and backend["positive"] is True  # 4 >= 3, the middle
    with pytest.raises(Refusal) as refused:
        await route.handle(_body("chatcmpl-nope"), _key("backend", "feedback"))
    assert refused.value.status == 404
    # Once per (request, name, user): the latest value, and every value in the history.
    rows = store.fetch(select(t.feedback).where(t.feedback.c.request_id == mine.request_id))
    assert [(r["value"], r["comment"], r["revision"]) for r in rows] == [(0.0, "wrong", 2)]
    assert [h["value"] for h in history(store, mine.request_id)] == [1.0, 0.0]
    # What the reports read: the latest values, as Feedback.
    day = feedback_between(store, TODAY, TODAY)
    assert {(f.request_id, f.user, f.value) for f in day} == {
        (mine.request_id, "", 0.0), (other.request_id, "u-1", 4.0)
    }  # fmt: skip
    assert [f.comment for f in feedback_for(store, [mine.request_id])] == ["wrong"]


async def test_a_metadata_only_key_s_request_keeps_no_comment_and_comments_are_redacted(
    store_url: str,
) -> None:
    store = Store(store_url)
    hidden, shown = _record("quiet", metadata_only=True), _record("app")
    store.insert_traffic([hidden, shown])
    quiet = _key("quiet", metadata_only=True)
    got = await _route(store).handle(_body(hidden.request_id, comment="my email a@b.co"), quiet)
    assert got["comment_kept"] is False
    await _route(store, redact=True).handle(
        _body(shown.request_id, comment="mail me at ana@example.com"), _key("app"))  # fmt: skip
    comments = {r["request_id"]: r["comment"] for r in store.fetch(select(t.feedback))}
    assert comments[hidden.request_id] is None
    assert "ana@example.com" not in comments[shown.request_id]
    assert all(h["comment"] is None for h in history(store, hidden.request_id))


async def test_erasure_and_retention_take_feedback_with_the_text(store_url: str) -> None:
    store = Store(store_url)
    leaver, other = _record("leaver"), _record("stayer")
    old = _record("app", day=TODAY - timedelta(days=40))
    store.insert_traffic([leaver, other, old])
    backend = _key("backend", "feedback")
    # Users' words about the leaver's request (sent by the application's backend), the
    # leaver's own words about another key's request, and an old record's.
    await _route(store).handle(_body(leaver.request_id, comment="MARKER-7"), backend)
    await _route(store).handle(_body(other.request_id, comment="MARKER-8"),
                               _key("leaver", "feedback"))  # fmt: skip
    await _route(store).handle(_body(old.request_id, comment="MARKER-9"), _key("app"))
    erase(store, "leaver", since=None, by="dpo", dry_run=False)
    for rid in (leaver.request_id, other.request_id):
        for table in (t.feedback, t.feedback_history):
            rows = store.fetch(select(table).where(table.c.request_id == rid))
            assert rows and all(r["comment"] is None for r in rows)  # the value stays
    retention = RetentionConfig.model_validate({"production": {"text_days": 7, "row_days": 30}})
    purge(store, retention, today=TODAY, dry_run=False)
    for table in (t.feedback, t.feedback_history):  # the rows went with the record's
        assert not store.fetch(select(table).where(table.c.request_id == old.request_id))
