"""The daily job against the real judge model on CPU, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from judges._catalog import load_criteria
from judges._config import JudgingConfig
from judges._daily import build_items, run_daily
from judges._replay import replay
from judges._store import VerdictStore
from serving import TrafficRecord, load_config
from serving.store import Store
from tests.conftest import CONFIG, ROOT, STORE_URL, run_gavel

pytestmark = pytest.mark.stack

SQLITE_URL = STORE_URL


@pytest.fixture(scope="module")
def admin_key(stack: str) -> str:
    proc = run_gavel("keys", "create", f"judge-test-{random.randrange(10**9)}", "--scopes", "admin")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def replayed_day(stack: str, admin_key: str) -> date:
    """A day of its own (far in the past) with replayed traffic through the gateway."""
    day = date(2001, 1, 1) + timedelta(days=random.randrange(3000))
    counts = asyncio.run(
        replay(load_config(ROOT / CONFIG), api_key=admin_key, days=[day], per_day=12)
    )
    assert set(counts) == {"200"}, counts
    store, deadline = Store(SQLITE_URL), time.monotonic() + 60
    while len(store.traffic_for_day(day)) < counts["200"] and time.monotonic() < deadline:
        time.sleep(0.1)  # until the gateway's capture has flushed every replayed request
    assert len(store.traffic_for_day(day)) == counts["200"]
    return day


def judging_cfg(tmp: Path, **over: object) -> JudgingConfig:
    crit_dir = tmp / "criteria"
    crit_dir.mkdir(exist_ok=True)
    shipped = yaml.safe_load((ROOT / "judges/criteria/general.yaml").read_text())["criteria"]
    keep = [c for c in shipped if c["name"] in ("answers_question", "preferred_response")]
    (crit_dir / "c.yaml").write_text(yaml.safe_dump({"criteria": keep}))
    data: dict[str, object] = {
        "criteria_dir": str(crit_dir),
        "sampling": {"rate": 0.25, "max_per_stratum": 3},
        "concurrency": 4,
        "chunk_size": 2,
        "max_tokens": 120,
        "max_retries": 1,
        "report_dir": str(tmp / "reports"),
    }
    data.update(over)
    return JudgingConfig.model_validate(data)


def _copy_day(day: date, url: str) -> Store:
    src, dst = Store(SQLITE_URL), Store(url)
    dst.insert_traffic(src.traffic_for_day(day))
    return dst


# One real daily judge run (on the embedded store); the PostgreSQL one judges on the
# simulated engine, as the other tests do. Each copies the day into a store of its own.
@pytest.mark.parametrize(
    "scratch_store_url",
    [pytest.param("sqlite", marks=pytest.mark.engine), "postgresql"],
    indirect=True,
)
def test_same_date_twice_same_sample_no_new_verdicts(
    scratch_store_url: str, replayed_day: date, admin_key: str, tmp_path: Path
) -> None:
    store = _copy_day(replayed_day, scratch_store_url)
    stack = load_config(ROOT / CONFIG)
    cfg = judging_cfg(tmp_path)
    crits = load_criteria(Path(cfg.criteria_dir))
    VerdictStore(store)  # schema
    items1 = build_items(store.traffic_for_day(replayed_day), crits, stack, cfg, day=replayed_day)
    items2 = build_items(store.traffic_for_day(replayed_day), crits, stack, cfg, day=replayed_day)
    assert [i.item_id for i in items1] == [i.item_id for i in items2]
    assert any(len(i.exchanges) == 2 for i in items1)  # a pairwise item
    first = run_daily(
        stack,
        cfg,
        crits,
        store,
        day=replayed_day,
        api_key=admin_key,
        use_ray=False,
        log=lambda _m: None,
    )
    assert first.judged_now + first.skipped == len(items1) and first.judged_now > 0
    again = run_daily(
        stack,
        cfg,
        crits,
        store,
        day=replayed_day,
        api_key=admin_key,
        use_ray=False,
        log=lambda _m: None,
    )
    assert again.judged_now == 0 and again.skipped == len(items1)
    verdicts = VerdictStore(store).for_days(replayed_day, replayed_day)
    assert len(verdicts) == len(items1)
    v = verdicts[0]
    assert v.judge_model == "judge-model" and v.judge and v.judge_version
    assert v.criterion_version == next(c.version for c in crits if c.name == v.criterion)
    pair = [x for x in verdicts if x.kind == "pairwise"]
    assert pair and all(x.order_winners is None or len(x.order_winners) == 2 for x in pair)


def test_invalid_answers_and_unreachable_judge_are_errors_not_verdicts(
    replayed_day: date, admin_key: str, tmp_path: Path
) -> None:
    store = _copy_day(replayed_day, f"sqlite:///{tmp_path / 'e.db'}")
    stack = load_config(ROOT / CONFIG)
    cfg = judging_cfg(tmp_path, max_tokens=8, max_retries=1)  # JSON cut short: invalid
    crits = load_criteria(Path(cfg.criteria_dir))
    res = run_daily(
        stack,
        cfg,
        crits,
        store,
        day=replayed_day,
        api_key=admin_key,
        use_ray=False,
        log=lambda _m: None,
    )
    assert res.errors == res.judged_now > 0
    assert all(r.pass_rate is None and r.passes + r.fails == 0 for r in res.rates)
    errs = VerdictStore(store).for_days(replayed_day, replayed_day)
    assert all(v.verdict == "error" and v.error for v in errs)
    assert any("invalid answer" in (v.error or "") for v in errs)

    down = stack.model_copy(update={"http": stack.http.model_copy(update={"port": 9})})
    store2 = _copy_day(replayed_day, f"sqlite:///{tmp_path / 'u.db'}")
    res2 = run_daily(
        down,
        judging_cfg(tmp_path, max_retries=0),
        crits,
        store2,
        day=replayed_day,
        api_key=admin_key,
        use_ray=False,
        log=lambda _m: None,
    )
    assert res2.errors == res2.judged_now > 0
    assert all(r.pass_rate is None for r in res2.rates)


def test_the_judges_calls_are_captured_tagged_and_priced_apart(
    stack: str, replayed_day: date, admin_key: str, tmp_path: Path
) -> None:
    store = _copy_day(replayed_day, f"sqlite:///{tmp_path / 't.db'}")
    cfg = judging_cfg(tmp_path, sampling={"rate": 0.1, "max_per_stratum": 1})
    crits = load_criteria(Path(cfg.criteria_dir))
    stack_cfg = load_config(ROOT / CONFIG)
    started = datetime.now(UTC)
    res = run_daily(
        stack_cfg, cfg, crits, store, day=replayed_day, api_key=admin_key, use_ray=False,
        write_report=False, log=lambda _m: None,
    )  # fmt: skip
    assert res.judged_now > 0
    captured, deadline = Store(SQLITE_URL), time.monotonic() + 30
    mine: list[TrafficRecord] = []
    while not mine and time.monotonic() < deadline:
        today = captured.traffic_for_day(started.date())
        mine = [r for r in today if r.source == "judge" and r.ts >= started]
        time.sleep(0.2)
    assert mine, "the judge's calls were not captured"
    assert all(r.model == "judge-model" and r.cost_usd is not None for r in mine)
    production = captured.traffic_for_day(started.date(), production_only=True)
    assert not {r.request_id for r in mine} & {r.request_id for r in production}
    metrics = httpx.get(stack.removesuffix("/v1") + "/metrics").text
    assert 'gavel_cost_usd_total{model="judge-model",source="judge"}' in metrics


def test_cli_fans_out_ray_tasks_and_resumes_after_kill(
    replayed_day: date, admin_key: str, tmp_path: Path
) -> None:
    # One item per task, one task at a time: the job is surely midway when killed.
    cfg = judging_cfg(
        tmp_path,
        chunk_size=1,
        concurrency=1,
        parallel_tasks=1,
        sampling={"rate": 1.0, "max_per_stratum": 8},
    )
    judging_file = tmp_path / "judging.yaml"
    judging_file.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    gavel = str(Path(sys.executable).parent / "gavel")
    cmd = [
        gavel,
        "judge",
        "daily",
        "--date",
        replayed_day.isoformat(),
        "--judging",
        str(judging_file),
        "--api-key",
        admin_key,
    ]
    store = Store(SQLITE_URL)
    vstore = VerdictStore(store)
    crits = load_criteria(Path(cfg.criteria_dir))
    items = build_items(
        store.traffic_for_day(replayed_day),
        crits,
        load_config(ROOT / CONFIG),
        cfg,
        day=replayed_day,
    )
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not vstore.done_keys(replayed_day):
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # killed midway
    proc.wait()
    partial = len(vstore.done_keys(replayed_day))
    assert 0 < partial < len(items)
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{len(items) - partial} to judge" in done.stdout
    assert len(vstore.done_keys(replayed_day)) == len(items)  # the rest, no duplicates
    report = Path(done.stdout.strip().splitlines()[-1].removeprefix("report: "))
    assert report.exists() and (report.parent / "summary.md").exists()
    prom = (report.parent / "metrics.prom").read_text()
    assert "gavel_judge_pass_rate" in prom and "gavel_judge_cost_usd" in prom
    again = run_gavel(
        "judge",
        "daily",
        "--date",
        replayed_day.isoformat(),
        "--judging",
        str(judging_file),
        "--api-key",
        admin_key,
        timeout=300,
    )
    assert "0 to judge" in again.stdout
