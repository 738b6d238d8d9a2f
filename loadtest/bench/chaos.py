"""Chaos under load: kill one part of a two-node Gavel at a time while Locust keeps 64
streams busy, and count what it cost (issue 19).

On the local two-node cluster of ``loadtest.bench._cluster`` (simulated engines, two
gateway replicas on different nodes, PostgreSQL), for each fault in turn: a gateway
replica, an app engine replica, the rate limiter, then the worker node (its raylet is
killed, and with it every actor on that node). Each request carries an ``X-Request-Id``,
so the report counts, per fault: requests that failed, 2xx answers missing from the store
(lost) or in it twice, and the recovery time (from the kill to the start of the last
request that failed).

``python -m loadtest.bench.chaos --out reports/bench/chaos.json``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from loadtest.bench._cluster import (
    HEAD_PORT,
    ROOT,
    Stack,
    scratch_database,
    start_nodes,
    stop_nodes,
    worker_raylet_pid,
)
from serving.bench.provenance import write_report

FAULTS = ("gateway_replica", "engine_replica", "limiter", "worker_node")
_CLASS = {
    "gateway_replica": "GavelIngress",
    "engine_replica": "LLMServer:app-model",
    "limiter": "RateLimiter",
}


def kill_actor(role: str) -> str:
    """Kill one live actor of ``role`` (run in a process of its own: a Ray driver)."""
    import logging

    import ray
    from ray.util.state import list_actors

    ray.init(address=f"127.0.0.1:{HEAD_PORT}", logging_level=logging.ERROR)
    alive = list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
    name = next(str(a.name) for a in alive if a.class_name.endswith(_CLASS[role]))
    ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
    return name


def _fault(role: str) -> str:
    if role == "worker_node":
        pid = worker_raylet_pid()
        if pid is None:
            return "no worker raylet found"
        os.kill(pid, signal.SIGKILL)
        return f"raylet {pid}"
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest.bench.chaos", "--kill", role],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 else proc.stderr[-300:]


def run_fault(stack: Stack, key: str, role: str, *, kill_at_s: float = 5.0) -> dict[str, Any]:
    """One cell of load with one fault in it; what it cost."""
    from loadtest._models import SweepSpec
    from loadtest._runner import run_cell

    prefix = f"chaos-{role}-{uuid.uuid4().hex[:6]}-"
    spec = SweepSpec(
        base_url="http://127.0.0.1:8000",
        model="app-model",
        output_lens=[64],
        concurrency=[64],
        requests_per_cell=640,
        request_timeout_s=60,
    )
    killed: dict[str, Any] = {}

    def fault() -> None:
        killed["at"] = time.perf_counter()
        killed["what"] = _fault(role)

    import gevent  # the load generator's loop: the fault runs as one of its greenlets

    t0 = time.perf_counter()
    timer = gevent.spawn_later(kill_at_s, fault)
    records, duration = run_cell(
        spec,
        prompt=" ".join(["word"] * 100),
        output_len=64,
        concurrency=64,
        api_key=key,
        request_id_prefix=prefix,
    )
    timer.join()
    served = {f"{prefix}{r.index}" for r in records if r.ok}
    failed = [r for r in records if not r.ok]
    deadline = time.monotonic() + 60
    got = stack.captured(prefix)
    while not served <= set(got) and time.monotonic() < deadline:
        time.sleep(1)
        got = stack.captured(prefix)
    kill_s = killed.get("at", t0) - t0
    last_fail = max((r.start_s for r in failed), default=None)
    return {
        "fault": role,
        "killed": killed.get("what"),
        "requests": len(records),
        "served_2xx": len(served),
        "failed": len(failed),
        "failure_kinds": sorted({(r.error or "")[:80] for r in failed})[:5],
        "lost_2xx": len(served - set(got)),
        "captured_twice": sum(1 for v in got.values() if v > 1),
        "recovery_s": round(max(last_fail - kill_s, 0.0), 1) if last_fail is not None else 0.0,
        "duration_s": round(duration, 1),
    }


LABELS = {
    "gateway_replica": "a gateway replica (`ray.kill`)",
    "engine_replica": "an app engine replica",
    "limiter": "the rate limiter",
    "worker_node": "the worker node (its raylet, `SIGKILL`)",
}


def table(data: dict[str, Any]) -> str:
    """The page's table from this benchmark's JSON (pure)."""
    rows = ["| fault | failed of requests | 2xx lost | 2xx twice | recovery | what failed |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    for f in data["faults"]:
        kinds = "; ".join(k.replace("|", "/") for k in f["failure_kinds"]) or "nothing"
        rows.append(f"| {LABELS.get(f['fault'], f['fault'])} | {f['failed']} of "
                    f"{f['requests']} | {f['lost_2xx']} | {f['captured_twice']} "
                    f"| {f['recovery_s']:.1f} s | {kinds} |")  # fmt: skip
    rows.append(f"\nLocust at {data['concurrency']} streams of {data['output_len']} tokens; one "
                "fault 5 s into each cell; faults in turn, 15 s apart.")  # fmt: skip
    return "\n".join(rows)


def main() -> None:
    """Run every fault in turn; print and write the report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="reports/bench/chaos.json")
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated, in order")
    parser.add_argument("--kill", choices=sorted(_CLASS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kill:
        print(kill_actor(args.kill))
        return
    results = []
    with scratch_database("gavel_chaos") as store_url:
        stack = Stack(Path(tempfile.mkdtemp(prefix="gavel-chaos-")), store_url)
        start_nodes()
        try:
            stack.serve()
            key = stack.key("--rpm", "1000000", "--tpm", "1000000000")
            for role in args.faults.split(","):
                result = run_fault(stack, key, role)
                print(json.dumps(result), flush=True)
                results.append(result)
                time.sleep(15)  # Serve replaces what was killed
        finally:
            stack.gavel("down")
            stop_nodes()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_report(out, {"faults": results, "concurrency": 64, "output_len": 64},
                 config="two nodes, simulated engines")  # fmt: skip


if __name__ == "__main__":
    main()
