"""The daily judge's speed: items/s of each verdict format against the judge engine's bound.

    python -m judges.bench.daily [--items 45] [--rounds 2] [--out reports/bench/judge.json]

Needs a running stack (``gavel serve --detach``); the app model stays idle. One day of
the shipped prompts is replayed through the gateway (to a day of its own); then the
daily job (``run_daily``, Ray tasks, the job's concurrency from ``config/judging.yaml``)
judges it with three binary criteria, once per verdict format, in alternating rounds,
each round in a fresh store so nothing is reused. Before that, the judge engine's bound
is measured at the job's concurrency: prefill tokens/s (prompts of the judged items'
mean length, 1 output token, unique so the prefix cache does not help) and decode
tokens/s (64 tokens, ``ignore_eos``); from them, each format's tokens per item and the
share of prompt tokens the prefix cache served (from vLLM's metrics on Ray's metrics
port), the items/s the engine could sustain. Each format is warmed up first (its
grammar is compiled once per engine). Figures: items/s (median, min-max over rounds), the
bound, and achieved/bound.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
from prometheus_client.parser import text_string_to_metric_families

from judges._catalog import load_criteria
from judges._config import JudgingConfig, load_judging
from judges._criteria import Criterion, VerdictFormat
from judges._daily import run_daily
from judges._replay import replay
from serving import StackConfig, connect_ray, default_config, load_config, new_key, open_store
from serving.bench.provenance import write_report
from serving.store import Store

CRITERIA = ("answers_question", "concise", "follows_format")
FORMATS: tuple[VerdictFormat, ...] = ("reasoning_first", "verdict_only")
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "river",
    "stone",
    "cloud",
    "paper",
    "green",
    "orange",
    "window",
    "table",
]


# --- pure figures --------------------------------------------------------------------


def bound_items_s(prompt_tok: float, completion_tok: float, prefill_s: float,
                  decode_s: float) -> float:  # fmt: skip
    """Items/s the engine sustains if each item costs ``prompt_tok`` of prefill at
    ``prefill_s`` tokens/s and ``completion_tok`` of decode at ``decode_s`` tokens/s."""
    return 1.0 / (prompt_tok / prefill_s + completion_tok / decode_s)


def spread(values: list[float]) -> dict[str, float]:
    """Median with min and max."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


# --- measurements ----------------------------------------------------------------------


async def _engine_rate(stack: StackConfig, key: str, *, in_flight: int, prompt_words: int,
                       max_tokens: int, requests: int) -> tuple[float, float]:  # fmt: skip
    """(prompt tokens/s, completion tokens/s) over ``requests`` calls, ``in_flight`` at once."""
    judge = stack.model("judge").model_id
    client = openai.AsyncOpenAI(
        base_url=stack.http.base_url, api_key=key, max_retries=0, timeout=600,
        default_headers={"X-Gavel-Source": "judge"},
    )  # fmt: skip
    sem = asyncio.Semaphore(in_flight)
    rng = random.Random(0)
    totals = [0, 0]

    async def one(i: int) -> None:
        text = f"{uuid.uuid4().hex} " + " ".join(rng.choice(WORDS) for _ in range(prompt_words))
        async with sem:
            r = await client.completions.create(
                model=judge, prompt=text, max_tokens=max_tokens, temperature=0,
                extra_body={"ignore_eos": True},
            )  # fmt: skip
        if r.usage is not None:
            totals[0] += r.usage.prompt_tokens
            totals[1] += r.usage.completion_tokens

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(requests)))
    wall = time.perf_counter() - t0
    await client.close()
    return totals[0] / wall, totals[1] / wall


def measure_bound(
    stack: StackConfig, key: str, *, in_flight: int, prompt_tok: float
) -> dict[str, float]:
    """Prefill and decode tokens/s of the judge engine at ``in_flight`` concurrent calls."""
    words = max(8, int(prompt_tok * 0.75))
    prefill, _ = asyncio.run(_engine_rate(stack, key, in_flight=in_flight, prompt_words=words,
                                          max_tokens=1, requests=4 * in_flight))  # fmt: skip
    _, decode = asyncio.run(_engine_rate(stack, key, in_flight=in_flight, prompt_words=8,
                                         max_tokens=64, requests=2 * in_flight))  # fmt: skip
    return {"prefill_tok_s": prefill, "decode_tok_s": decode}


