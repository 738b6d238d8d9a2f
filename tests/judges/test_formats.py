"""Verdict formats: versions, P(fail) from logprobs, and the batch path's rows and verdicts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from judges import Criterion, JudgingConfig
from judges._batch import _choice_logprobs, batch_rows, to_verdict
from judges._wire import Exchange, JudgeItem
from judges.bench.daily import bound_items_s
from judges.kinds import default_kinds
from judges.kinds._pass_fail import p_fail, shared_prefix
from serving import load_config

ROOT = Path(__file__).resolve().parents[2]
RUBRIC = "PASS if it answers the question; FAIL otherwise."


def _crit(fmt: str) -> Criterion:
    return Criterion(name="answers", kind="binary", rubric=RUBRIC, verdict_format=fmt)  # type: ignore[arg-type]


def _item() -> JudgeItem:
    ex = Exchange(id="r1", model="app-model", messages=[{"role": "user", "content": "2+2?"}],
                  response="4")  # fmt: skip
    return JudgeItem(criterion="answers", exchanges=[ex])


def test_label_version_is_the_rubric_and_version_adds_the_format() -> None:
    a, b = _crit("reasoning_first"), _crit("verdict_only")
    assert a.label_version == b.label_version == a.version  # labels survive a format change
    assert b.version != a.version  # two judges' verdicts never mix


def test_p_fail_renormalises_over_the_two_choices() -> None:
    assert p_fail({"pass": math.log(0.6), "fail": math.log(0.2)}) == pytest.approx(0.25)
    assert p_fail({"pass": -0.1}) == 0.0
    assert p_fail({}) is None


def test_the_shared_prefix_comes_first_and_is_the_same_for_every_item() -> None:
    kinds = default_kinds()
    crit = _crit("verdict_only")
    rows = batch_rows([_item(), _item()], [crit], JudgingConfig(), kinds)
    users = [r["messages"][1]["content"] for r in rows]
    assert all(u.startswith(shared_prefix(crit)) for u in users)
    assert rows[0]["sampling_params"]["structured_outputs"] == {"choice": ["pass", "fail"]}
    json_rows = batch_rows([_item()], [_crit("reasoning_first")], JudgingConfig(), kinds)
    assert "json" in json_rows[0]["sampling_params"]["structured_outputs"]


def test_batch_output_rows_become_verdicts_with_format_and_path() -> None:
    stack = load_config(ROOT / "config/cpu.yaml")
    crit = _crit("verdict_only")
    row = {
        "item": _item().model_dump_json(), "criterion": "answers", "generated_text": "fail",
        "logprobs": [{"11": {"logprob": math.log(0.75), "decoded_token": "fail"},
                      "12": {"logprob": math.log(0.25), "decoded_token": "pass"}}],
        "num_input_tokens": 120, "num_generated_tokens": 1,
    }  # fmt: skip
    v = to_verdict(row, crit, default_kinds(), stack, run_id="2026-01-01", day="2026-01-01")
    assert v.verdict == "fail" and v.p_fail == pytest.approx(0.75)
    assert v.judge_args["format"] == "verdict_only" and v.judge_args["path"] == "ray_data"
    assert v.criterion_version == crit.version and v.judge_cost_usd > 0
    bad = to_verdict({**row, "generated_text": "maybe"}, crit, default_kinds(), stack,
                     run_id="x", day=None)  # fmt: skip
    assert bad.verdict == "error" and "invalid answer" in (bad.error or "")
    rf = _crit("reasoning_first")
    ok = to_verdict({**row, "generated_text": json.dumps({"reasoning": "r", "verdict": "pass"})},
                    rf, default_kinds(), stack, run_id="x", day=None)  # fmt: skip
    assert ok.verdict == "pass" and ok.reasoning == "r"


def test_choice_logprobs_reads_the_first_position() -> None:
    assert _choice_logprobs([{"1": {"logprob": -0.5, "decoded_token": " pass"}}]) == {"pass": -0.5}
    assert _choice_logprobs(None) == {}


def test_judge_bound() -> None:
    # 300 prompt tokens at 3,000 tok/s (0.1 s) + 1 token at 20 tok/s (0.05 s): 6.67 items/s.
    assert bound_items_s(300, 1, 3000, 20) == pytest.approx(1 / 0.15)


def test_the_endpoint_batch_path_sends_openai_requests_and_reads_their_answers() -> None:
    """A simulated judge's batches go through the gateway: an OpenAI chat request per row
    (structured outputs, logprobs), and its response read like an engine's output row."""
    from judges._batch import _decode_logprobs, _endpoint_answer, _endpoint_payload

    stack = load_config(ROOT / "config/cpu.yaml")
    crit = _crit("verdict_only")
    (row,) = batch_rows([_item()], [crit], JudgingConfig(), default_kinds())
    sent = _endpoint_payload(row, "judge-model")
    payload = sent["payload"]
    assert payload["model"] == "judge-model" and payload["messages"] == row["messages"]
    assert payload["structured_outputs"] == {"choice": ["pass", "fail"]}
    assert payload["logprobs"] is True and payload["top_logprobs"] == 10
    top = [{"token": "fail", "logprob": math.log(0.8)}, {"token": "pass", "logprob": math.log(0.2)}]
    response = {
        "choices": [
            {"message": {"content": "fail"}, "logprobs": {"content": [{"top_logprobs": top}]}}
        ],
        "usage": {"prompt_tokens": 90, "completion_tokens": 1},
    }
    out = _endpoint_answer({**sent, "http_response": response})
    out["logprobs"] = _decode_logprobs(out["logprobs"])
    v = to_verdict(out, crit, default_kinds(), stack, run_id="d", day="d")
    assert v.verdict == "fail" and v.p_fail == pytest.approx(0.8)
    assert (v.judge_prompt_tokens, v.judge_completion_tokens) == (90, 1)
    refused = _endpoint_answer({**sent, "http_response": {"error": {"message": "nope"}}})
    failed = to_verdict(refused, crit, default_kinds(), stack, run_id="d", day="d")
    assert failed.verdict == "error" and "nope" in (failed.error or "")
