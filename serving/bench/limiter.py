"""The rate limiter's capacity: admissions per second through a Serve handle, and the
latency one admission adds to a request (its round trip), at several concurrencies.

The ``RateLimiter`` deployment alone on a local Ray (started if none runs); callers
are asyncio tasks in this process, each admitting and settling in a loop for a key with
rpm and tpm limits far away (no leases: every call is the per-request path). Two
limiters side by side, alternated in blocks: with the journal in Ray's GCS (as deployed)
and without one (what the journal costs). The JSON holds every round.

``python -m serving.bench.limiter [--rounds 3] [--seconds 5] --out reports/bench/limiter.json``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from typing import Any

from serving.bench.provenance import write_report

CONCURRENCY = (1, 8, 64)


class _NoJournal:
    """A key-value store that keeps nothing: the limiter without its journal."""

    async def put(self, key: str, value: bytes) -> None:
        """Keep nothing."""

    def items(self, prefix: str) -> list[tuple[str, bytes]]:
        """Nothing was kept."""
        return []

    async def delete_prefix(self, prefix: str) -> None:
        """Nothing to delete."""


async def _block(handle: Any, concurrency: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def caller(i: int) -> None:
        key = f"bench-{i % 8}"
        while time.perf_counter() < stop:
            rid = uuid.uuid4().hex
            t0 = time.perf_counter()
            await handle.admit.remote(key, 10**9, 10**9, 300, rid, None)
            latencies.append(time.perf_counter() - t0)
            handle.settle.remote(rid, key, 120, None)

    t0 = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    wall = time.perf_counter() - t0
    latencies.sort()
    return {
        "concurrency": concurrency,
        "calls": 2 * len(latencies),
        "admissions_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
    }


async def _writes(handle: Any) -> float:
    """Journal writes per admission and settlement, over the whole run."""
    writes = await handle.journal_writes.remote()
    return float(writes)


def _spread(values: list[float]) -> list[float]:
    """Median, min and max."""
    return [statistics.median(values), min(values), max(values)]


def main() -> None:
    """Deploy the limiter, run the blocks, print and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--out", default="reports/bench/limiter.json")
    args = parser.parse_args()
    from ray import serve

    from serving import connect_ray
    from serving._stack import start_local_ray, stop_local_ray
    from serving.gateway._limits import RateLimiter

    started = False
    if not connect_ray(None):
        start_local_ray(8)
        started = connect_ray(None)
    try:
        handles = {
            "journal": serve.run(RateLimiter.bind(), name="limiter-bench", route_prefix=None),  # type: ignore[attr-defined]
            "no-journal": serve.run(
                RateLimiter.bind(journal=_NoJournal()),  # type: ignore[attr-defined]
                name="limiter-bench-nj",
                route_prefix=None,
            ),
        }
        runs = []
        for rnd in range(args.rounds):
            for c in CONCURRENCY:
                for system, handle in handles.items():
                    row = asyncio.run(_block(handle, c, args.seconds))
                    row |= {"round": rnd, "system": system}
                    print(json.dumps(row), flush=True)
                    runs.append(row)
        writes = asyncio.run(_writes(handles["journal"]))
        serve.delete("limiter-bench")
        serve.delete("limiter-bench-nj")
    finally:
        if started:
            stop_local_ray()
    summary: dict[str, Any] = {
        f"{system} c={c}": {
            f: _spread([r[f] for r in runs if r["concurrency"] == c and r["system"] == system])
            for f in ("admissions_per_s", "p50_ms", "p99_ms")
        }
        for c in CONCURRENCY
        for system in handles
    }
    calls = sum(r["calls"] for r in runs if r["system"] == "journal")
    summary["journal_writes_per_call"] = round(writes / max(1, calls), 3)
    report = {"runs": runs, "median": summary, "rounds": args.rounds, "seconds": args.seconds}
    write_report(args.out, report, config="RateLimiter alone, rpm/tpm far away, no leases")
    print(json.dumps(summary, indent=2))


def _cell(spread: list[float], unit: str = "", digits: int = 0) -> str:
    med, lo, hi = (f"{v:.{digits}f}" for v in spread)
    return f"{med}{unit} [{lo}–{hi}]"


def table(data: dict[str, Any]) -> str:
    """The page's table from this benchmark's JSON: medians [min–max] over the rounds
    per caller count, with and without the journal (pure)."""
    med = data["median"]
    rows = [
        "| callers | admissions/s, journal | no journal | round trip p50, journal "
        "| no journal | p99, journal |",
        "|---|---|---|---|---|---|",
    ]
    for c in CONCURRENCY:
        j, n = med[f"journal c={c}"], med[f"no-journal c={c}"]
        rows.append(
            f"| {c} | {_cell(j['admissions_per_s'])} | {_cell(n['admissions_per_s'])} "
            f"| {_cell(j['p50_ms'], ' ms', 1)} | {_cell(n['p50_ms'], ' ms', 1)} "
            f"| {j['p99_ms'][0]:.0f} ms |"
        )
    rounds = data.get("rounds", 3)
    rows.append(
        f"\n{rounds} rounds per concurrency, medians [min–max]; journal writes per call: "
        f"{med['journal_writes_per_call']}."
    )
    return "\n".join(rows)


if __name__ == "__main__":
    main()
