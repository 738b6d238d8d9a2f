"""Online judging without a stack: the rules' picks (hash sampling, filters, the cap per
hour), and passes over a real store with the judge call faked at its boundary
(``judge_items``): the cursor survives a restart, a rerun picks the same records, the
cap holds across passes, and the daily job finds the verdicts done."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from judges import VerdictStore
from judges._catalog import load_criteria
from judges._config import JudgingConfig
from judges._online import Candidate, OnlineFilter, OnlineRule, in_sample, matches, pick
from judges._online_run import OnlineContext, online_figures, online_pass, read_cursor
from judges._wire import JudgeItem, Verdict
from judges.kinds import default_kinds
from serving import TrafficRecord, load_config
from serving.store import Store, tables
from tests.conftest import CONFIG, ROOT

NOW = datetime(2026, 12, 4, 12, 30, tzinfo=UTC)


def _cand(i: int, *, minutes: int = 0, **over: Any) -> Candidate:
    fields: dict[str, Any] = {"request_id": f"r{i}", "ts": NOW - timedelta(minutes=minutes),
                              "model": "app-model", "key_name": "app", "source": "production",
                              "answered": True, "metadata": {}}  # fmt: skip
    return Candidate(**{**fields, **over})


def test_the_sample_is_a_hash_of_rule_and_id_at_the_rate() -> None:
    ids = [uuid.uuid4().hex for _ in range(4000)]
    share = sum(in_sample("r", i, 0.25) for i in ids) / len(ids)
    assert 0.22 < share < 0.28
    assert [in_sample("r", i, 0.25) for i in ids] == [in_sample("r", i, 0.25) for i in ids]
    assert [in_sample("r", i, 0.25) for i in ids] != [in_sample("s", i, 0.25) for i in ids]


def test_the_filter_and_the_cap_per_hour() -> None:
    f = OnlineFilter(model="app-model", key="app", metadata={"topic": "*"})
    assert matches(_cand(1, metadata={"topic": "x"}), f)
    assert not matches(_cand(1), f)  # no topic
    assert not matches(_cand(1, metadata={"topic": "x"}, answered=False), f)
    assert not matches(_cand(1, metadata={"topic": "x"}, source="judge"), f)
    rule = OnlineRule(name="all", sample_rate=1.0, criteria=["c"], max_per_hour=3)
    this_hour = [_cand(i, minutes=i) for i in range(5)]  # 12:26 .. 12:30
    last_hour = [_cand(10 + i, minutes=40 + i) for i in range(5)]  # 11:46 .. 11:50
    got = pick(this_hour + last_hour, rule, {"2026-12-04T12": 2})
    assert [c.request_id for c in got] == ["r14", "r13", "r12", "r4"]  # oldest first


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OnlineContext:
    """A store with 40 answered records over the last 90 minutes and a fake judge."""
    store = Store(f"sqlite:///{tmp_path / 'online.db'}")
    store.insert_traffic([
        TrafficRecord(request_id=f"chatcmpl-{i:03d}", ts=NOW - timedelta(minutes=90 - 2 * i),
                      key_name="app", model="app-model", endpoint="chat", stream=False,
                      request={"messages": [{"role": "user", "content": f"q{i}"}]},
                      response_text=f"a{i}", status=200)
        for i in range(40)
    ])  # fmt: skip
    asked: list[str] = []

    def fake_judge(items: Sequence[JudgeItem], criteria: Sequence[Any], *_: Any,
                   run_id: str, day: str | None, **__: Any) -> int:  # fmt: skip
        version = {c.name: c.version for c in criteria}
        asked.extend(i.item_id for i in items)
        return VerdictStore(store).insert(
            Verdict(item_id=i.item_id, criterion=i.criterion,
                    criterion_version=version[i.criterion], kind="binary", judge="binary",
                    judge_version="1", judge_model="judge-model", judge_args={},
                    model="app-model", run_id=run_id, day=day,
                    verdict="pass" if i.item_id[-1] in "13579" else "fail", created_at=NOW)
            for i in items
        )  # fmt: skip

    monkeypatch.setattr("judges._online_run.judge_items", fake_judge)
    crits = {c.name: c for c in load_criteria(ROOT / "judges/criteria")}
    judging = JudgingConfig.model_validate({
        "online": [{"name": "live", "sample_rate": 0.5, "criteria": ["answers_question"],
                    "max_per_hour": 6}],
        "online_loop": {"settle_s": 60, "start_lookback_h": 2, "window_h": 1, "late_s": 0},
    })  # fmt: skip
    out = OnlineContext(stack=load_config(CONFIG), judging=judging,
                        criteria={"answers_question": crits["answers_question"]}, store=store,
                        api_key="k", kinds=default_kinds(), log=lambda _: None)  # fmt: skip
    out.__dict__["asked"] = asked  # the fake judge's calls, for the test
    return out


def test_passes_resume_from_the_cursor_and_the_daily_job_finds_the_verdicts(
    ctx: OnlineContext,
) -> None:
    # Records every 2 minutes from 11:00 to 12:18. The first pass reads 10:30 .. 11:30
    # (its window): 16 records of hour 11, of which the cap keeps 6.
    first = online_pass(ctx, now=NOW)[0]
    assert first.cursor == NOW - timedelta(hours=1) and first.read == 16
    assert first.picked == 6 and first.judged_now == 6
    # A restarted loop (a new context, the same store) goes on from the cursor.
    again = OnlineContext(**{k: v for k, v in ctx.__dict__.items() if k != "asked"})
    second = online_pass(again, now=NOW)[0]  # 11:30 .. 12:29 (settled)
    assert read_cursor(ctx.store, "live") == NOW - timedelta(seconds=60)
    assert second.read == 24 and 0 < second.picked <= 6  # hour 11 is full: hour 12's only
    asked: list[str] = ctx.__dict__["asked"]
    assert len(asked) == len(set(asked))  # nothing judged twice
    # Every pick is in the sample, and a rerun of the selection picks the same records.
    assert all(in_sample("live", i, 0.5) for i in asked)
    # Filed under the record's day: the daily job of that day finds them done.
    done = VerdictStore(ctx.store).done_keys(NOW.date())
    assert {i for i, _, _ in done} == set(asked)
    # A third pass at the same time reads nothing new and judges nothing.
    assert online_pass(ctx, now=NOW)[0].picked == 0


def test_the_cap_holds_across_passes_of_one_hour(ctx: OnlineContext) -> None:
    rule = ctx.judging.online[0].model_copy(update={"sample_rate": 1.0, "max_per_hour": 4})
    judging = ctx.judging.model_copy(update={"online": [rule],
                                             "online_loop": ctx.judging.online_loop.model_copy(
                                                 update={"window_h": 0.25})})  # fmt: skip
    capped = OnlineContext(**{**{k: v for k, v in ctx.__dict__.items() if k != "asked"},
                              "judging": judging})  # fmt: skip
    picked = sum(online_pass(capped, now=NOW + timedelta(minutes=15 * k))[0].picked
                 for k in range(8))  # fmt: skip
    hours = {r["hour"] for r in ctx.store.fetch(select(tables.online_judged))}
    assert picked == 4 * len(hours)


def test_a_late_capture_is_picked_by_the_next_pass_and_nothing_twice(
    ctx: OnlineContext,
) -> None:
    loop = ctx.judging.online_loop.model_copy(update={"late_s": 1800})
    rule = ctx.judging.online[0].model_copy(update={"sample_rate": 1.0, "max_per_hour": 100})
    judging = ctx.judging.model_copy(update={"online": [rule], "online_loop": loop})
    late = OnlineContext(**{**{k: v for k, v in ctx.__dict__.items() if k != "asked"},
                            "judging": judging})  # fmt: skip
    first = online_pass(late, now=NOW)[0]
    # A stream that started at 11:10 and ended (was captured) after the first pass.
    ctx.store.insert_traffic([TrafficRecord(
        request_id="chatcmpl-late", ts=NOW - timedelta(minutes=80), key_name="app",
        model="app-model", endpoint="chat", stream=True, response_text="a", status=200,
        request={"messages": [{"role": "user", "content": "q"}]})])  # fmt: skip
    second = online_pass(late, now=NOW + timedelta(minutes=5))[0]
    asked: list[str] = ctx.__dict__["asked"]
    assert "chatcmpl-late" in asked and len(asked) == len(set(asked))
    assert second.picked == second.read  # the late one, and what is new since
    assert first.picked + second.picked == len(asked)


def test_the_figures_give_the_hour_s_rate_interval_and_lag(ctx: OnlineContext) -> None:
    from judges._online_run import HourRate

    figs = online_figures([HourRate("helpful", "v1", "app-model", 3, 1)], [30.0, 90.0], NOW)
    got = {(f.name, f.labels.get("stat")): f.value for f in figs}
    assert got[("gavel_judge_online_pass_rate", None)] == 0.75
    assert got[("gavel_judge_online_pass_rate_low", None)] == pytest.approx(0.301, abs=1e-3)
    assert got[("gavel_judge_online_lag_seconds", "median")] == 60.0
    assert got[("gavel_judge_online_lag_seconds", "max")] == 90.0
