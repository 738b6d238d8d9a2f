"""The batch path: pass/fail items judged by Ray Data's LLM batch processor.

For large days on GPU clusters: instead of calling the judge model through the online
endpoint, Ray Data runs a vLLM engine of its own (``ray.data.llm``), fed in batches, with
the same prompts (each kind's ``prompt``), the same structured outputs (a ``choice`` for
``verdict_only``, the JSON schema for ``reasoning_first``), the same verdict store and
the same idempotency: only items without a stored verdict are sent, and a verdict is
written once. The engine takes the judge role's model, engine arguments, environment
and resources from the stack config. Pairwise kinds stay on the online path.

A *simulated* judge (``source: {simulate: ...}``) has no weights for an engine of Ray
Data's own, so its batches go to the stack's endpoint instead, through the gateway (Ray
Data's HTTP request processor, the judge key, ``X-Gavel-Source: judge``): the same rows,
the same structured outputs, the same verdicts.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from judges._config import JudgingConfig
from judges._criteria import Criterion
from judges._registry import KindRegistry
from judges._store import VerdictStore
from judges._wire import JudgeItem, PassFailAnswer, Verdict
from judges.kinds import default_kinds
from judges.kinds._pass_fail import SYSTEM, SYSTEM_VERDICT_ONLY, p_fail
from serving import StackConfig

BATCH_PATH = "ray_data"
LIGHT_STAGE_CPUS = 0.1


def _sampling(criterion: Criterion, judging: JudgingConfig) -> dict[str, Any]:
    if criterion.verdict_format == "verdict_only":
        return {"temperature": 0.0, "max_tokens": 4, "logprobs": 10,
                "structured_outputs": {"choice": ["pass", "fail"]}}  # fmt: skip
    return {"temperature": 0.0, "max_tokens": judging.max_tokens,
            "structured_outputs": {"json": PassFailAnswer.model_json_schema()}}  # fmt: skip


def batch_rows(
    items: Sequence[JudgeItem], criteria: Sequence[Criterion], judging: JudgingConfig,
    kinds: KindRegistry,
) -> list[dict[str, Any]]:  # fmt: skip
    """One input row per item: its id, criterion, chat messages and sampling parameters."""
    crits = {c.name: c for c in criteria}
    rows = []
    for item in items:
        crit = crits[item.criterion]
        prompt = kinds.get(crit.kind).prompt
        if prompt is None:
            raise ValueError(f"{crit.name}: kind {crit.kind!r} has no batch prompt")
        system = SYSTEM_VERDICT_ONLY if crit.verdict_format == "verdict_only" else SYSTEM
        rows.append({
            "item": item.model_dump_json(), "criterion": crit.name,
            "messages": [{"role": "system", "content": system},
                         {"role": "user", "content": prompt(crit, item)}],
            "sampling_params": _sampling(crit, judging),
        })  # fmt: skip
    return rows


def _choice_logprobs(logprobs: Any) -> dict[str, float]:
    """First-position log-probabilities of tokens that start ``pass`` or ``fail``."""
    if not logprobs:
        return {}
    out: dict[str, float] = {}
    for entry in (logprobs[0] or {}).values():
        token = str(entry.get("decoded_token") or "").strip().lower()
        for c in ("pass", "fail"):
            if token and c.startswith(token) and c not in out:
                out[c] = float(entry["logprob"])
    return out


def to_verdict(row: dict[str, Any], crit: Criterion, kinds: KindRegistry, stack: StackConfig,
               *, run_id: str, day: str | None) -> Verdict:  # fmt: skip
    """The stored verdict of one output row (an unparseable answer is an ``error``)."""
    item = JudgeItem.model_validate_json(row["item"])
    kind = kinds.get(crit.kind)
    judge = stack.model("judge")
    text = str(row.get("generated_text") or "").strip()
    pt, ct = int(row.get("num_input_tokens") or 0), int(row.get("num_generated_tokens") or 0)
    verdict, reasoning, error, pf = "error", None, None, None
    if row.get("http_error"):
        error = f"endpoint: {row['http_error']}"
    elif crit.verdict_format == "verdict_only":
        if text in ("pass", "fail"):
            verdict, pf = text, p_fail(_choice_logprobs(row.get("logprobs")))
        else:
            error = f"invalid answer: {text[:40]!r}"
    else:
        try:
            ans = PassFailAnswer.model_validate_json(text)
            verdict, reasoning = ans.verdict, ans.reasoning
        except ValueError as exc:
            error = f"invalid answer: {str(exc)[:120]}"
    return Verdict(
        item_id=item.item_id, criterion=crit.name, criterion_version=crit.version,
        kind=crit.kind, judge=kind.judge_name, judge_version=kind.judge_version,
        judge_model=judge.model_id,
        judge_args={"temperature": 0.0, "format": crit.verdict_format, "path": BATCH_PATH},
        model="|".join(e.model for e in item.exchanges), run_id=run_id, day=day,
        verdict=verdict, reasoning=reasoning, error=error, p_fail=pf,
        judge_prompt_tokens=pt, judge_completion_tokens=ct,
        judge_cost_usd=judge.price.cost(pt, ct), latency_ms=0.0,
        created_at=datetime.now(UTC),
    )  # fmt: skip


def processor_config(stack: StackConfig, judging: JudgingConfig, *, base_dir: Path) -> Any:
    """Ray Data's vLLM engine config for the judge role's model."""
    from ray.data.llm import vLLMEngineProcessorConfig

    judge = stack.model("judge")
    source = judge.source.uri
    if judge.source.path is not None and not Path(source).is_absolute():
        source = str((base_dir / source).resolve())
    return vLLMEngineProcessorConfig(
        model_source=source,
        engine_kwargs=judge.engine.to_engine_kwargs(),
        runtime_env={"env_vars": dict(judge.env)} if judge.env else None,
        placement_group_config={"bundles": [judge.resources.bundle()]},
        accelerator_type=judge.resources.accelerator_type,
        batch_size=judging.chunk_size,
        concurrency=1,
        # The light stages (chat template, tokenize, detokenize) take a fraction of a CPU
        # each, so the batch path fits beside a running stack on a small node.
        chat_template_stage={"enabled": True, "num_cpus": LIGHT_STAGE_CPUS, "concurrency": 1},
        tokenize_stage={"enabled": True, "num_cpus": LIGHT_STAGE_CPUS, "concurrency": 1},
        detokenize_stage={"enabled": True, "num_cpus": LIGHT_STAGE_CPUS, "concurrency": 1},
    )


def _endpoint_payload(row: dict[str, Any], model: str) -> dict[str, Any]:
    """The chat request of one row, in OpenAI's form (vLLM's structured outputs)."""
    sp = dict(row["sampling_params"])
    payload = {
        "model": model,
        "messages": row["messages"],
        "max_tokens": sp["max_tokens"],
        "temperature": sp["temperature"],
        "structured_outputs": sp["structured_outputs"],
    }
    if sp.get("logprobs"):
        payload |= {"logprobs": True, "top_logprobs": sp["logprobs"]}
    return {"item": row["item"], "criterion": row["criterion"], "payload": payload}


def _endpoint_answer(row: dict[str, Any]) -> dict[str, Any]:
    """An HTTP response in the shape of the engine path's output row."""
    resp = row.get("http_response") or {}
    choice = (resp.get("choices") or [{}])[0]
    usage = resp.get("usage") or {}
    top = (((choice.get("logprobs") or {}).get("content") or [{}])[0] or {}).get("top_logprobs")
    logprobs = None
    if top:
        first = {str(i): {"decoded_token": t["token"], "logprob": t["logprob"]}
                 for i, t in enumerate(top)}  # fmt: skip
        logprobs = json.dumps([first])
    return {
        "item": row["item"], "criterion": row["criterion"],
        "http_error": None if resp.get("choices") else json.dumps(resp, default=str)[:300],
        "generated_text": (choice.get("message") or {}).get("content"), "logprobs": logprobs,
        "num_input_tokens": usage.get("prompt_tokens"),
        "num_generated_tokens": usage.get("completion_tokens"),
    }  # fmt: skip


