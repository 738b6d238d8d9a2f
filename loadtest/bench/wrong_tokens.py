"""Wrong-token flood: does a flood of wrong bearer tokens move legitimate traffic's
latency, and does it reach the store?

    python -m loadtest.bench.wrong_tokens [--pairs 3] [--flood-rps 200] [--out ...]

Against the running stack (``gavel serve --detach``). Blocks alternate (quiet, flood,
quiet, flood, ...): each block runs one Locust cell of legitimate streaming chats
(``--concurrency`` users, ``--requests`` requests of 32 output tokens); during flood
blocks a second process sends well-formed but wrong ``gvl_`` tokens at ``--flood-rps``
from one client address. Reported per pair: the legitimate p50 and p99 TTFT, quiet and
flooded, and what the flood got (401: looked up once, then from the negative cache;
429: the client's backoff, no lookup at all), from the gateway's own counters.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from loadtest._models import SweepSpec
from loadtest._runner import preflight, run_cell
from loadtest.bench._harness import ROOT, create_key
from loadtest.metrics import percentile
from serving import load_config
from serving.bench.provenance import write_report

FLOOD = """
import asyncio, secrets, sys, time, httpx
url, rps, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
async def main():
    sent = 0
    codes = {}
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as c:
        async def one():
            tok = "gvl_" + secrets.token_urlsafe(32)
            try:
                r = await c.post(url, json={"model": "app-model", "messages": []},
                                 headers={"Authorization": "Bearer " + tok})
                codes[r.status_code] = codes.get(r.status_code, 0) + 1
            except httpx.HTTPError:
                codes["error"] = codes.get("error", 0) + 1
        t0 = time.monotonic(); tasks = []
        while time.monotonic() - t0 < seconds:
            tasks.append(asyncio.create_task(one())); sent += 1
            await asyncio.sleep(max(0.0, t0 + sent / rps - time.monotonic()))
        await asyncio.gather(*tasks)
    print(codes)
asyncio.run(main())
"""


def _rejected(metrics_url: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in httpx.get(metrics_url, timeout=10).text.splitlines():
        if line.startswith("gavel_rejected_requests_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            out[reason] = out.get(reason, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def block(spec: SweepSpec, prompt: str, key: str, *, flood_rps: float | None,
          concurrency: int) -> dict[str, Any]:  # fmt: skip
    """One block of legitimate load, with or without a flood beside it."""
    flood = None
    if flood_rps:
        url = spec.base_url.rstrip("/") + "/v1/chat/completions"
        flood = subprocess.Popen(
            [sys.executable, "-c", FLOOD, url, str(flood_rps), "600"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(1.0)
    try:
        records, wall = run_cell(spec, prompt=prompt, output_len=32, concurrency=concurrency,
                                 api_key=key)  # fmt: skip
    finally:
        if flood is not None:
            flood.terminate()
            flood.wait(timeout=30)
    ttft = [r.ttft_s for r in records if r.ok and r.ttft_s is not None]
    return {
        "flood_rps": flood_rps or 0,
        "ok": sum(r.ok for r in records),
        "failed": sum(not r.ok for r in records),
        "ttft_p50_ms": 1000 * (percentile(ttft, 0.5) or 0),
        "ttft_p99_ms": 1000 * (percentile(ttft, 0.99) or 0),
        "wall_s": wall,
    }


def _spread(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def summarize(pairs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per flood rate: the legitimate TTFT added (flood - quiet, p99 and p50) and the
    share of wrong tokens that were looked up in the store (401) rather than turned away
    by the client's backoff (429), median [min, max] over the pairs (pure)."""
    out: dict[str, dict[str, Any]] = {}
    for rate in sorted({p["flood"]["flood_rps"] for p in pairs}):
        mine = [p for p in pairs if p["flood"]["flood_rps"] == rate]
        looked = [p["flood"]["rejected"].get("invalid_key", 0.0) for p in mine]
        backed = [p["flood"]["rejected"].get("wrong_key_backoff", 0.0) for p in mine]
        out[f"{rate:g}"] = {
            "p99_ttft_delta_ms": _spread([p["flood"]["ttft_p99_ms"] - p["quiet"]["ttft_p99_ms"]
                                          for p in mine]),
            "p50_ttft_delta_ms": _spread([p["flood"]["ttft_p50_ms"] - p["quiet"]["ttft_p50_ms"]
                                          for p in mine]),
            "looked_up_per_block": statistics.median(looked),
            "wrong_tokens_per_block": statistics.median(a + b for a, b in zip(looked, backed,
                                                                               strict=True)),
        }  # fmt: skip
    return out


