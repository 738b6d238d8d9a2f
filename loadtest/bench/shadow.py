"""The shadow's effect on production latency (issue 20): production TTFT with the swap's
shadow on and off, alternated in blocks on one stack.

On the two-node cluster of ``loadtest.bench._cluster`` (simulated engines at GPU rates),
with a swap whose candidate is a variant of the app model's engine (another system
prompt). Each round runs one Locust block with ``gavel swap set --shadow 1`` and one with
``--shadow 0``, in alternating order; each block sends app traffic at a fixed
concurrency. Reported per side: TTFT p50 and p99 (median over rounds, with min-max), the
shadows sent and dropped, and one ``gavel swap report --no-judge`` over the day.

``python -m loadtest.bench.shadow [--rounds 4] --out reports/bench/shadow.json``
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from loadtest.bench._cluster import Stack, scratch_database, start_nodes, stop_nodes
from serving.bench.provenance import write_report

SWAP = {
    "production": "app-model",
    "candidate": "app-brief",
    "variant": {"model_id": "app-brief", "base": "app-model",
                "system_prompt": "Answer briefly.", "max_tokens": 32},
    "checks": [{"name": "three_words", "assertion": "min_words", "min": 3}],
}  # fmt: skip
CONCURRENCY = 16
OUTPUT_LEN = 64


def _block(key: str, n: int) -> list[float]:
    """One block of app traffic; the TTFTs (s) of the requests that succeeded."""
    from loadtest._models import SweepSpec
    from loadtest._runner import run_cell

    spec = SweepSpec(base_url="http://127.0.0.1:8000", model="app-model",
                     output_lens=[OUTPUT_LEN], concurrency=[CONCURRENCY],
                     requests_per_cell=n, request_timeout_s=60)  # fmt: skip
    records, _ = run_cell(spec, prompt=" ".join(["word"] * 200), output_len=OUTPUT_LEN,
                          concurrency=CONCURRENCY, api_key=key)  # fmt: skip
    return [r.ttft_s for r in records if r.ok and r.ttft_s is not None]


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 1)


def _shadow_counts() -> tuple[float, float]:
    page = httpx.get("http://127.0.0.1:8000/metrics", timeout=10).text
    sent = sum(float(v) for v in re.findall(
        r'^gavel_requests_total\{[^}]*source="shadow"[^}]*\} (\S+)$', page, re.M))  # fmt: skip
    dropped = sum(float(v) for v in re.findall(
        r"^gavel_shadow_dropped_requests_total\{[^}]*\} (\S+)$", page, re.M))  # fmt: skip
    return sent, dropped


def _spread(xs: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(xs), 1), "min": min(xs), "max": max(xs)}


def main() -> None:
    """Deploy with a swap, alternate shadow on/off blocks, print and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=160, help="requests per block")
    parser.add_argument("--out", default="reports/bench/shadow.json")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="gavel-shadow-"))
    sides: dict[str, dict[str, list[float]]] = {
        s: {"p50": [], "p99": [], "sent": [], "dropped": []} for s in ("on", "off")
    }
    report: dict[str, Any] = {}
    with scratch_database("gavel_sh") as store_url:
        stack = Stack(folder, store_url)
        cfg = yaml.safe_load(stack.config.read_text())
        cfg["swap"] = SWAP
        stack.config.write_text(yaml.safe_dump(cfg))
        start_nodes()
        try:
            stack.serve()
            key = stack.key()
            _block(key, CONCURRENCY * 2)  # warm-up
            for r in range(args.rounds):
                for side in ("on", "off") if r % 2 == 0 else ("off", "on"):
                    rate = "1" if side == "on" else "0"
                    done = stack.gavel("swap", "set", "--shadow", rate, "--by", "bench")
                    assert done.returncode == 0, done.stdout + done.stderr
                    before = _shadow_counts()
                    ttfts = _block(key, args.requests)
                    time.sleep(2)  # the last shadows finish and are counted
                    after = _shadow_counts()
                    s = sides[side]
                    s["p50"].append(_pct(ttfts, 0.5))
                    s["p99"].append(_pct(ttfts, 0.99))
                    s["sent"].append(after[0] - before[0])
                    s["dropped"].append(after[1] - before[1])
                    print(f"round {r} shadow {side}: p50 {s['p50'][-1]} ms, p99 "
                          f"{s['p99'][-1]} ms, shadows {s['sent'][-1]:.0f}, dropped "
                          f"{s['dropped'][-1]:.0f}", flush=True)  # fmt: skip
            t0 = time.perf_counter()
            rep = stack.gavel("swap", "report", "--no-judge", "--out", str(folder / "swap"))
            report["swap_report_no_judge_s"] = round(time.perf_counter() - t0, 2)
            report["swap_report_tail"] = rep.stdout[-800:]
        finally:
            stack.gavel("down")
            stop_nodes()
    report |= {
        "concurrency": CONCURRENCY, "output_len": OUTPUT_LEN, "rounds": args.rounds,
        "requests_per_block": args.requests,
        "ttft_p50_ms": {k: _spread(v["p50"]) for k, v in sides.items()},
        "ttft_p99_ms": {k: _spread(v["p99"]) for k, v in sides.items()},
        "shadows_sent_per_block": _spread(sides["on"]["sent"]),
        "shadows_dropped_per_block": _spread(sides["on"]["dropped"]),
    }  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_report(out, report, config="simulated engines")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
