"""Online judging on the real stack (simulated engine): a rule at rate 1.0 for one key
judges that key's requests within two minutes, with the lag in the figures; a restarted
loop judges nothing twice; the next daily job reuses the verdicts (its judge calls for
those records, counted in the captured traffic, stay the same)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import func, or_, select

from judges import VerdictStore, load_criteria
from serving.store import Store, tables
from tests.conftest import ROOT, STORE_URL, run_gavel

pytestmark = pytest.mark.stack


def _judging(tmp: Path, key: str) -> Path:
    """One criterion, for this key's records only (the daily job samples today's whole
    traffic, and builds items for this key's alone), and one online rule for the key."""
    (crit,) = [c for c in load_criteria(ROOT / "judges/criteria") if c.name == "answers_question"]
    crit = crit.model_copy(update={"verdict_format": "verdict_only",
                                   "applies_to": crit.applies_to.model_copy(
                                       update={"keys": [key]})})  # fmt: skip
    (tmp / "criteria").mkdir()
    (tmp / "criteria/c.yaml").write_text(yaml.safe_dump(
        {"criteria": [crit.model_dump(mode="json", exclude_defaults=True)]}))  # fmt: skip
    path = tmp / "judging.yaml"
    path.write_text(yaml.safe_dump({
        "criteria_dir": str(tmp / "criteria"), "report_dir": str(tmp / "reports"),
        "sampling": {"rate": 1.0, "max_per_stratum": 100000}, "max_tokens": 60,
        "online": [{"name": "one-key", "filter": {"key": key}, "sample_rate": 1.0,
                    "criteria": ["answers_question"], "max_per_hour": 50}],
        "online_loop": {"settle_s": 0}, "feedback": {"answers_question": "thumbs"},
    }))  # fmt: skip
    return path


def _judge_calls(store: Store, ids: list[str]) -> int:
    """Captured judge requests about these records (the judge names its item)."""
    t = tables.traffic
    about = [t.c.metadata_json.like(f"%{i}%") for i in ids]
    stmt = select(func.count()).select_from(t).where(t.c.source == "judge", or_(*about))
    return int(store.scalar(stmt))


def _settled_calls(store: Store, ids: list[str], at_least: int = 0) -> int:
    """The judge calls about these records once capture has flushed them (the count has
    reached ``at_least`` and stayed put over two flush intervals)."""
    deadline, last = time.monotonic() + 30, -1
    while time.monotonic() < deadline:
        n = _judge_calls(store, ids)
        if n >= at_least and n == last:
            return n
        last = n
        time.sleep(1.5)
    return last


def test_a_rule_judges_its_key_within_minutes_once_and_the_daily_job_reuses_it(
    stack: str, api_key: str, tmp_path: Path
) -> None:
    name = f"online-{uuid.uuid4().hex[:8]}"
    made = run_gavel("keys", "create", name, "--scopes", "infer")
    key = made.stdout.strip().splitlines()[-1]
    ids = []
    for i in range(10):
        ask = [{"role": "user", "content": f"What is {i} + 1?"}]
        r = httpx.post(f"{stack}/chat/completions", timeout=60,
                       headers={"Authorization": f"Bearer {key}"},
                       json={"model": "app-model", "max_tokens": 8, "messages": ask})  # fmt: skip
        assert r.status_code == 200, r.text
        ids.append(r.json()["id"])
    sent_at = datetime.now(UTC)
    judging = _judging(tmp_path, name)
    once = ("judge", "online", "--once", "--judging", str(judging), "--api-key", api_key)
    first = run_gavel(*once, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    store = Store(STORE_URL)
    verdicts = [v for v in VerdictStore(store).for_items(ids) if v.criterion == "answers_question"]
    assert sorted(v.item_id for v in verdicts) == sorted(ids), first.stdout
    assert all((v.created_at - sent_at).total_seconds() < 120 for v in verdicts)
    lag = {json.dumps(f.labels): f.value for f in store.figures()
           if f.name == "gavel_judge_online_lag_seconds"}  # fmt: skip
    assert 0 < lag['{"stat": "max"}'] < 120
    calls = _settled_calls(store, ids, at_least=10)
    assert calls >= 10
    # A restarted loop: the cursor is in the store, nothing is picked or judged again.
    second = run_gavel(*once, timeout=300)
    assert second.returncode == 0 and "one-key:" in second.stdout, second.stderr[-2000:]
    assert " 0 judged" in second.stdout and _settled_calls(store, ids) == calls
    # Users' feedback on them: shown beside the judge by calibrate and the daily report.
    for i, rid in enumerate(ids):
        fb = httpx.post(
            f"{stack}/feedback",
            headers={"Authorization": f"Bearer {key}"},
            json={"id": rid, "name": "thumbs", "value": i % 3 != 0},
            timeout=30,
        )
        assert fb.status_code == 200, fb.text
    # The daily job of today finds these records judged: no judge call about them.
    daily = run_gavel("judge", "daily", "--date", "today", "--judging", str(judging),
                      "--api-key", api_key, "--no-ray", timeout=600)  # fmt: skip
    assert daily.returncode == 0, daily.stderr[-2000:]
    assert "10 already judged, 0 to judge" in daily.stdout, daily.stdout[-2000:]
    assert _settled_calls(store, ids) == calls
    day = datetime.now(UTC).date().isoformat()
    summary = (tmp_path / "reports" / day / "summary.md").read_text()
    assert "## Users' feedback" in summary and "| thumbs |" in summary
    out = tmp_path / "calibration.json"
    cal = run_gavel("judge", "calibrate", "--judging", str(judging), "--json", str(out))
    assert cal.returncode == 0 and "judge against users' feedback" in cal.stdout, cal.stderr
    (users,) = [row for row in json.loads(out.read_text()) if row.get("feedback") == "thumbs"]
    assert users["criterion"] == "answers_question"
    assert sum(users["confusion"].values()) >= 10  # each of ours has a verdict and a vote
