"""Every query the console's views run is served by an index on PostgreSQL: each view is
opened (with its filters) on a store with traffic, verdicts, labels, feedback and a swap
report; every statement that reads ``gavel_traffic`` is caught as it is sent, and
``EXPLAIN``ed with sequential scans priced out (``enable_seqscan = off``): a ``Seq Scan
on gavel_traffic`` in a plan means no index can serve it, whatever the table's size."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text

from evals.console import build_console_app
from judges import Label, LabelStore, Verdict, VerdictStore, load_judging
from serving import SwapConfig, load_config, new_key
from serving._wire import TrafficRecord
from serving.store import Store

NOW = datetime.now(UTC).replace(microsecond=0)
VIEWS = (
    "/", "/?window=30d", "/?window=today", "/judging", "/keys", "/swap", "/evals",
    "/traffic", "/traffic?text=giraffe", "/traffic?model=app-model", "/traffic?key=k3",
    "/traffic?status=429", "/traffic?source=judge", "/traffic?arm=candidate",
    "/traffic?finish_reason=length", "/traffic?labelled=true", "/traffic?labelled=false",
    "/traffic?criterion=concise&verdict=fail",
    f"/traffic?first_day={(NOW - timedelta(days=3)).date()}&last_day={NOW.date()}&key=k1",
    "/records/r6", "/records/s7",
)  # fmt: skip


def _records() -> list[TrafficRecord]:
    out = []
    for i in range(3000):
        shadow = i % 10 == 7
        out.append(TrafficRecord.model_validate({
            "request_id": f"{'s' if shadow else 'r'}{i}",
            "ts": NOW - timedelta(hours=i % 700), "key_name": f"k{i % 7}",
            "model": "app-model", "endpoint": "chat", "stream": False,
            "request": {"messages": [{"role": "user", "content": f"giraffe {i}"}]},
            "response_text": "an answer", "status": 429 if i % 13 == 0 else 200,
            "source": "shadow" if shadow else "production",
            "arm": "candidate" if shadow else "production",
            "twin_id": f"r{i - 1}" if shadow else None,
            "ttft_ms": 40.0 + i % 50, "e2e_ms": 400.0, "completion_tokens": 9,
            "finish_reason": "length" if i % 5 == 0 else "stop", "cost_usd": 0.001,
        }))  # fmt: skip
    return out


def _seed(store: Store) -> dict[str, str]:
    store.insert_traffic(_records())
    day = NOW.date().isoformat()
    VerdictStore(store).insert([
        Verdict(item_id=f"r{i}", criterion="concise", criterion_version="1", kind="pass_fail",
                judge="pass_fail", judge_version="1", judge_model="judge-model", judge_args={},
                model="app-model", day=day, verdict="fail" if i % 3 else "pass",
                reasoning="r", created_at=NOW)
        for i in range(0, 300, 3)
    ])  # fmt: skip
    LabelStore(store).upsert([
        Label(item_id=f"r{i}", criterion="concise", criterion_version="1", label="pass",
              labeller="alice", labelled_at=NOW)
        for i in range(0, 60, 3)
    ])  # fmt: skip
    from evals.swap._report import build_report
    from serving.swap import record_swap_report

    swap = SwapConfig.model_validate({"production": "app-model", "candidate": "app-terse",
        "variant": {"model_id": "app-terse", "base": "app-model", "max_tokens": 2}})  # fmt: skip
    report = build_report(swap, [], [NOW.date()], judge=lambda _: None)
    record_swap_report(store, "app-model", "app-terse", last_day=day, decision="continue",
                       report=report.model_dump_json())  # fmt: skip
    secret, key = new_key("boss", ["admin"])
    store.add_key(key)
    return {"boss": secret}


@pytest.mark.parametrize("scratch_store_url", ["postgresql"], indirect=True)
def test_no_view_scans_the_traffic_table(scratch_store_url: str) -> None:
    store = Store(scratch_store_url)
    store.ensure_schema()
    secrets = _seed(store)
    swap = SwapConfig.model_validate({"production": "app-model", "candidate": "app-terse",
        "variant": {"model_id": "app-terse", "base": "app-model", "max_tokens": 2}})  # fmt: skip
    stack = load_config("config/sim.yaml").model_copy(update={"swap": swap})
    client = TestClient(build_console_app(store, stack, load_judging("config/judging.yaml")))
    client.get("/signin")
    client.post("/signin", data={"key": secrets["boss"],
                                 "csrf": client.cookies.get("gavel_console_csrf")})  # fmt: skip
    sent: list[tuple[str, Any]] = []

    def catch(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if re.search(r"\bgavel_traffic\b", statement) and statement.lstrip().upper().startswith(
            "SELECT"
        ):
            sent.append((statement, params))

    with store.transaction() as conn:
        conn.execute(text("ANALYZE"))
    event.listen(store._engine, "before_cursor_execute", catch)
    try:
        for path in VIEWS:
            assert client.get(path).status_code == 200, path
    finally:
        event.remove(store._engine, "before_cursor_execute", catch)
    assert len(sent) >= len(VIEWS) - 3  # the views did read traffic (overview: open day)
    scans = {}
    with store.transaction() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        for statement, params in sent:
            plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, params))
            if "Seq Scan on gavel_traffic " in plan + " ":
                scans[statement] = plan
    store.close()
    assert not scans, f"view queries without an index: {scans}"
