"""The data's lifecycle on real stores (SQLite and PostgreSQL): retention keeps what is
labelled or golden and removes the rest, in batches; erasure removes one key's text and
is recorded; a backup taken while capture writes holds every record written before it."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from serving._gateway_config import RetentionConfig
from serving._wire import TrafficRecord
from serving.store import (
    Store,
    backup,
    describe,
    erase,
    erase_files,
    erasure_log,
    keep_golden,
    purge,
    reapply_erasures,
    restore,
)
from serving.store import tables as t

TODAY = date(2026, 11, 29)


def _record(day: date, *, key: str = "app", source: str = "production") -> TrafficRecord:
    return TrafficRecord(
        request_id=f"r-{uuid.uuid4().hex[:12]}",
        ts=datetime(day.year, day.month, day.day, 9, tzinfo=UTC),
        key_name=key, model="app-model", endpoint="chat", stream=False,
        request={"messages": [{"role": "user", "content": "secret text ✓"}]},
        response_text="secret answer", status=200, prompt_tokens=5, completion_tokens=3,
        source=source,  # type: ignore[arg-type]
    )  # fmt: skip


def _label(store: Store, request_id: str) -> None:
    store.insert_ignore(t.labels, [{
        "item_id": request_id, "criterion": "helpful", "criterion_version": "1",
        "labeller": "ana", "label": "pass", "labelled_at": datetime.now(UTC),
    }])  # fmt: skip


def _by_id(store: Store) -> dict[str, dict[str, object]]:
    return {r["request_id"]: r for r in store.fetch(select(t.traffic))}


def test_purge_keeps_labelled_and_golden_records_and_removes_the_rest(
    scratch_store_url: str,
) -> None:
    store = Store(scratch_store_url)
    old = [_record(TODAY - timedelta(days=40)) for _ in range(7)]
    middle = [_record(TODAY - timedelta(days=10)) for _ in range(3)]
    fresh = [_record(TODAY - timedelta(days=1)) for _ in range(2)]
    judge_old = [_record(TODAY - timedelta(days=40), source="judge") for _ in range(2)]
    store.insert_traffic(old + middle + fresh + judge_old)
    _label(store, old[0].request_id)
    _label(store, middle[0].request_id)
    keep_golden(store, [old[1].request_id])
    retention = RetentionConfig.model_validate(
        {"production": {"text_days": 7, "row_days": 30}, "batch_size": 2}
    )

    dry = purge(store, retention, today=TODAY, dry_run=True)
    assert [(ln.what, ln.removed, ln.kept_labelled, ln.kept_golden) for ln in dry.lines] == [
        ("text", 7, 2, 1), ("rows", 5, 1, 1),
    ]  # fmt: skip
    assert len(_by_id(store)) == 14  # the dry run changed nothing
    assert store.figures() == []

    report = purge(store, retention, today=TODAY, dry_run=False)
    assert [(ln.what, ln.removed) for ln in report.lines] == [("text", 7), ("rows", 5)]
    rows = _by_id(store)
    kept = {old[0].request_id, old[1].request_id}
    assert set(rows) == kept | {r.request_id for r in middle + fresh + judge_old}
    for rid in kept:  # labelled and golden: text and row kept
        assert rows[rid]["response_text"] == "secret answer" and rows[rid]["text_removed"] is None
    assert rows[middle[0].request_id]["response_text"] == "secret answer"  # labelled
    for r in middle[1:]:
        assert rows[r.request_id]["response_text"] is None
        assert rows[r.request_id]["request_json"] == "{}"
        assert rows[r.request_id]["text_removed"] == "retention"
        assert rows[r.request_id]["completion_tokens"] == 3  # the numbers stay
    for r in fresh + judge_old:  # not due, or a source without retention
        assert rows[r.request_id]["response_text"] == "secret answer"
    figures = {(f.name, tuple(sorted(f.labels.items()))): f.value for f in store.figures()}
    assert (
        figures[("gavel_store_purged_records", (("source", "production"), ("what", "rows")))] == 5
    )
    assert any(name == "gavel_store_last_purge_timestamp_seconds" for name, _ in figures)
    assert [ln.removed for ln in purge(store, retention, today=TODAY, dry_run=False).lines] == [
        0,
        0,
    ]
    # Readers survive a blanked record.
    assert store.traffic_by_ids([middle[1].request_id])[0].request == {}


def test_erase_removes_one_key_s_text_and_is_recorded(scratch_store_url: str) -> None:
    store = Store(scratch_store_url)
    theirs = [_record(TODAY - timedelta(days=d), key="leaver") for d in (0, 3, 9)]
    others = [_record(TODAY, key="stayer")]
    store.insert_traffic(theirs + others)
    _label(store, theirs[0].request_id)
    keep_golden(store, [theirs[1].request_id])
    assert erase(store, "leaver", since=TODAY - timedelta(days=5), by="dpo", dry_run=True) == 2
    assert erasure_log(store) == []
    n = erase(store, "leaver", since=TODAY - timedelta(days=5), by="dpo", dry_run=False)
    assert n == 2
    rows = _by_id(store)
    for r in theirs[:2]:  # labelled and golden alike
        assert rows[r.request_id]["response_text"] is None
        assert rows[r.request_id]["text_removed"] == "erased" and rows[r.request_id]["kept"] is None
    assert rows[theirs[2].request_id]["response_text"] == "secret answer"  # before --since
    assert rows[others[0].request_id]["response_text"] == "secret answer"
    (logged,) = erasure_log(store)
    assert (logged["key_name"], logged["since"], logged["records"], logged["erased_by"]) == (
        "leaver", (TODAY - timedelta(days=5)).isoformat(), 2, "dpo",
    )  # fmt: skip
    assert erase(store, "leaver", since=None, by="dpo", dry_run=False) == 1


def test_backup_and_restore_round_trip_while_capture_writes(
    scratch_store_url: str, tmp_path
) -> None:
    store = Store(scratch_store_url)
    written: list[tuple[float, str]] = []  # (when the insert returned, request id)
    stop = threading.Event()

    def capture() -> None:
        writer = Store(scratch_store_url)
        while not stop.is_set():
            batch = [_record(TODAY) for _ in range(5)]
            writer.insert_traffic(batch)
            done = time.monotonic()
            written.extend((done, r.request_id) for r in batch)
        writer.close()

    thread = threading.Thread(target=capture)
    thread.start()
    try:
        time.sleep(1.0)
        started = time.monotonic()
        backup(store, tmp_path / "gavel.backup")
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join()
    late = _record(TODAY)  # written after the backup: a restore must take it away
    store.insert_traffic([late])
    before = {rid for when, rid in written if when < started}
    after = {rid for when, rid in written if when >= started}
    assert len(before) >= 10 and after, "capture did not overlap the backup"
    assert "traffic records" in describe(store, tmp_path / "gavel.backup") or "tables" in describe(
        store, tmp_path / "gavel.backup"
    )
    restore(store, tmp_path / "gavel.backup")
    restored = set(_by_id(store))
    assert before <= restored  # every record written before the snapshot began
    assert restored <= before | after and late.request_id not in restored
    assert store.schema().up_to_date


def test_purge_keeps_both_records_of_a_labelled_shadow_pair(scratch_store_url: str) -> None:
    """A pair label's item is ``twin|shadow``: both records stay; an unlabelled pair goes."""
    store = Store(scratch_store_url)
    day = TODAY - timedelta(days=40)
    twins = [_record(day) for _ in range(2)]
    shadows = [_record(day, source="shadow").model_copy(update={"twin_id": t.request_id,
               "arm": "candidate"}) for t in twins]  # fmt: skip
    store.insert_traffic(twins + shadows)
    _label(store, f"{twins[0].request_id}|{shadows[0].request_id}")
    retention = RetentionConfig.model_validate(
        {"production": {"row_days": 30}, "shadow": {"row_days": 30}}
    )
    report = purge(store, retention, today=TODAY, dry_run=False)
    assert sum(ln.kept_labelled for ln in report.lines) == 2
    assert set(_by_id(store)) == {twins[0].request_id, shadows[0].request_id}


