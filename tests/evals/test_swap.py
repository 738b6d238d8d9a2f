"""The swap report's decision from captured traffic (issue 20): deterministic checks on
shadow pairs and canary arms, the pairwise judge's trust, too few pairs."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import yaml

from evals._compare import PairOutcome, pairwise_report
from evals.swap._judged import judged_checks, to_judge, worse_but_untrusted
from evals.swap._trial import SwapTraffic, arm_checks, decide, split, trial_start
from serving import SwapConfig, TrafficRecord
from serving.store import Store
from serving.swap import SwapEvent
from tests.conftest import gavel_main

SWAP = SwapConfig.model_validate(
    {
        "production": "app-model",
        "candidate": "app-terse",
        "variant": {"model_id": "app-terse", "base": "app-model", "max_tokens": 2},
        "checks": [{"name": "three_words", "assertion": "min_words", "min": 3}],
        "min_pairs": 10,
    }
)
LONG = "Paris is the capital of France."


def _rec(model: str, text: str, *, source: str = "production", arm: str | None = None,
         twin: str | None = None, status: int = 200) -> TrafficRecord:  # fmt: skip
    return TrafficRecord(
        request_id=uuid.uuid4().hex, ts=datetime.now(UTC), key_name="k", model=model,
        endpoint="chat",
        stream=False, request={"messages": [{"role": "user", "content": "q"}]},
        response_text=text, status=status, source=source, arm=arm, twin_id=twin,  # type: ignore[arg-type]
    )  # fmt: skip


def _day(n: int, shadow_text: str, canary_text: str | None = None) -> list[TrafficRecord]:
    out: list[TrafficRecord] = []
    for _ in range(n):
        twin = _rec("app-model", LONG, arm="production")
        out += [twin, _rec("app-terse", shadow_text, source="shadow", arm="candidate",
                           twin=twin.request_id)]  # fmt: skip
        if canary_text is not None:
            out.append(_rec("app-terse", canary_text, arm="candidate"))
    out.append(_rec("app-terse", "x", source="shadow", arm="candidate", twin="gone"))
    out.append(_rec("app-model", LONG, arm="production", status=500))
    return out


def _verdict(records: list[TrafficRecord], *, trusted: bool | None = None, wins: int = 0):  # type: ignore[no-untyped-def]
    traffic = split(records, SWAP)
    checks = arm_checks(SWAP, traffic)
    outcomes = [PairOutcome(item_id=str(i), winner="B" if i < wins else "tie", orders=["B", "B"],
                            words_a=5, words_b=5) for i in range(len(traffic.pairs))]  # fmt: skip
    pw = pairwise_report("preferred_response", outcomes, judge_trusted=trusted)
    return traffic, checks, decide(SWAP, traffic, checks, pw, judge_trusted=trusted,
                                   trust_reason="no pairwise labels")  # fmt: skip


def test_pairs_and_arms_are_split_by_twin_and_arm() -> None:
    traffic, _, _ = _verdict(_day(12, "Paris.", canary_text="Paris."))
    assert len(traffic.pairs) == 12  # the shadow of a missing twin is left out
    assert len(traffic.production_arm) == 12  # the 500 is left out
    assert len(traffic.candidate_arm) == 12
    assert all(t.request_id == s.twin_id for t, s in traffic.pairs)


def test_a_one_word_candidate_is_rolled_back_on_a_deterministic_check() -> None:
    _, checks, v = _verdict(_day(12, "Paris.", canary_text="Paris."))
    assert {(c.on, c.worse) for c in checks} == {("shadow", True), ("canary", True)}
    assert v.decision == "rollback" and "three_words" in v.reason


def test_an_identical_candidate_is_never_rolled_back() -> None:
    _, checks, v = _verdict(_day(40, LONG, canary_text=LONG))
    assert not any(c.worse for c in checks)
    assert v.decision == "continue"
    assert v.withheld is not None and "not trusted" in v.withheld


def test_too_few_pairs_continue() -> None:
    _, _, v = _verdict(_day(5, LONG), trusted=True, wins=5)
    assert v.decision == "continue" and "too few" in v.reason


def test_a_trusted_judge_promotes_a_better_candidate_and_an_untrusted_one_cannot() -> None:
    records = _day(60, LONG)
    assert _verdict(records, trusted=True, wins=55)[2].decision == "promote"
    untrusted = _verdict(records, trusted=None, wins=55)[2]
    assert untrusted.decision == "continue" and "not trusted" in (untrusted.withheld or "")


def _run_report(
    tmp_path: Path, swap: dict[str, object], *extra: str
) -> subprocess.CompletedProcess[str]:
    cfg = {
        "models": [
            {"role": "app", "model_id": "app-model", "source": {"simulate": "llama-3.1-8b-h100"}}
        ],
        "gateway": {"store": {"url": f"sqlite:///{tmp_path / 'gavel.db'}"}},
        "swap": swap,
    }  # fmt: skip
    (tmp_path / "stack.yaml").write_text(yaml.safe_dump(cfg))
    return gavel_main("swap", "report", "--no-judge", "--config", str(tmp_path / "stack.yaml"),
                      "--out", str(tmp_path / "out"), *extra)  # fmt: skip


def test_the_report_command_decides_from_the_store_and_publishes_the_decision(
    tmp_path: Path,
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'gavel.db'}")
    store.ensure_schema()
    records = _day(15, "Paris.", canary_text="Paris.")
    store.insert_traffic(records)
    _thumbs(store, [r for r in records if r.arm == "candidate" and r.source == "production"])
    swap = SWAP.model_dump(mode="json", exclude_defaults=True)
    done = _run_report(tmp_path, swap)
    assert done.returncode == 0, done.stderr
    assert "decision: rollback" in done.stdout
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert (report["shadow_pairs"], report["verdict"]["decision"]) == (15, "rollback")
    users = next(c for c in report["checks"] if c["check"] == "feedback:thumbs")
    assert (users["kind"], users["on"], users["n_candidate"]) == ("feedback", "canary", 15)
    assert "<h2>Decision: rollback</h2>" in (tmp_path / "out" / "report.html").read_text()
    taken = {
        f.labels["decision"]: f.value for f in store.figures() if f.name == "gavel_swap_decision"
    }
    assert taken == {"promote": 0.0, "rollback": 1.0, "continue": 0.0}
    from serving.swap import latest_swap_report

    kept = json.loads(latest_swap_report(store, "app-model", "app-terse") or "{}")
    assert kept["verdict"] == report["verdict"]  # the console's swap view reads it
    store.close()
    bad = _run_report(tmp_path, {**swap, "checks": [{"name": "x", "assertion": "min_wordz"}]})
    assert bad.returncode == 2 and "swap.checks[0] (x): unknown assertion 'min_wordz'" in bad.stderr
    assert "Traceback" not in bad.stderr


def _thumbs(store: Store, records: list[TrafficRecord]) -> None:
    """Each record's user gave it a thumbs up (``POST /v1/feedback``'s table)."""
    from serving.feedback import Feedback
    from serving.feedback._store import record

    for r in records:
        record(store, Feedback(request_id=r.request_id, name="thumbs", user="u", value=1.0,
                               positive=True, sent_by="k", model=r.model,
                               day=r.ts.date().isoformat(), revision=0,
                               at=datetime.now(UTC)))  # fmt: skip


def _event(action: str, minute: int) -> SwapEvent:
    return SwapEvent(production="p", candidate="c", action=action, shadow_rate=0.0,  # type: ignore[arg-type]
                     canary_weight=0.0, promoted=False, by="t",
                     at=datetime(2026, 11, 30, 12, minute, tzinfo=UTC))  # fmt: skip


def test_the_report_covers_the_current_trial_only() -> None:
    """set(0) rollback(1) | set(2) set(3) -> the trial from 2; after rollback(4), still
    the trial from 2 (the morning-after report); a later set(5) starts a new one."""
    assert trial_start([]) is None
    events = [_event("set", 0), _event("rollback", 1), _event("set", 2), _event("set", 3)]
    assert trial_start(events) == events[2].at
    events.append(_event("rollback", 4))
    assert trial_start(events) == events[2].at
    events.append(_event("set", 5))
    assert trial_start(events) == events[5].at


def test_judge_criteria_score_both_arms_and_only_a_trusted_one_rolls_back() -> None:
    """``concise`` fails every candidate answer and passes production's: worse on shadow
    and canary. Trusted, it rolls back; untrusted, the report continues and says so."""
    swap = SWAP.model_copy(update={"checks": [], "criteria": ["concise"], "judge_sample": 25})
    traffic = split(_day(30, LONG, canary_text=LONG), swap)
    judged = to_judge(traffic, swap.judge_sample)
    assert 75 <= len(judged) <= 100  # 25 pairs (both sides), 25 per arm (twins are on one)
    # By hash, not by arrival: the same sample in any order; a day later, what it keeps
    # of the first day's traffic was in the first day's sample.
    reordered = SwapTraffic(
        production_arm=traffic.production_arm[::-1],
        candidate_arm=traffic.candidate_arm[::-1],
        pairs=traffic.pairs[::-1],
    )
    ids = {r.request_id for r in judged}
    assert {r.request_id for r in to_judge(reordered, swap.judge_sample)} == ids
    later = split(_day(30, LONG, canary_text=LONG), swap)
    grown = SwapTraffic(production_arm=traffic.production_arm + later.production_arm,
                        candidate_arm=traffic.candidate_arm + later.candidate_arm,
                        pairs=traffic.pairs + later.pairs)  # fmt: skip
    first_day = {r.request_id for r in traffic.production_arm + traffic.candidate_arm}
    first_day |= {r.request_id for pair in traffic.pairs for r in pair}
    assert {r.request_id for r in to_judge(grown, swap.judge_sample)} & first_day <= ids
    verdicts = {(r.request_id, "concise"): "fail" if r.model == "app-terse" else "pass"
                for r in judged}  # fmt: skip
    for trusted, decision in ((True, "rollback"), (False, "continue")):
        checks = judged_checks(swap, traffic, verdicts, {"concise": (trusted, "kappa 0.7")})
        assert [(c.on, c.kind, c.n_candidate, c.worse) for c in checks] == [
            ("shadow", "judge", 25, True), ("canary", "judge", 25, True),
        ]  # fmt: skip
        assert checks[0].production_rate == 1.0 and checks[0].candidate_rate == 0.0
        v = decide(swap, traffic, checks, None, judge_trusted=None, trust_reason="")
        assert v.decision == decision, v
        if trusted:
            assert "trusted judge criterion concise" in v.reason
        else:
            assert worse_but_untrusted(checks) == ["concise (shadow)", "concise (canary)"]


def _rated_arms(n: int, prod_pos: float, cand_pos: float):  # type: ignore[no-untyped-def]
    """``n`` answers per canary arm, each from its own key, each rated by one user."""
    from serving.feedback import Feedback

    records, feedback = [], []
    for arm, model, share in (("production", "app-model", prod_pos),
                              ("candidate", "app-terse", cand_pos)):  # fmt: skip
        for i in range(n):
            r = _rec(model, LONG, arm=arm).model_copy(update={"key_name": f"k{arm}{i}"})
            records.append(r)
            positive = i < share * n
            feedback.append(Feedback(request_id=r.request_id, name="thumbs", user="u",
                                     value=float(positive), positive=positive, sent_by="b",
                                     model=model, day="2026-12-04", revision=1,
                                     at=datetime.now(UTC)))  # fmt: skip
    return records, feedback


def test_users_feedback_on_the_canary_rolls_back_a_candidate_they_rate_worse() -> None:
    from evals.swap._trial import feedback_checks

    records, feedback = _rated_arms(60, 0.9, 0.1)
    traffic = split(records, SWAP)
    (check,) = feedback_checks(SWAP, traffic, feedback)
    assert (check.check, check.kind, check.on) == ("feedback:thumbs", "feedback", "canary")
    assert check.production_rate == 0.9 and check.candidate_rate == 0.1 and check.worse
    v = decide(SWAP, traffic, [check], None, judge_trusted=None, trust_reason="-")
    assert v.decision == "rollback" and v.reason.startswith("users' feedback feedback:thumbs")
    records, feedback = _rated_arms(60, 0.7, 0.7)
    (same,) = feedback_checks(SWAP, split(records, SWAP), feedback)
    assert not same.worse
    assert feedback_checks(SWAP, split(records, SWAP), []) == []  # no feedback, no check


def _shadow_on(day: int, winner: str) -> tuple[TrafficRecord, TrafficRecord, PairOutcome]:
    twin = _rec("app-model", LONG, arm="production")
    shadow = _rec("app-terse", "x", source="shadow", arm="candidate", twin=twin.request_id)
    shadow = shadow.model_copy(update={"ts": datetime(2026, 12, day, 12, tzinfo=UTC)})
    return twin, shadow, PairOutcome(item_id=shadow.request_id, winner=winner,  # type: ignore[arg-type]
                                     orders=[winner, winner], words_a=6, words_b=1)  # fmt: skip


def test_the_win_rate_sequence_is_cumulative_day_by_day() -> None:
    from datetime import date

    from evals._sequential import confidence_sequence, win_scores
    from evals.swap._sequence import sequence_by_day

    made = [_shadow_on(1, w) for w in "BBA" * 10] + [_shadow_on(3, w) for w in "BBBB" * 30]
    pairs = [(t, s) for t, s, _ in made]
    outcomes = [o for _, _, o in made]
    days = [date(2026, 12, d) for d in (1, 2, 3)]
    points = sequence_by_day(outcomes, pairs, days)
    assert [(p.day, p.pairs) for p in points] == [("2026-12-01", 30), ("2026-12-03", 150)]
    mean, low, high = confidence_sequence(win_scores(140, 0, 10)) or (0, 0, 0)
    assert (points[-1].win_rate, points[-1].low, points[-1].high) == (mean, low, high)
    assert points[0].high - points[0].low > points[-1].high - points[-1].low  # it narrows


def test_build_report_aggregates_the_judges_outcomes_and_their_sequence() -> None:
    from evals.swap._report import build_report

    records = _day(30, LONG)
    traffic = split(records, SWAP)

    def judge(t: SwapTraffic) -> list[PairOutcome]:
        return [PairOutcome(item_id=s.request_id, winner="B", orders=["B", "B"], words_a=6,
                            words_b=6) for _, s in t.pairs]  # fmt: skip

    today = datetime.now(UTC).date()
    report = build_report(SWAP, records, [today], judge=judge, trust=(True, "calibrated"))
    assert report.pairwise is not None and report.pairwise.wins_b == len(traffic.pairs) == 30
    assert report.pairwise.criterion == SWAP.pairwise and report.judge_trusted is True
    (point,) = report.sequence
    assert (point.day, point.pairs) == (today.isoformat(), 30) and point.low > 0.5
    assert report.verdict.decision == "promote"
    unjudged = build_report(SWAP, records, [today], judge=lambda _: None)
    assert unjudged.pairwise is None and unjudged.sequence == []
