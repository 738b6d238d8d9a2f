"""Online judging's cost beside the daily job's: items/s of ``gavel judge online`` passes
and of the daily job over the same records, with the same criterion and judge.

    python -m judges.bench.online [--items 40] [--rounds 3] [--out reports/bench/online.json]

Needs a running stack (``gavel serve --detach``; ``config/sim.yaml`` gives the judge a
simulated GPU). One day of the shipped prompts is replayed through the gateway (to a day
of its own); each round judges a fresh SQLite copy of it three ways, in a rotating
order: an online pass (a rule at rate 1.0, in-process, the job's concurrency), the daily
job in-process (``--no-ray``, the same concurrency) and the daily job on Ray tasks (its
``parallel_tasks`` x concurrency, as the nightly run). Figures: items/s, median and range
over the rounds. An online pass also reads its window, checks what its rule picked and
writes its picks and cursor: what that costs is in the difference to the in-process
daily run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

from judges._catalog import load_criteria
from judges._config import JudgingConfig, load_judging
from judges._daily import run_daily
from judges._online import OnlineRule
from judges._online_run import OnlineContext, online_pass
from judges._replay import replay
from judges.kinds import default_kinds
from serving import StackConfig, connect_ray, default_config, load_config, new_key, open_store
from serving.bench.provenance import write_report
from serving.store import Store

CRITERION = "answers_question"
WAYS = ("online pass", "daily, in-process", "daily, Ray tasks")


def _copy(source: Store, day: date, work: Path) -> Store:
    store = Store(f"sqlite:///{work / f'online-{uuid.uuid4().hex[:8]}.db'}")
    store.insert_traffic(source.traffic_for_day(day))
    return store


def _one(way: str, stack: StackConfig, judging: JudgingConfig, store: Store, day: date,
         key: str) -> tuple[int, float]:  # fmt: skip
    """Judge the copy one way; (items judged, seconds)."""
    crits = [c for c in load_criteria(Path(judging.criteria_dir)) if c.name == CRITERION]
    t0 = time.perf_counter()
    if way == "online pass":
        ctx = OnlineContext(stack=stack, judging=judging, criteria={CRITERION: crits[0]},
                            store=store, api_key=key, kinds=default_kinds(),
                            log=lambda _m: None)  # fmt: skip
        end = datetime.combine(day + timedelta(days=1), dtime(0), tzinfo=UTC)
        n = sum(p.judged_now for p in online_pass(ctx, now=end))
    else:
        res = run_daily(stack, judging, crits, store, day=day, api_key=key,
                        use_ray=way == "daily, Ray tasks", write_report=False,
                        log=lambda _m: None)  # fmt: skip
        n = res.judged_now
    return n, time.perf_counter() - t0


def _judging(base: JudgingConfig, items: int) -> JudgingConfig:
    return base.model_copy(update={
        "sampling": base.sampling.model_copy(update={"rate": 1.0, "max_per_stratum": items}),
        "online": [OnlineRule(name="bench", sample_rate=1.0, criteria=[CRITERION],
                              max_per_hour=100_000)],
        "online_loop": base.online_loop.model_copy(update={
            "settle_s": 0, "late_s": 0, "start_lookback_h": 24, "window_h": 24}),
    })  # fmt: skip


def spread(xs: list[float]) -> dict[str, float]:
    """Median, min and max."""
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def _rounds(rounds: int, run: Callable[[str], tuple[int, float]]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {w: [] for w in WAYS}
    for r in range(rounds):
        for way in WAYS[r % 3 :] + WAYS[: r % 3]:
            n, seconds = run(way)
            out[way].append({"items": n, "seconds": seconds, "items_s": n / seconds})
            print(f"round {r} {way}: {n} items in {seconds:.1f} s = {n / seconds:.2f} items/s",
                  flush=True)  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    """Replay a day, judge it each way in rotating rounds, print, write JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--config", default=default_config())
    p.add_argument("--judging", help="default: the stack config's judging field")
    p.add_argument("--items", type=int, default=40, help="records of the replayed day")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default="reports/bench/online.json")
    args = p.parse_args(argv)
    stack = load_config(args.config)
    judging = _judging(load_judging(args.judging or stack.judging), args.items)
    source = open_store(args.config)
    key, record = new_key(f"bench-online-{uuid.uuid4().hex[:8]}", ["admin"])
    source.add_key(record)
    if not connect_ray(stack.ray.address):
        print("gavel: no running stack; start one with `gavel serve --detach`", file=sys.stderr)
        return 1
    day = date(1990, 1, 1) + timedelta(days=random.randrange(3000))
    asyncio.run(replay(stack, api_key=key, days=[day], per_day=args.items, log=lambda _m: None))
    deadline = time.monotonic() + 30
    while len(source.traffic_for_day(day)) < args.items and time.monotonic() < deadline:
        time.sleep(0.2)
    work = Path(tempfile.mkdtemp(prefix="gavel-bench-online-"))

    def run(way: str) -> tuple[int, float]:
        return _one(way, stack, judging, _copy(source, day, work), day, key)

    rounds = _rounds(args.rounds, run)
    summary = {w: spread([x["items_s"] for x in rs]) for w, rs in rounds.items()}
    report = {"rounds": rounds, "items_s": summary, "records": args.items,
              "criterion": CRITERION, "concurrency": judging.concurrency,
              "parallel_tasks": judging.parallel_tasks}  # fmt: skip
    write_report(args.out, report, config=args.config)
    return 0


def table(data: dict[str, Any]) -> str:
    """The page's table from this benchmark's JSON (pure)."""
    rows = ["| how | items/s | judge calls in flight |", "|---|---|---|"]
    flight = {"online pass": data["concurrency"], "daily, in-process": data["concurrency"],
              "daily, Ray tasks": data["concurrency"] * data["parallel_tasks"]}  # fmt: skip
    for way, s in data["items_s"].items():
        rows.append(f"| {way} | {s['median']:.2f} [{s['min']:.2f}–{s['max']:.2f}] "
                    f"| {flight[way]} |")  # fmt: skip
    n = len(next(iter(data["rounds"].values())))
    rows.append(f"\n{n} rounds of {data['records']} records, criterion `{data['criterion']}`, "
                "ways rotating; medians [min–max].")  # fmt: skip
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
