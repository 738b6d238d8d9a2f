"""The Ray Data batch path at small scale, on the CPU default: a vLLM engine of Ray Data's
own judges pass/fail items into the same verdict store, idempotently."""

from __future__ import annotations

from pathlib import Path

import pytest

from judges import Criterion, Exchange, JudgeItem, JudgingConfig, VerdictStore
from judges._batch import judge_batch
from serving import connect_ray, load_config
from serving.store import Store
from tests.conftest import CONFIG

pytestmark = [pytest.mark.stack, pytest.mark.engine]  # Ray Data runs its own vLLM engine


def test_batch_path_judges_once_into_the_verdict_store(stack: str, tmp_path: Path) -> None:
    assert connect_ray(None)
    crit = Criterion(
        name="answers_question", kind="binary",
        rubric="PASS if the response directly answers the user's question; FAIL otherwise.",
        verdict_format="verdict_only",
    )  # fmt: skip
    qa = [("What is the capital of France?", "The capital of France is Paris."),
          ("What is 2 + 2?", "I like turtles."),
          ("Name a primary colour.", "Red is a primary colour.")]  # fmt: skip
    items = [
        JudgeItem(criterion=crit.name, exchanges=[Exchange(
            id=f"batch-{i}", model="app-model",
            messages=[{"role": "user", "content": q}], response=a)])
        for i, (q, a) in enumerate(qa)
    ]  # fmt: skip
    vstore = VerdictStore(Store(f"sqlite:///{tmp_path / 'v.db'}"))
    vstore.store.ensure_schema()
    judging = JudgingConfig(chunk_size=4)
    stack_cfg = load_config(CONFIG)
    written = judge_batch(items, [crit], stack_cfg, judging, vstore, run_id="batch-test",
                          day=None, log=print)  # fmt: skip
    assert written == 3
    stored = vstore.for_items({i.item_id for i in items})
    assert {v.verdict for v in stored} <= {"pass", "fail"}
    assert all(v.judge_args["path"] == "ray_data" and v.judge_args["format"] == "verdict_only"
               for v in stored)  # fmt: skip
    assert all(v.p_fail is not None and 0 <= v.p_fail <= 1 for v in stored)
    # Idempotent: a second run sends nothing.
    assert judge_batch(items, [crit], stack_cfg, judging, vstore, run_id="batch-test",
                       day=None, log=print) == 0  # fmt: skip
