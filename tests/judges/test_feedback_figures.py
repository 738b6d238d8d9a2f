"""Users' feedback in the judging figures (pure functions, counted by hand): the rate and
positive share per model with its interval, and the judge against users' majority."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from judges._feedback import feedback_rows, judge_vs_users, user_verdicts
from judges._report import daily_figures, markdown_summary
from judges._result import DailyResult
from judges._wire import Verdict
from serving.feedback import Feedback

AT = datetime(2026, 12, 4, tzinfo=UTC)


def fb(rid: str, positive: bool, *, user: str = "", name: str = "thumbs",
       model: str = "app-model") -> Feedback:  # fmt: skip
    return Feedback(request_id=rid, name=name, user=user, value=float(positive),
                    positive=positive, sent_by="app", model=model, day="2026-12-04",
                    revision=1, at=AT)  # fmt: skip


def verdict(rid: str, value: str, crit: str = "helpful") -> Verdict:
    return Verdict(item_id=rid, criterion=crit, criterion_version="v1", kind="binary",
                   judge="binary", judge_version="1", judge_model="judge-model", judge_args={},
                   model="app-model", day="2026-12-04", verdict=value,  # type: ignore[arg-type]
                   created_at=AT)  # fmt: skip


def test_rate_and_positive_share_per_model_and_name() -> None:
    given = [fb("r1", True), fb("r1", False, user="u2"), fb("r2", True), fb("r3", False),
             fb("s1", True, model="judge-model"), fb("r1", True, name="correct")]  # fmt: skip
    rows = {(r.model, r.name): r for r in feedback_rows(given, {"app-model": 10})}
    thumbs = rows[("app-model", "thumbs")]
    assert (thumbs.rated, thumbs.votes, thumbs.positive, thumbs.rate) == (3, 4, 2, 0.3)
    assert thumbs.positive_share == 0.5
    assert thumbs.share_low == pytest.approx(0.150, abs=1e-3)  # Wilson, 2 of 4
    assert thumbs.share_high == pytest.approx(0.850, abs=1e-3)
    assert rows[("judge-model", "thumbs")].rate is None  # no production requests counted


def test_the_judge_against_users_majority_with_ties_left_out() -> None:
    given = [
        fb("a", True),
        fb("b", False),
        fb("c", False),
        fb("d", True),
        fb("e", True),
        fb("e", False, user="u2"),
    ]  # fmt: skip  (e: a tie)
    assert user_verdicts(given, "thumbs") == {"a": True, "b": False, "c": False, "d": True}
    verdicts = [verdict("a", "pass"), verdict("b", "fail"), verdict("c", "pass"),
                verdict("d", "pass"), verdict("e", "fail"), verdict("x", "pass"),
                verdict("a", "error", crit="other")]  # fmt: skip
    (row,) = judge_vs_users(verdicts, given, {"helpful": "thumbs"})
    m = row.confusion
    assert (m.both_pass, m.both_fail, m.judge_fail_human_pass, m.judge_pass_human_fail) == (
        2, 1, 0, 1,
    )  # fmt: skip
    assert row.agreement == 0.75 and row.kappa == pytest.approx(0.5)


def test_the_day_s_report_and_figures_show_it() -> None:
    res = DailyResult(day=date(2026, 12, 4), sampled=0, judged_now=0, skipped=0, rates=[],
                      pairs=[], judge_prompt_tokens=0, judge_completion_tokens=0,
                      judge_cost_usd=0.0, errors=0, seconds=0.0,
                      feedback=feedback_rows([fb("r1", True)], {"app-model": 4}))  # fmt: skip
    assert "| app-model | thumbs | 1 / 4 (25.0%) | 100.0%" in markdown_summary(res)
    figs = {(f.name, f.labels.get("feedback")): f.value for f in daily_figures(res)}
    assert figs[("gavel_feedback_rate", "thumbs")] == 0.25
    assert figs[("gavel_feedback_positive_share", "thumbs")] == 1.0
