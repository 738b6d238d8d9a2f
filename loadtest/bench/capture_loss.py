"""Measure what a ``kill -9`` of the ingress replica loses of captured traffic.

Sends open-loop traffic at a fixed rate to the running stack, SIGKILLs the gateway's
ingress replica midway (Serve restarts it), and afterwards counts the requests whose
response the client received but whose record never reached the store. The design
bound is what sat in memory: about ``rate x flush_interval_s`` records.

    python -m loadtest.bench.capture_loss [--rate 20] [--seconds 20] [--kill-at 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time

import httpx

from loadtest.bench._harness import ROOT, create_key
from serving import load_config
from serving.bench.provenance import write_report
from serving.store import Store, resolve_url


def ingress_pids() -> list[int]:
    """Pids of the gateway's ingress replica processes on this node."""
    out = subprocess.run(
        ["pgrep", "-f", "ServeReplica:gavel:GavelIngress"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return [int(p) for p in out.split()]


async def traffic(
    base: str,
    key: str,
    rate: float,
    seconds: float,
    kill_at: float,
) -> tuple[dict[str, float], float, int]:
    """Send requests; returns ({response id: completion time}, kill time, failures)."""
    done: dict[str, float] = {}
    failures = 0
    t0 = time.monotonic()
    killed_at = -1.0
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": "app-model", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:

        async def one() -> None:
            nonlocal failures
            try:
                r = await client.post("/chat/completions", json=body, headers=headers)
                if r.status_code == 200:
                    done[r.json()["id"]] = time.monotonic() - t0
                else:
                    failures += 1
            except httpx.HTTPError:
                failures += 1

        tasks = []
        i = 0
        while (now := time.monotonic() - t0) < seconds:
            if killed_at < 0 and now >= kill_at:
                for pid in ingress_pids():
                    os.kill(pid, signal.SIGKILL)
                killed_at = now
            tasks.append(asyncio.create_task(one()))
            i += 1
            await asyncio.sleep(max(0.0, i / rate - (time.monotonic() - t0)))
        await asyncio.gather(*tasks)
    return done, killed_at, failures


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print the loss."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--config", default="config/cpu.yaml")
    p.add_argument("--rate", type=float, default=20)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--kill-at", type=float, default=10)
    p.add_argument("--out", default="reports/bench_capture_loss.json")
    args = p.parse_args(argv)
    config = load_config(args.config)
    key = create_key(args.config, "lossbench", ["infer"])
    if not ingress_pids():
        print("no ingress replica on this node; start the stack with `gavel serve --detach`")
        return 1
    done, killed_at, failures = asyncio.run(
        traffic(config.http.base_url, key, args.rate, args.seconds, args.kill_at)
    )
    time.sleep(15)  # let the restarted replica take traffic and flush
    store = Store(resolve_url(config.gateway.store.url, base_dir=ROOT))
    stored = {r.request_id for r in store.traffic_by_ids(done)}
    missing = sorted(done[i] for i in done if i not in stored)
    flush = config.gateway.capture.flush_interval_s
    report = {
        "rate_rps": args.rate,
        "flush_interval_s": flush,
        "killed_at_s": killed_at,
        "completed": len(done),
        "failed_or_refused": failures,
        "missing_from_store": len(missing),
        "missing_completed_within_s_before_kill": [round(killed_at - t, 3) for t in missing],
        "design_bound_records": args.rate * flush,
    }
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    write_report(out, report, config=args.config)
    print(f"rate {args.rate}/s, flush every {flush}s; SIGKILL of the ingress at {killed_at:.1f}s")
    print(
        f"completed {len(done)}, failed during the restart {failures}, "
        f"missing from the store {len(missing)} (design bound ~{args.rate * flush:.0f})"
    )
    if missing:
        ages = ", ".join(f"{killed_at - t:.2f}s" for t in missing)
        print(f"the missing ones completed this long before the kill: {ages}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