def endpoint_processor(stack: StackConfig, judging: JudgingConfig, api_key: str) -> Any:
    """Ray Data's HTTP processor over the stack's endpoint, for a simulated judge."""
    from ray.data.llm import HttpRequestProcessorConfig, build_processor

    model = stack.model("judge").model_id
    config = HttpRequestProcessorConfig(
        url=f"{stack.http.base_url.rstrip('/')}/chat/completions",
        headers={"Authorization": f"Bearer {api_key}", "X-Gavel-Source": "judge"},
        batch_size=judging.chunk_size,
        concurrency=judging.parallel_tasks,
        max_retries=judging.max_retries,
    )
    return build_processor(
        config,
        preprocess=lambda row: _endpoint_payload(row, model),
        postprocess=_endpoint_answer,
    )


def judge_batch(
    items: Sequence[JudgeItem],
    criteria: Sequence[Criterion],
    stack: StackConfig,
    judging: JudgingConfig,
    vstore: VerdictStore,
    *,
    run_id: str,
    day: str | None,
    kinds: KindRegistry | None = None,
    base_dir: Path | None = None,
    api_key: str | None = None,
    log: Callable[[str], None] = print,
) -> int:
    """Judge pass/fail ``items`` through Ray Data's LLM batch processor; returns the
    verdicts written. Items that already have a verdict are skipped (idempotent)."""
    import ray.data
    from ray.data.llm import build_processor

    registry = kinds or default_kinds()
    crits = {c.name: c for c in criteria}
    done = vstore.done_keys(run_id)
    todo = [i for i in items
            if (i.item_id, i.criterion, crits[i.criterion].version) not in done]  # fmt: skip
    if not todo:
        return 0
    t0 = time.perf_counter()
    rows = batch_rows(todo, criteria, judging, registry)
    if stack.model("judge").source.simulate is not None:
        if api_key is None:
            raise ValueError("a simulated judge is called through the endpoint: give a key")
        processor = endpoint_processor(stack, judging, api_key)
    else:
        processor = build_processor(
            processor_config(stack, judging, base_dir=base_dir or Path.cwd()),
            postprocess=lambda row: {
                "item": row["item"], "criterion": row["criterion"],
                "generated_text": row.get("generated_text"),
                "logprobs": json.dumps(row.get("logprobs"), default=str)
                if row.get("logprobs") is not None else None,
                "num_input_tokens": row.get("num_input_tokens"),
                "num_generated_tokens": row.get("num_generated_tokens"),
            },
        )  # fmt: skip
    out = processor(ray.data.from_items(rows)).take_all()
    verdicts = []
    for row in out:
        if row.get("logprobs"):
            row["logprobs"] = _decode_logprobs(row["logprobs"])
        verdicts.append(to_verdict(row, crits[row["criterion"]], registry, stack,
                                   run_id=run_id, day=day))  # fmt: skip
    written = vstore.insert(verdicts)
    secs = time.perf_counter() - t0
    rate = len(out) / secs if secs > 0 else math.inf
    log(f"  batch path: {len(out)} items in {secs:.1f} s ({rate:.2f} items/s), {written} written")
    return written


def _decode_logprobs(text: str) -> list[dict[str, dict[str, Any]]]:
    """The postprocess stage ships logprobs as JSON (its keys are token ids)."""
    data = json.loads(text)
    return [{str(k): v for k, v in (pos or {}).items()} for pos in data]