def table(data: dict[str, Any]) -> str:
    """The page's table from this benchmark's JSON (pure)."""

    def cell(s: dict[str, float]) -> str:
        return f"{s['median']:+.0f} [{s['min']:+.0f}, {s['max']:+.0f}] ms"

    rows = ["| flood | p99 TTFT added | p50 TTFT added | wrong tokens looked up in the store |",
            "|---|---|---|---|"]  # fmt: skip
    for rate, s in data["summary"].items():
        rows.append(f"| {rate} req/s | {cell(s['p99_ttft_delta_ms'])} "
                    f"| {cell(s['p50_ttft_delta_ms'])} | {s['looked_up_per_block']:.0f} of "
                    f"{s['wrong_tokens_per_block']:.0f} per block |")  # fmt: skip
    pairs = data["pair_count"]
    rows.append(f"\n{pairs} pairs (quiet, flooded) per rate, rates alternated; legitimate load: "
                f"{data['concurrency']} users, {data['requests']} streamed requests of 32 "
                "tokens per block; medians [min, max].")  # fmt: skip
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    """Run the alternating blocks; print and write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--config", default=str(ROOT / "config/cpu.yaml"))
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--flood-rps", default="50,200", help="flood rates, comma-separated")
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--requests", type=int, default=12)
    ap.add_argument("--out", type=Path, default=ROOT / "reports/bench/wrong_tokens.json")
    args = ap.parse_args(argv)
    rates = [float(r) for r in str(args.flood_rps).split(",") if r.strip()]
    base = load_config(args.config).http.base_url.removesuffix("/v1")
    spec = SweepSpec(base_url=base, model="app-model", output_lens=[32],
                     concurrency=[args.concurrency], requests_per_cell=args.requests,
                     prompt_tokens=64)  # fmt: skip
    key = create_key(args.config, "bench-wrongtok", ["infer"])
    prompt = preflight(spec, key)
    metrics_url = base + "/metrics"
    pairs = []
    for i in range(args.pairs):
        for rate in rates[i % len(rates) :] + rates[: i % len(rates)]:
            before = _rejected(metrics_url)
            quiet = block(spec, prompt, key, flood_rps=None, concurrency=args.concurrency)
            flooded = block(spec, prompt, key, flood_rps=rate, concurrency=args.concurrency)
            after = _rejected(metrics_url)
            flooded["rejected"] = {k: after.get(k, 0) - before.get(k, 0) for k in after}
            pairs.append({"quiet": quiet, "flood": flooded})
            print(f"pair {i + 1} at {rate:g} req/s: p50 TTFT {quiet['ttft_p50_ms']:.0f} -> "
                  f"{flooded['ttft_p50_ms']:.0f} ms, p99 {quiet['ttft_p99_ms']:.0f} -> "
                  f"{flooded['ttft_p99_ms']:.0f} ms; flood rejected {flooded['rejected']}",
                  flush=True)  # fmt: skip
    summary = summarize(pairs)
    print(json.dumps(summary, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    options = {k: v for k, v in vars(args).items() if k != "out"}
    report = {**options, "pair_count": args.pairs, "pairs": pairs, "summary": summary}
    write_report(args.out, report, config=args.config)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