def prefix_cache(stack: StackConfig) -> tuple[float, float]:
    """(prompt tokens served from vLLM's prefix cache, prompt tokens queried) of the judge
    engine so far, from Ray's metrics export port (``ray_vllm_prefix_cache_*``)."""
    judge = stack.model("judge").model_id
    text = httpx.get(f"http://127.0.0.1:{stack.ray.metrics_export_port}/metrics", timeout=10).text
    hits, queries = "ray_vllm_prefix_cache_hits_total", "ray_vllm_prefix_cache_queries_total"
    totals = {hits: 0.0, queries: 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in totals and sample.labels.get("model_name") == judge:
                totals[sample.name] += sample.value
    return totals[hits], totals[queries]


def _criteria(judging: JudgingConfig, fmt: VerdictFormat) -> list[Criterion]:
    shipped = {c.name: c for c in load_criteria(Path(judging.criteria_dir))}
    return [shipped[n].model_copy(update={"verdict_format": fmt}) for n in CRITERIA]


def judge_round(stack: StackConfig, judging: JudgingConfig, source: Store, day: date, key: str,
                fmt: VerdictFormat, work: Path) -> dict[str, float]:  # fmt: skip
    """Judge ``day`` from a fresh copy of its traffic; items/s and tokens per item."""
    store = Store(f"sqlite:///{work / f'judge-{fmt}-{uuid.uuid4().hex[:6]}.db'}")
    store.insert_traffic(source.traffic_for_day(day))
    hits0, queries0 = prefix_cache(stack)
    t0 = time.perf_counter()
    res = run_daily(stack, judging, _criteria(judging, fmt), store, day=day, api_key=key,
                    use_ray=True, write_report=False, log=lambda _m: None)  # fmt: skip
    seconds = time.perf_counter() - t0
    hits1, queries1 = prefix_cache(stack)
    n = max(res.judged_now, 1)
    cached = (hits1 - hits0) / (queries1 - queries0) if queries1 > queries0 else 0.0
    return {
        "prefix_cache_hit_rate": cached,
        "items": res.judged_now, "errors": res.errors, "seconds": seconds,
        "items_s": res.judged_now / seconds,
        "prompt_tok_per_item": res.judge_prompt_tokens / n,
        "completion_tok_per_item": res.judge_completion_tokens / n,
    }  # fmt: skip


def table(data: dict[str, Any]) -> str:
    """The page's table from this benchmark's JSON (pure)."""
    e = data["engine"]
    rows = ["| format | items/s, median [min-max] | tokens per item | prefix cache | bound "
            "| achieved |", "|---|---|---|---|---|---|"]  # fmt: skip
    for name, f in data["formats"].items():
        s = f["items_s"]
        label = f"`{name}` (default)" if name == "reasoning_first" else f"`{name}`"
        rows.append(f"| {label} | {s['median']:.2f} [{s['min']:.2f}, {s['max']:.2f}] "
                    f"| {f['prompt_tok_per_item']:.0f} + {f['completion_tok_per_item']:.1f} "
                    f"| {f['prefix_cache_hit_rate']:.0%} | {f['bound_items_s']:.2f} "
                    f"| {f['achieved_over_bound']:.0%} |")  # fmt: skip
    rows.append(f"\n{data['rounds']} alternating rounds of {len(data['criteria'])} criteria; "
                f"{data['in_flight']} judge calls in flight; the judge engine's bound at that "
                f"concurrency: prefill {e['prefill_tok_s']:.0f} tokens/s (unique prompts), "
                f"decode {e['decode_tok_s']:.0f} tokens/s.")  # fmt: skip
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Measure the bound, judge in alternating rounds per format, print, write JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--config", default=default_config())
    p.add_argument("--judging", help="default: the stack config's judging field")
    p.add_argument("--items", type=int, default=45, help="judged items per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default="reports/bench/judge.json")
    args = p.parse_args(argv)
    stack = load_config(args.config)
    per_day = max(1, args.items // len(CRITERIA))
    base = load_judging(args.judging or stack.judging)
    judging = base.model_copy(update={
        "sampling": base.sampling.model_copy(update={"rate": 1.0, "max_per_stratum": per_day}),
    })  # fmt: skip
    in_flight = judging.concurrency * judging.parallel_tasks
    source = open_store(args.config)
    key, record = new_key(f"bench-judge-{uuid.uuid4().hex[:8]}", ["admin"])
    source.add_key(record)
    if not connect_ray(stack.ray.address):
        print("gavel: no running stack; start one with `gavel serve --detach`", file=sys.stderr)
        return 1
    day = date(1990, 1, 1) + timedelta(days=random.randrange(3000))
    asyncio.run(replay(stack, api_key=key, days=[day], per_day=per_day, log=lambda _m: None))
    deadline = time.monotonic() + 30
    while len(source.traffic_for_day(day)) < per_day and time.monotonic() < deadline:
        time.sleep(0.2)  # the gateway's capture flushes every 0.5 s
    print(f"day {day}: {len(source.traffic_for_day(day))} records; {len(CRITERIA)} criteria; "
          f"{in_flight} judge calls in flight ({judging.parallel_tasks} tasks x "
          f"{judging.concurrency})", flush=True)  # fmt: skip

    work = Path(tempfile.mkdtemp(prefix="gavel-bench-judge-"))
    # Warm-up: each format's grammar is compiled once per engine; not timed.
    warm = judging.model_copy(update={
        "sampling": judging.sampling.model_copy(update={"max_per_stratum": 2})})  # fmt: skip
    for fmt in FORMATS:
        judge_round(stack, warm, source, day, key, fmt, work)
    rounds: dict[str, list[dict[str, float]]] = {f: [] for f in FORMATS}
    for r in range(args.rounds):
        order = FORMATS if r % 2 == 0 else FORMATS[::-1]
        for fmt in order:
            got = judge_round(stack, judging, source, day, key, fmt, work)
            rounds[fmt].append(got)
            print(f"round {r} {fmt}: {got['items']:.0f} items in {got['seconds']:.1f} s = "
                  f"{got['items_s']:.2f} items/s ({got['prompt_tok_per_item']:.0f} prompt + "
                  f"{got['completion_tok_per_item']:.1f} completion tokens per item, "
                  f"{got['prefix_cache_hit_rate']:.0%} of prompt tokens cached)",
                  flush=True)  # fmt: skip
    prompt_tok = statistics.mean(x["prompt_tok_per_item"] for v in rounds.values() for x in v)
    engine = measure_bound(stack, key, in_flight=in_flight, prompt_tok=prompt_tok)
    print(f"judge engine at {in_flight} in flight: prefill {engine['prefill_tok_s']:.0f} tok/s, "
          f"decode {engine['decode_tok_s']:.1f} tok/s", flush=True)  # fmt: skip
    formats: dict[str, Any] = {}
    for name, rs in rounds.items():
        pt = statistics.mean(x["prompt_tok_per_item"] for x in rs)
        ct = statistics.mean(x["completion_tok_per_item"] for x in rs)
        hit = statistics.mean(x["prefix_cache_hit_rate"] for x in rs)
        # The engine prefills only what its prefix cache does not hold.
        b = bound_items_s(pt * (1 - hit), ct, engine["prefill_tok_s"], engine["decode_tok_s"])
        items_s = spread([x["items_s"] for x in rs])
        formats[name] = {"rounds": rs, "items_s": items_s, "prompt_tok_per_item": pt,
                        "completion_tok_per_item": ct, "prefix_cache_hit_rate": hit,
                        "bound_items_s": b,
                        "achieved_over_bound": items_s["median"] / b}  # fmt: skip
    report = {
        "schema": "gavel.bench_judge/1",
        "machine": {"platform": platform.platform()},
        "criteria": list(CRITERIA), "rounds": args.rounds, "in_flight": in_flight,
        "judging": {"concurrency": judging.concurrency, "parallel_tasks": judging.parallel_tasks,
                    "max_tokens": judging.max_tokens},
        "engine": engine, "formats": formats,
        "baseline_items_s": 0.63, "target_items_s": 1.9, "target_share_of_bound": 0.8,
    }  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_report(out, report, config=args.config)
    print("\n=== daily judge: items/s, median [min-max] over rounds ===")
    for name, f in formats.items():
        s = f["items_s"]
        print(f"{name:<16} {s['median']:.2f} [{s['min']:.2f}-{s['max']:.2f}] items/s; bound "
              f"{f['bound_items_s']:.2f} items/s; achieved {f['achieved_over_bound']:.0%} of it; "
              f"{f['prompt_tok_per_item']:.0f}+{f['completion_tok_per_item']:.1f} tok/item, "
              f"{f['prefix_cache_hit_rate']:.0%} of prompt tokens from the prefix cache",
              )  # fmt: skip
    print("targets: >= 1.9 items/s (3x 0.63) and >= 80% of the bound")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
