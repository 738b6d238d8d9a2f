"""The store's schema revisions (Alembic): the upgrade of a database written by the
previous landed commit, the revisions against the code's tables, and what ``gavel
store`` and ``gavel serve`` do with an out-of-date store. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from serving.store import SchemaOutOfDate, Store, tables
from serving.store._revisions import downgrade, head_revision, pending_changes
from tests.conftest import GAVEL, gavel_main

FIXTURES = Path(__file__).parent / "fixtures"
PREVIOUS = "ba50a8c"


def _load_previous(url: str) -> None:
    """Write the previous commit's database (its schema and rows) at ``url``."""
    if url.startswith("sqlite"):
        con = sqlite3.connect(url.removeprefix("sqlite:///"))
        con.executescript((FIXTURES / f"store-{PREVIOUS}.sqlite.sql").read_text())
        con.close()
        return
    db = url.rsplit("/", 1)[1]
    subprocess.run(
        ["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1",
         "-f", str(FIXTURES / f"store-{PREVIOUS}.pg.sql")],
        check=True, capture_output=True,
    )  # fmt: skip


def _rows(store: Store) -> dict[str, list[dict[str, object]]]:
    """Every row of every table the previous commit had, by table, in a stable order."""
    out = {}
    previous = (
        tables.api_keys, tables.traffic, tables.verdicts, tables.labels,
        tables.label_history, tables.eval_cache, tables.eval_runs, tables.figures,
    )  # fmt: skip
    for t in previous:
        keys = list(t.primary_key.columns)
        out[t.name] = store.fetch(select(t).order_by(*keys))
    return out


def test_a_database_of_the_previous_commit_upgrades_and_every_row_survives(
    scratch_store_url: str,
) -> None:
    _load_previous(scratch_store_url)
    store = Store(scratch_store_url)
    state = store.schema()
    assert state.current is None and not state.empty and not state.up_to_date
    before, after = store.upgrade()
    assert before.current is None and after.current == head_revision() == "0009"
    rows = _rows(store)
    assert [len(rows[t]) for t in rows] == [2, 4, 1, 1, 1, 1, 1, 1]
    first = rows["gavel_traffic"][0]
    assert json.loads(first["request_json"])["messages"][0]["content"] == "Ünïcødé ✓ 𝔊 0"
    assert first["response_text"] == "answer 0 — ok" and first["client_request_id"] == "client-0"
    assert first["text_removed"] is None and first["kept"] is None
    assert [r["source"] for r in rows["gavel_traffic"]] == [
        "production",
        "production",
        "judge",
        None,
    ]
    old = rows["gavel_api_keys"][1]
    assert old["name"] == "old" and old["revoked_at"] is not None and old["metadata_only"]
    assert rows["gavel_verdicts"][0]["p_fail"] == pytest.approx(0.1)
    assert store.traffic_for_day(date(2026, 11, 27))[0].request_id == "req-1"
    assert pending_changes(store._engine) == []


def test_the_revisions_describe_the_code_s_tables_and_go_down_and_up_again(
    scratch_store_url: str,
) -> None:
    store = Store(scratch_store_url)
    store.ensure_schema()  # a new store is created at the newest revision
    assert store.schema().up_to_date and pending_changes(store._engine) == []
    downgrade(store._engine, "0001")
    assert store.schema().current == "0001"
    store.upgrade()
    assert pending_changes(store._engine) == []


def test_an_out_of_date_store(scratch_store_url: str, tmp_path: Path) -> None:
    _load_previous(scratch_store_url)
    cfg = tmp_path / "stack.yaml"
    cfg.write_text(
        f'gateway: {{store: {{url: "{scratch_store_url}"}}}}\n'
        "models: [{role: app, model_id: app-model, source: {path: m}}]\n"
    )

    def gavel(*args: str) -> subprocess.CompletedProcess[str]:
        return gavel_main(*args, "--config", str(cfg))

    # The store group's one subprocess test: the console script itself.
    current = subprocess.run([GAVEL, "store", "current", "--config", str(cfg)],
                             capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert current.returncode == 1
    assert current.stdout.strip() == "revision none (made before migrations): this Gavel needs 0009"
    if scratch_store_url.startswith("postgresql"):
        # Several nodes share it: nothing upgrades it behind the operator's back.
        with pytest.raises(SchemaOutOfDate, match="run `gavel store upgrade`"):
            Store(scratch_store_url).ensure_schema()
        keys = gavel("keys", "list")
        assert keys.returncode == 1 and "Traceback" not in keys.stderr
        assert keys.stderr.strip().endswith("; run `gavel store upgrade`")
        serve = gavel("serve", "--detach")
        assert serve.returncode == 1 and serve.stderr.count("\n") == 1
        assert serve.stderr == (
            "gavel: error: the store's schema is at revision none (made before migrations): "
            "this Gavel needs 0009; run `gavel store upgrade`\n"
        )
    up = gavel("store", "upgrade")
    assert up.returncode == 0 and "from revision none to 0009" in up.stdout, up.stderr
    assert gavel("store", "upgrade").stdout.startswith("already at revision 0009")
    assert gavel("store", "current").returncode == 0


def test_the_embedded_sqlite_store_upgrades_by_itself(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _load_previous(url)
    store = Store(url)
    assert store.count_traffic() == 4  # any use upgrades it (and logs that it did)
    assert store.schema().up_to_date


def test_upgrades_from_0002_and_0003_with_data_one_revision_per_transaction(
    scratch_store_url: str,
) -> None:
    """Issue 30, defect 11: every revision ran in one transaction, and nothing upgraded
    from 0002 or 0003 with data."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    from serving._wire import TrafficRecord

    store = Store(scratch_store_url)
    rec = TrafficRecord(request_id="kept", ts=datetime.now(UTC), key_name="k", model="m",
                        endpoint="chat", stream=False, request={"a": 1}, response_text="t",
                        status=200)  # fmt: skip
    store.insert_traffic([rec])
    downgrade(store._engine, "0002")
    with store._engine.begin() as conn:  # a column in 0004's way: 0004 fails at once
        conn.execute(text("ALTER TABLE gavel_traffic ADD COLUMN arm VARCHAR(16)"))
    with pytest.raises(Exception, match="arm"):
        store.upgrade()
    assert store.schema().current == "0003"  # 0003 committed on its own
    with store._engine.begin() as conn:
        conn.execute(text("ALTER TABLE gavel_traffic DROP COLUMN arm"))
    before, after = store.upgrade()
    assert (before.current, after.current) == ("0003", "0009")
    assert [r.request_id for r in store.traffic_by_ids(["kept"])] == ["kept"]


def test_the_baseline_copies_legacy_labels_on_sqlite(tmp_path: Path) -> None:
    """Issue 30, defect 11: the legacy label copy was a syntax error on SQLite."""
    url = f"sqlite:///{tmp_path / 'legacy.db'}"
    con = sqlite3.connect(url.removeprefix("sqlite:///"))
    con.executescript(
        "CREATE TABLE gavel_labels (item_id TEXT, criterion TEXT, criterion_version TEXT, "
        "labeller TEXT, label TEXT, note TEXT, criterion_note TEXT, labelled_at TEXT);"
        "INSERT INTO gavel_labels VALUES ('i', 'c', '1', 'ana', 'pass', NULL, NULL, "
        "'2026-11-01 00:00:00');"
    )
    con.close()
    store = Store(url)
    store.upgrade()
    assert [r["item_id"] for r in store.fetch(select(tables.labels))] == ["i"]
