"""Gateway parts on real stores (SQLite and PostgreSQL): keys, limits, capture, spool, redaction."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from serving._keys import bearer_token, hash_key, new_key
from serving._wire import TrafficRecord
from serving.gateway import CaptureWriter, SlidingWindows, Spool, redact
from serving.store import Store


def record(i: int = 0, tag: str = "") -> TrafficRecord:
    return TrafficRecord(
        request_id=f"req-{tag or uuid.uuid4().hex}-{i}",
        ts=datetime.now(UTC),
        key_name="k",
        model="app-model",
        role="app",
        endpoint="chat",
        stream=False,
        request={"messages": [{"role": "user", "content": f"q{i}"}], "max_tokens": 4},
        response_text=f"a{i}",
        status=200,
        prompt_tokens=3,
        completion_tokens=4,
        e2e_ms=10.0,
        cost_usd=0.0,
    )


def test_keys_are_stored_hashed_and_revocable(store_url: str) -> None:
    store = Store(store_url)
    name = f"k-{uuid.uuid4().hex[:8]}"
    plaintext, rec = new_key(name, ["infer"], rpm=5)
    store.add_key(rec)
    (row,) = store.fetch(
        text("select key_hash from gavel_api_keys where name=:n").bindparams(n=name)
    )
    stored = row["key_hash"]
    assert stored == hash_key(plaintext) and plaintext not in stored
    got = store.key_by_hash(hash_key(plaintext))
    assert got is not None and got.rpm == 5 and got.revoked_at is None
    with pytest.raises(ValueError, match="already exists"):
        store.add_key(rec)
    assert store.revoke_key(name) and not store.revoke_key(name)
    revoked = store.key_by_hash(hash_key(plaintext))
    assert revoked is not None and revoked.revoked_at is not None


def test_bearer_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token(None) is None and bearer_token("Bearer ") is None


def test_sliding_window_rpm_and_retry_after() -> None:
    w = SlidingWindows()
    assert w.admit("k", 0.0, rpm=2, tpm=None) is None
    assert w.admit("k", 10.0, rpm=2, tpm=None) is None
    assert w.admit("k", 20.0, rpm=2, tpm=None) == pytest.approx(40.0)
    assert w.admit("other", 20.0, rpm=2, tpm=None) is None  # per key
    assert w.admit("k", 60.5, rpm=2, tpm=None) is None  # the first one expired


def test_sliding_window_tpm() -> None:
    w = SlidingWindows()
    assert w.admit("k", 0.0, rpm=None, tpm=100) is None
    w.add_tokens("k", 1.0, 60)
    assert w.admit("k", 2.0, rpm=None, tpm=100) is None
    w.add_tokens("k", 3.0, 60)
    assert w.admit("k", 4.0, rpm=None, tpm=100) == pytest.approx(57.0)
    assert w.admit("k", 61.5, rpm=None, tpm=100) is None


def test_idempotent_insert(store_url: str) -> None:
    store = Store(store_url)
    tag = uuid.uuid4().hex
    recs = [record(i, tag) for i in range(5)]
    store.insert_traffic(recs)
    # A replay of records already stored (a spool replayed twice, say) must not replace
    # them: insert-or-ignore, never an upsert.
    store.insert_traffic([r.model_copy(update={"response_text": "REPLAY"}) for r in recs[2:]])
    got = store.traffic_by_ids(r.request_id for r in recs)
    assert sorted(r.request_id for r in got) == sorted(r.request_id for r in recs)
    assert {r.response_text for r in got} == {f"a{i}" for i in range(5)}


async def test_writer_batches_off_the_request_path(store_url: str, tmp_path: Path) -> None:
    store = Store(store_url)
    w = CaptureWriter(store, spool_dir=tmp_path / "spool", flush_interval_s=0.05)
    w.start()
    tag = uuid.uuid4().hex
    for i in range(300):
        w.submit(record(i, tag))
    assert w.queued == 300  # submit did no I/O
    ids = [f"req-{tag}-{i}" for i in range(300)]
    deadline = asyncio.get_running_loop().time() + 30
    while store.count_traffic(ids) < 300 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)  # the background loop writes, without close()
    assert store.count_traffic(ids) == 300 and w.queued == 0
    await w.close()


async def test_unreachable_store_spools_then_replays_without_loss_or_duplicates(
    store_url: str, tmp_path: Path
) -> None:
    good = Store(store_url)
    down = Store("postgresql+psycopg://postgres@127.0.0.1:1/none", connect_timeout_s=1)
    w = CaptureWriter(down, spool_dir=tmp_path / "spool", flush_interval_s=0.05, queue_max=100)
    tag = uuid.uuid4().hex
    for i in range(1000):  # a burst while the store is down
        w.submit(record(i, tag))
        assert w.queued <= 100  # memory stays bounded: the rest went to disk
    await w.flush()
    assert w.queued == 0 and w.spool.pending == 1000
    w.store = good  # the store is back
    await w.flush()
    await w.flush()  # a second replay finds nothing left to replay
    assert w.spool.pending == 0
    assert not list((tmp_path / "spool").glob("*.jsonl"))  # the replayed files are gone
    got = good.traffic_by_ids(f"req-{tag}-{i}" for i in range(1000))
    assert sorted(r.response_text or "" for r in got) == sorted(f"a{i}" for i in range(1000))


def test_spool_left_by_a_dead_writer_is_replayed(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'g.db'}")
    dead = Spool(tmp_path / "spool", tag="dead")
    dead.append([record(i, "dead") for i in range(3)])
    alive = Spool(tmp_path / "spool", tag="alive")
    dead.close()  # a writer that closes with records left gives them up
    assert alive.adopt_orphans() == 3 and alive.pending == 3
    assert alive.replay(store, batch_size=2) == 3
    left = sorted(p.name for p in (tmp_path / "spool").iterdir())
    assert store.count_traffic() == 3 and left == ["alive.owner"]


def test_redaction() -> None:
    out = redact("mail a.b@example.com or call +1 (415) 555-0100, key sk-abcdefghijklmnop1234")
    assert "example.com" not in out and "555" not in out and "sk-abc" not in out
    assert "[EMAIL]" in out and "[PHONE]" in out and "[SECRET]" in out
    assert redact("The answer is 42.") == "The answer is 42."


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_one_hostile_record_does_not_break_a_days_export(
    store_url: str, tmp_path: Path, fmt: str
) -> None:
    """Found on the live stack (issue 21): a body nested deeper than pydantic serializes
    was served and captured, then `traffic export` died with a traceback, exporting
    nothing. Now that record is skipped, counted and named; the rest are exported."""
    from tests.conftest import gavel_main

    tag = uuid.uuid4().hex
    deep: dict[str, object] = {}
    cur = deep
    for _ in range(400):
        cur["x"] = {}
        cur = cur["x"]  # type: ignore[assignment]
    bad = record(1, tag).model_copy(update={"request": {"messages": [], "extra": deep}})
    Store(store_url).insert_traffic([record(0, tag), bad, record(2, tag)])
    cfg = tmp_path / "stack.yaml"
    cfg.write_text(
        f'gateway: {{store: {{url: "{store_url}"}}}}\n'
        "models: [{role: app, model_id: app-model, source: {path: m}}]\n"
    )
    out = tmp_path / f"day.{fmt}"
    proc = gavel_main("traffic", "export", "--config", str(cfg), "--date", "today",
                      "--format", fmt, "--out", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("skipped")]
    assert f"req-{tag}-1" in line and "depth" in line
    if fmt == "jsonl":
        text_out = out.read_text()
        assert f"req-{tag}-0" in text_out and f"req-{tag}-2" in text_out
        assert f"req-{tag}-1" not in text_out
    else:
        import pyarrow.parquet as pq

        ids = set(pq.read_table(out).column("request_id").to_pylist())
        assert {f"req-{tag}-0", f"req-{tag}-2"} <= ids and f"req-{tag}-1" not in ids


def test_the_body_s_nesting_is_bounded_without_recursion() -> None:
    from serving.gateway._body import Refusal, parse_body
    from serving.gateway._text import depth

    assert depth("x") == 0 and depth({}) == 1 and depth({"a": [1, {"b": []}]}) == 4
    nested: object = 0
    for _ in range(100_000):  # deeper than any recursion limit
        nested = [nested]
    assert depth(nested) == 100_000
    ok = '{"a": ' + "[" * 63 + "]" * 63 + "}"
    assert depth(parse_body(ok.encode(), max_depth=64)) == 64
    with pytest.raises(Refusal, match="deeper than 64 levels"):
        parse_body(('{"a": ' + "[" * 64 + "]" * 64 + "}").encode(), max_depth=64)


def test_a_request_ends_once_whichever_path_gets_there_first() -> None:
    from serving.gateway._context import RequestContext

    ended: list[int] = []
    ctx = RequestContext("chat", model="app-model", stream=True, prompt_estimate=12,
                         engine_called=True, on_end=lambda c: ended.append(c.status))  # fmt: skip
    ctx.end_if_abandoned()  # its task ended, nothing read
    ctx.end()  # a late finally
    assert ended == [499] and ctx.prompt_tokens == 12
    served = RequestContext("chat", model="app-model", on_end=lambda c: ended.append(c.status))
    served.end()
    served.end_if_abandoned()
    assert ended == [499, 200]
