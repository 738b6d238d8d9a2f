"""The traffic explorer's search: filters, full-text search (FTS5 / PostgreSQL), keyset
paging, and erased text never found (both stores)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from serving._wire import TrafficRecord
from serving.store import Store, TrafficQuery, VerdictFilter, erase, tables
from serving.store._search import fts5_query

T0 = datetime(2026, 11, 20, 12, tzinfo=UTC)


def _rec(i: int, text: str, **kw: object) -> TrafficRecord:
    base = {
        "request_id": f"r{i:03d}",
        "ts": T0 + timedelta(minutes=i),
        "key_name": "app",
        "model": "app-model",
        "endpoint": "chat",
        "stream": False,
        "request": {"messages": [{"role": "user", "content": text}]},
        "response_text": f"answer {i}",
        "status": 200,
        "finish_reason": "stop",
    }
    return TrafficRecord.model_validate({**base, **kw})


@pytest.fixture
def store(scratch_store_url: str) -> Store:
    s = Store(scratch_store_url)
    s.ensure_schema()
    s.insert_traffic(
        [_rec(i, f"plain words {i}") for i in range(7)]
        + [
            _rec(10, "the zebra crossing", key_name="other"),
            _rec(11, "a Zebra again", status=429, finish_reason=None),
            _rec(12, 'hostile "quote" AND OR NEAR( *', source="judge"),
        ]
    )
    return s


def test_filters_combine_and_keyset_pages_cover_everything_once(store: Store) -> None:
    q = TrafficQuery(key="app", limit=3)
    seen: list[str] = []
    while True:
        page = store.search_traffic(q)
        seen += [r.request_id for r in page.records]
        if page.next is None:
            break
        q = q.model_copy(update={"after": page.next})
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) == 9
    assert [r.request_id for r in store.search_traffic(TrafficQuery(status=429)).records] == [
        "r011"
    ]
    judge = store.search_traffic(TrafficQuery(source="judge")).records
    assert [r.request_id for r in judge] == ["r012"]
    prod = store.search_traffic(TrafficQuery(source="production", limit=200)).records
    assert "r012" not in {r.request_id for r in prod} and len(prod) == 9
    day = store.search_traffic(TrafficQuery(first_day=date(2026, 11, 21))).records
    assert day == []


def test_full_text_search_uses_the_index_and_forgets_erased_text(store: Store) -> None:
    found = store.search_traffic(TrafficQuery(text="zebra")).records
    assert {r.request_id for r in found} == {"r010", "r011"}
    both = store.search_traffic(TrafficQuery(text="zebra crossing")).records
    assert [r.request_id for r in both] == ["r010"]  # every word must occur
    hostile = store.search_traffic(TrafficQuery(text='"quote" AND NEAR( *')).records
    assert [r.request_id for r in hostile] == ["r012"]  # operators are plain words
    assert store.search_traffic(TrafficQuery(text="answer", key="other")).records
    erase(store, "other", since=None, by="test", dry_run=False)
    found = store.search_traffic(TrafficQuery(text="zebra")).records
    assert [r.request_id for r in found] == ["r011"]  # the erased record's text is gone


def test_verdict_and_label_filters(store: Store) -> None:
    store.execute(
        tables.verdicts.insert(),
        [
            {
                "item_id": "r003",
                "criterion": "concise",
                "criterion_version": "1",
                "kind": "pass_fail",
                "judge": "j",
                "judge_version": "1",
                "judge_model": "m",
                "judge_args": "{}",
                "model": "app-model",
                "run_id": "2026-11-20",
                "day": "2026-11-20",
                "verdict": "fail",
                "judge_prompt_tokens": 0,
                "judge_completion_tokens": 0,
                "judge_cost_usd": 0.0,
                "latency_ms": 1.0,
                "created_at": T0,
            }
        ],
    )
    failed = TrafficQuery(verdict=VerdictFilter(criterion="concise", outcome="fail"))
    assert [r.request_id for r in store.search_traffic(failed).records] == ["r003"]
    passed = TrafficQuery(verdict=VerdictFilter(criterion="concise", outcome="pass"))
    assert store.search_traffic(passed).records == []
    assert store.search_traffic(TrafficQuery(labelled=True)).records == []
    assert len(store.search_traffic(TrafficQuery(labelled=False, limit=200)).records) == 10


def test_a_cursor_not_given_out_is_a_clear_error(store: Store) -> None:
    with pytest.raises(ValueError, match="after"):
        store.search_traffic(TrafficQuery(after="not-a-cursor"))


def test_fts5_query_quotes_every_word() -> None:
    assert fts5_query('a "b" OR c*') == '"a" """b""" "OR" "c*"'


def test_the_index_holds_the_decoded_text_a_person_reads(scratch_store_url: str) -> None:
    """Words after a newline and non-ASCII words are found; the request's JSON keys are
    not (they would match every record); hostile shapes are captured, not refused."""
    store = Store(scratch_store_url)
    store.ensure_schema()
    rows = [
        _rec(1, "first line\nWhat about crème brûlée?\tnext"),
        _rec(2, "plain", request={"messages": "not a list"}),
        _rec(
            3,
            "x",
            request={
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "parts"}]},
                    "a string message",
                    7,
                ]
            },
        ),
        _rec(4, "x", request={"prompt": "a completion prompt about otters", "model": "m"}),
        _rec(5, "x", request={"prompt": ["list", "prompt"]}),
    ]
    # One body of more distinct words than a tsvector holds: captured all the same.
    flood = " ".join(f"w{i:x}" for i in range(300_000))
    rows.append(_rec(6, flood))
    assert store.insert_traffic(rows) == 6
    ids = lambda q: [r.request_id for r in store.search_traffic(TrafficQuery(text=q)).records]  # noqa: E731
    assert ids("What") == ["r001"] and ids("brûlée") == ["r001"] and ids("next") == ["r001"]
    assert ids("otters") == ["r004"]
    assert ids("content") == [] and ids("role") == []  # keys of the JSON are not text
    assert ids("w10") == ["r006"]  # the start of a long body is indexed
