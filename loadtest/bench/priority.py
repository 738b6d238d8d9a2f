"""Background traffic yields inside the engine (issue 32): production's TTFT on a shared
simulated engine alone, beside a shadow at 100% and a judge load with the engine's
priority off, and the same with it on, alternated in blocks on one stack.

On the two-node cluster of ``loadtest.bench._cluster``: the app model is one simulated
H100 replica with ``max_num_seqs`` small enough that the engine, not the 2 cores, is
full (``--slots``), scheduling by priority (``scheduling_policy: priority``). A swap's
candidate is a variant of the same engine. Per round, three blocks of production
traffic (Locust, closed loop):

- ``alone``: no shadow, no judge load;
- ``off``: shadow at 100% and a judge load (``X-Gavel-Source: judge`` at the same
  concurrency, to the same engine), with every source at priority 0 (the engine serves
  them first come, first served);
- ``on``: the same background with the gateway's default priorities (production 0,
  shadow 1, judge 2): background requests wait, and are preempted, while production
  runs.

``off`` and ``on`` differ only in ``gateway.priority.engine``, so a switch redeploys the
gateway alone. Their order alternates by round. Reported: production's TTFT p50 and p99
per setting (median over rounds, min-max), and the share of the p99 that background
traffic adds which priority takes back.

``python -m loadtest.bench.priority [--rounds 3] --out reports/bench/priority.json``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
from pathlib import Path
from typing import Any

import httpx
import yaml

from loadtest.bench._cluster import Stack, scratch_database, start_nodes, stop_nodes
from serving.bench.provenance import write_report

SWAP = {
    "production": "app-model",
    "candidate": "app-brief",
    "variant": {"model_id": "app-brief", "base": "app-model", "system_prompt": "Be brief."},
    "shadow_rate": 0.0,
}
OUTPUT_LEN = 64
PROMPT = " ".join(["word"] * 200)
EQUAL = {"production": 0, "shadow": 0, "judge": 0, "eval": 0}


def _production(key: str, concurrency: int, n: int) -> list[float]:
    """One block of production traffic; the TTFTs (s) of the requests that succeeded."""
    from loadtest._models import SweepSpec
    from loadtest._runner import run_cell

    spec = SweepSpec(base_url="http://127.0.0.1:8000", model="app-model",
                     output_lens=[OUTPUT_LEN], concurrency=[concurrency],
                     requests_per_cell=n, request_timeout_s=120)  # fmt: skip
    records, _ = run_cell(spec, prompt=PROMPT, output_len=OUTPUT_LEN,
                          concurrency=concurrency, api_key=key)  # fmt: skip
    return [r.ttft_s for r in records if r.ok and r.ttft_s is not None]


class JudgeLoad:
    """Judge-source requests to the app model at a fixed concurrency, in a thread, until
    stopped (the load, not what is measured)."""

    def __init__(self, key: str, concurrency: int) -> None:
        self._key, self._concurrency = key, concurrency
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.sent = 0

    async def _one(self, client: httpx.AsyncClient) -> None:
        body = {"model": "app-model", "max_tokens": OUTPUT_LEN, "ignore_eos": True,
                "messages": [{"role": "user", "content": PROMPT}]}  # fmt: skip
        while not self._stop.is_set():
            await client.post("/v1/chat/completions", json=body)
            self.sent += 1

    async def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self._key}", "X-Gavel-Source": "judge"}
        async with httpx.AsyncClient(base_url="http://127.0.0.1:8000", headers=headers,
                                     timeout=120) as client:  # fmt: skip
            await asyncio.gather(*(self._one(client) for _ in range(self._concurrency)))

    def __enter__(self) -> JudgeLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=180)


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 1)


def _spread(xs: list[float]) -> list[float]:
    return [round(statistics.median(xs), 1), min(xs), max(xs)]


def _configure(stack: Stack, slots: int, *, priority_on: bool) -> None:
    """Write the stack config for one side (``gavel serve`` then redeploys the gateway)."""
    cfg = yaml.safe_load(stack.config.read_text())
    app = next(m for m in cfg["models"] if m["role"] == "app")
    app["deployment"]["num_replicas"] = 1
    app["engine"] = {"max_num_seqs": slots, "extra": {"scheduling_policy": "priority"}}
    cfg["swap"] = SWAP
    cfg["gateway"]["priority"] = {"max_in_flight": 64} | ({} if priority_on else {"engine": EQUAL})
    stack.config.write_text(yaml.safe_dump(cfg))


def summarize(blocks: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """Medians [min, max] per setting, and how much of the p99 that background traffic
    adds (``off`` - ``alone``) remains with priority on (pure)."""
    out: dict[str, Any] = {
        s: {"ttft_p50_ms": _spread(v["p50"]), "ttft_p99_ms": _spread(v["p99"])}
        for s, v in blocks.items()
    }
    alone, off, on = (statistics.median(blocks[s]["p99"]) for s in ("alone", "off", "on"))
    added_off, added_on = off - alone, on - alone
    out["p99_added_ms"] = {"off": round(added_off, 1), "on": round(added_on, 1)}
    out["p99_added_kept_share"] = round(added_on / added_off, 3) if added_off > 0 else None
    return out


def table(data: dict[str, Any]) -> str:
    """The page's table from this benchmark's JSON (pure)."""
    s = data["summary"]
    names = {"alone": "production alone", "off": "+ shadow 100% + judge, priority off",
             "on": "+ shadow 100% + judge, priority on"}  # fmt: skip
    rows = ["| setting | TTFT p50 | TTFT p99 |", "|---|---|---|"]
    for k, label in names.items():
        p50, p99 = s[k]["ttft_p50_ms"], s[k]["ttft_p99_ms"]
        rows.append(f"| {label} | {p50[0]:.0f} ms [{p50[1]:.0f}–{p50[2]:.0f}] "
                    f"| {p99[0]:.0f} ms [{p99[1]:.0f}–{p99[2]:.0f}] |")  # fmt: skip
    kept = s["p99_added_kept_share"]
    rows.append(
        f"\nProduction at concurrency {data['concurrency']}, {OUTPUT_LEN} output tokens, "
        f"on one simulated H100 replica with {data['slots']} sequence slots; a judge load "
        f"at concurrency {data.get('background', data['concurrency'])}; "
        f"{data['rounds']} rounds, medians [min–max]. Background traffic adds "
        f"{s['p99_added_ms']['off']:.0f} ms to production's p99 with priority off and "
        f"{s['p99_added_ms']['on']:.0f} ms with it on"
        + (f" ({kept:.0%} kept)." if kept is not None else ".")
    )
    return "\n".join(rows)


def _round(stack: Stack, keys: tuple[str, str], args: argparse.Namespace, r: int,
           blocks: dict[str, dict[str, list[float]]]) -> None:  # fmt: skip
    app_key, judge_key = keys
    for side in ("on", "off") if r % 2 == 0 else ("off", "on"):
        _configure(stack, args.slots, priority_on=side == "on")
        stack.serve()
        settings = ["alone", side] if side == "on" else [side]
        for setting in settings:
            background = setting != "alone"
            done = stack.gavel(
                "swap", "set", "--shadow", "1" if background else "0", "--by", "bench",
                "--wait", "90",  # a replica redeployed under load confirms late
            )  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
            if background:
                with JudgeLoad(judge_key, args.background or args.concurrency):
                    ttfts = _production(app_key, args.concurrency, args.requests)
            else:
                ttfts = _production(app_key, args.concurrency, args.requests)
            b = blocks[setting]
            b["p50"].append(_pct(ttfts, 0.5))
            b["p99"].append(_pct(ttfts, 0.99))
            print(f"round {r} {setting}: production TTFT p50 {b['p50'][-1]} ms, "
                  f"p99 {b['p99'][-1]} ms ({len(ttfts)} ok)", flush=True)  # fmt: skip


def main() -> None:
    """Deploy, alternate the three settings in blocks, print and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--slots", type=int, default=8, help="the app engine's max_num_seqs")
    parser.add_argument("--requests", type=int, default=96, help="production requests per block")
    parser.add_argument(
        "--background",
        type=int,
        default=None,
        help="judge load's concurrency (default: --concurrency)",
    )
    parser.add_argument("--out", default="reports/bench/priority.json")
    args = parser.parse_args()
    blocks: dict[str, dict[str, list[float]]] = {
        s: {"p50": [], "p99": []} for s in ("alone", "off", "on")
    }
    with scratch_database("gavel_prio") as store_url:
        stack = Stack(Path(tempfile.mkdtemp(prefix="gavel-priority-")), store_url)
        _configure(stack, args.slots, priority_on=True)
        start_nodes()
        try:
            stack.serve()
            keys = (stack.key("--scopes", "infer"), stack.key("--scopes", "judge"))
            _production(keys[0], args.concurrency, args.concurrency * 2)  # warm-up
            for r in range(args.rounds):
                _round(stack, keys, args, r, blocks)
        finally:
            stack.gavel("down")
            stop_nodes()
    report = {"concurrency": args.concurrency, "slots": args.slots, "rounds": args.rounds,
              "background": args.background or args.concurrency,
              "requests_per_block": args.requests, "output_len": OUTPUT_LEN,
              "blocks": blocks, "summary": summarize(blocks)}  # fmt: skip
    write_report(args.out, report, config="two nodes, simulated engines, priority scheduling")
    print(json.dumps(report["summary"], indent=2))


if __name__ == "__main__":
    main()
