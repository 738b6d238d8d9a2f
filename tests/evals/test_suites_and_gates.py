"""Suites, datasets and gates without the stack: bad input refused before any model call
(one line, exit 2), the assertions, and the compare gate on made-up runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from evals import ASSERTIONS, RunResult, compare, pairwise_report
from evals._checks import AssertArgs
from evals._compare import PairOutcome
from evals._result import CheckSummary, EpochResult, ItemResult
from evals._suite import Params
from tests.conftest import ROOT, gavel_main, run_gavel


def _suite(tmp: Path, checks: str, lines: list[str] | None = None) -> Path:
    data = tmp / "d.jsonl"
    data.write_text(
        "\n".join(
            lines
            or [
                json.dumps(
                    {"id": "a", "messages": [{"role": "user", "content": "2+2?"}], "expected": "4"}
                ),
            ]
        )
        + "\n"
    )
    suite = tmp / "s.yaml"
    suite.write_text(f"name: t\ndataset: d.jsonl\nchecks:\n{checks}")
    return suite


@pytest.mark.parametrize(
    ("checks", "lines", "expect"),
    [
        ("  - {name: c, assert: nope}\n", None, "s.yaml: checks[0].assert: unknown assert"),
        ("  - {name: c, criterion: nope}\n", None, "checks[0].criterion: unknown"),
        ("  - {name: c, assert: regex}\n", None, "needs args.pattern"),
        ("  - {name: c, assert: regex, colour: red}\n", None, "colour: unknown field"),
        (
            "  - {name: c, assert: contains_expected}\n",
            ['{"id": "a", "prompt": "x"}', '{"id": "b"}'],
            "d.jsonl:2: messages",
        ),
        (
            "  - {name: c, assert: contains_expected}\n",
            ['{"id": "a", "prompt": "x"}', "not json"],
            "d.jsonl:2: not valid JSON",
        ),
        (
            "  - {name: c, assert: contains_expected}\n",
            ['{"id": "a", "prompt": "x"}', '{"id": "a", "prompt": "y"}'],
            "d.jsonl:2: id:",
        ),
        (
            "  - {name: c, assert: contains_expected}\n",
            ['{"id": "a", "prompt": "x", "labels": {"c": "maybe"}}'],
            "d.jsonl:1: labels.c",
        ),
    ],
    ids=[
        "unknown-assert",
        "unknown-criterion",
        "missing-arg",
        "unknown-field",
        "missing-input",
        "bad-json",
        "duplicate-id",
        "bad-label",
    ],
)
def test_a_bad_suite_or_dataset_is_one_line_exit_2_before_any_call(
    tmp_path: Path, checks: str, lines: list[str] | None, expect: str
) -> None:
    suite = _suite(tmp_path, checks, lines)
    # No stack is needed: the suite is refused before the endpoint is even looked up.
    proc = gavel_main(
        "eval", "run", str(suite), "--api-key", "k", "--base-url", "http://127.0.0.1:9/v1"
    )
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert expect in line and "Traceback" not in proc.stderr, line


def test_unreachable_endpoint_is_one_line_exit_2(tmp_path: Path) -> None:
    suite = _suite(tmp_path, "  - {name: c, assert: contains_expected}\n")
    # The eval group's one subprocess test: the console script itself.
    proc = run_gavel(
        "eval", "run", str(suite), "--api-key", "k", "--base-url", "http://127.0.0.1:9/v1"
    )
    assert proc.returncode == 2 and "cannot reach http://127.0.0.1:9/v1" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_shipped_suites_load() -> None:
    for name in ("reference_qa", "judge_eval"):
        proc = gavel_main(
            "eval",
            "run",
            str(ROOT / f"evals/suites/{name}.yaml"),
            "--api-key",
            "k",
            "--base-url",
            "http://127.0.0.1:9/v1",
        )
        assert "cannot reach" in proc.stderr, proc.stderr  # loaded fine, then no endpoint


@pytest.mark.parametrize(
    ("name", "answer", "expected", "args", "want"),
    [
        ("contains_expected", "The capital is Brasília.", "Brasilia", {}, "pass"),
        ("contains_expected", "It is 468.", "46", {}, "fail"),
        ("contains_expected", "-3", "-3", {}, "pass"),
        ("contains_expected", "anything", None, {}, "skip"),
        ("equals_expected", " Paris. ", "paris", {}, "pass"),
        ("regex", "id: 42", None, {"pattern": r"\d+"}, "pass"),
        ("valid_json", '{"a": 1}', None, {"json_schema": {"required": ["b"]}}, "fail"),
        ("valid_json", '{"b": 1}', None, {"json_schema": {"required": ["b"]}}, "pass"),
        ("max_words", "one two three", None, {"max": 2}, "fail"),
        ("no_refusal", "I'm sorry, I can't help with that.", None, {}, "fail"),
        ("no_refusal", "Sure: 4.", None, {}, "pass"),
    ],
)
def test_assertions(name: str, answer: str, expected: str | None, args: dict, want: str) -> None:  # type: ignore[type-arg]
    assert ASSERTIONS.run(name, answer, expected, AssertArgs(**args)) == want


def _run(run_id: str, outcomes: dict[str, list[str]], suite_hash: str = "s") -> RunResult:
    items = [
        ItemResult(
            id=i,
            tags=[],
            epochs=[
                EpochResult(epoch=e, response="x", outcomes={"c": o}) for e, o in enumerate(os)
            ],
        )
        for i, os in outcomes.items()
    ]
    return RunResult(
        run_id=run_id,
        suite="t",
        suite_hash=suite_hash,
        dataset_hash="d",
        git_commit=None,
        created_at=datetime.now(UTC),
        model="m",
        base_url="u",
        params=Params(),
        system=None,
        epochs=len(next(iter(outcomes.values()))),
        items=items,
        checks=[CheckSummary(name="c", gating=True, passes=0, n=0, rate=None, ci_low=0, ci_high=1)],
        tags={},
        flaky={},
        model_calls=0,
        cached_answers=0,
        seconds=0,
    )


def test_the_gate_passes_identical_runs_and_fails_a_drop_naming_the_flips() -> None:
    base = {f"i{n}": ["pass"] if n % 4 else ["fail"] for n in range(40)}
    assert not compare(_run("a", base), _run("b", base)).failed
    worse = {k: (["fail"] if k in ("i1", "i2", "i3", "i5") else v) for k, v in base.items()}
    cmp = compare(_run("a", base), _run("b", worse))
    (d,) = cmp.checks
    assert (
        cmp.failed and d.pass_to_fail == ["i1", "i2", "i3", "i5"] and d.diff == pytest.approx(-0.1)
    )
    assert d.mcnemar_p == pytest.approx(2 / 16)


def test_an_item_that_passed_every_epoch_and_now_half_fails_the_gate() -> None:
    base = {f"i{n}": ["pass"] * 4 for n in range(50)}
    cand = dict(base, i7=["pass", "pass", "fail", "fail"])
    (d,) = compare(_run("a", base), _run("b", cand), max_drop=0.5).checks
    assert d.regressed_items == ["i7"] and d.failed_gate


def test_pairwise_decision_and_its_withholding() -> None:
    def o(w: str, orders: list[str] | None, la: int = 10, lb: int = 10) -> PairOutcome:
        return PairOutcome(item_id="x", winner=w, orders=orders, words_a=la, words_b=lb)  # type: ignore[arg-type]

    same = [
        PairOutcome(item_id=str(i), winner="tie", orders=None, words_a=5, words_b=5, identical=True)
        for i in range(20)
    ]
    assert pairwise_report("p", same).decision == "no significant difference"
    b_wins = [o("B", ["B", "B"]) for _ in range(12)]
    assert pairwise_report("p", b_wins, judge_trusted=True).decision == "B better"
    assert pairwise_report("p", b_wins).decision is None  # uncalibrated judge: withheld
    flippy = [o("tie", ["A", "B"]) for _ in range(5)] + b_wins
    rep = pairwise_report("p", flippy, judge_trusted=True)
    assert rep.decision is None and "position-flip" in (rep.withheld_because or "")
    longer = [o("B", ["B", "B"], 5, 9) for _ in range(6)] + [
        o("A", ["A", "A"], 9, 5) for _ in range(6)
    ]
    rep = pairwise_report("p", longer, judge_trusted=True)
    assert rep.longer_won_rate == 1.0 and rep.sign_test_p == 1.0


def test_a_run_s_interval_counts_items_not_epochs() -> None:
    from evals._run import summarise
    from judges import wilson

    outcomes = {f"i{k}": ["pass"] * 5 if k < 7 else ["fail"] * 5 for k in range(10)}
    summary = summarise("c", True, _run("r", outcomes).items, "c")
    assert (summary.passes, summary.n, summary.rate) == (35, 50, 0.7)
    # Five identical epochs of ten items are worth ten observations, not fifty.
    assert (summary.ci_low, summary.ci_high) == wilson(7, 10)


def test_limit_runs_the_first_items_as_a_dataset_of_its_own() -> None:
    """``--limit N`` (a quick look, as Inspect's): the first N items, under a dataset hash
    of their own, so ``eval compare`` never gates a partial run against a whole one."""
    from evals._suite import load_suite

    whole = load_suite(
        ROOT / "evals/suites/reference_qa.yaml", criteria_dir=ROOT / "judges/criteria"
    )
    part = whole.first(5)
    assert [i.id for i in part.items] == [i.id for i in whole.items[:5]]
    assert part.dataset_hash != whole.dataset_hash and part.suite_hash == whole.suite_hash
    assert whole.first(len(whole.items)) is whole
    bad = gavel_main("eval", "run", str(ROOT / "evals/suites/reference_qa.yaml"), "--limit", "0",
                     "--api-key", "k", "--base-url", "http://127.0.0.1:9/v1")  # fmt: skip
    assert bad.returncode == 2 and "expected a whole number of items" in bad.stderr