def _everything(store: Store) -> str:
    """Every row of every Gavel table, as text."""
    return " ".join(
        str(dict(r)) for table in t.metadata.sorted_tables for r in store.fetch(select(table))
    )


def test_erase_follows_every_place_a_key_s_text_can_be_and_survives_a_restore(
    scratch_store_url: str, tmp_path
) -> None:
    """Issue 30, defect 3: erasure missed shadows, the judge's requests, pairwise
    verdicts, metadata, client ids, label notes and history, the spool and quarantine;
    and a restore of an earlier backup brought the text back."""
    store = Store(scratch_store_url)
    secret = {"request": {"messages": [{"role": "user", "content": "MARKER-42 plan"}]},
              "response_text": "MARKER-42 answer", "metadata": {"topic": "MARKER-42"},
              "client_request_id": "MARKER-42-id"}  # fmt: skip
    mine = _record(TODAY, key="leaver").model_copy(update=secret)
    shadow = _record(TODAY, source="shadow").model_copy(
        update={**secret, "key_name": None, "twin_id": mine.request_id, "arm": "candidate"}
    )
    judge = _record(TODAY, key="judge", source="judge").model_copy(
        update={"request": {"messages": [{"role": "user", "content": "Judge: MARKER-42"}]},
                "metadata": {"judged_item": f"{mine.request_id}|{shadow.request_id}"}}
    )  # fmt: skip
    store.insert_traffic([mine, shadow, judge])
    pair = f"{mine.request_id}|{shadow.request_id}"
    store.insert_ignore(t.verdicts, [{
        "item_id": pair, "criterion": "better", "criterion_version": "1", "kind": "pairwise",
        "judge": "j", "judge_version": "1", "judge_model": "judge-model", "judge_args": "{}",
        "model": "a|b", "day": TODAY.isoformat(), "verdict": "A", "reasoning": "MARKER-42 wins",
        "judge_prompt_tokens": 1, "judge_completion_tokens": 1, "judge_cost_usd": 0.0,
        "latency_ms": 1.0, "created_at": datetime.now(UTC),
    }])  # fmt: skip
    label = {"item_id": mine.request_id, "criterion": "helpful", "criterion_version": "1",
             "labeller": "ana", "label": "pass", "note": "MARKER-42 noted",
             "labelled_at": datetime.now(UTC)}  # fmt: skip
    store.insert_ignore(t.labels, [label])
    store.insert_ignore(t.label_history, [label])
    spool = tmp_path / "spool"
    (spool / "quarantine").mkdir(parents=True)
    line = mine.model_dump_json() + "\n"
    (spool / "w-1.jsonl").write_text(line)
    (spool / "quarantine" / "w.jsonl").write_text(line + _record(TODAY).model_dump_json() + "\n")
    backup(store, tmp_path / "before.backup")
    assert "MARKER-42" in _everything(store)

    assert erase(store, "leaver", since=None, by="dpo", dry_run=False) == 1
    assert erase_files(spool, "leaver") == 2
    assert "MARKER-42" not in _everything(store)
    assert not [f for f in spool.rglob("*.jsonl") if "MARKER-42" in f.read_text()]
    assert "secret answer" in (spool / "quarantine" / "w.jsonl").read_text()  # others kept

    log = erasure_log(store)
    restore(store, tmp_path / "before.backup")
    assert "MARKER-42" in _everything(store)  # the restore really brought it back
    reapply_erasures(store, log)
    assert "MARKER-42" not in _everything(store)
    assert [e["key_name"] for e in erasure_log(store)] == ["leaver"]


def test_a_backup_of_a_newer_gavel_is_refused_before_anything_changes(
    scratch_store_url: str, tmp_path
) -> None:
    """Issue 30, defect 11: restore checked no revision."""
    import pytest
    from sqlalchemy import text

    from serving.store import BackupError

    store = Store(scratch_store_url)
    store.insert_traffic([_record(TODAY)])
    backup(store, tmp_path / "b")
    newer = Store(scratch_store_url)
    with newer._engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    backup(newer, tmp_path / "newer")
    with newer._engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0009'"))
    with pytest.raises(BackupError, match="revision 9999, newer than this Gavel knows"):
        restore(store, tmp_path / "newer")
    restore(store, tmp_path / "b")  # its own revision: restored
    assert store.count_traffic() == 1
