"""Capacity benchmark: three systems on the same simulated engine (issue 19).

- ``direct``: the simulated engine behind a minimal single-process OpenAI server (the floor);
- ``stock``: stock Ray Serve LLM (``build_openai_app``, no gateway);
- ``gavel``: Gavel's gateway, with a limited key and capture to PostgreSQL.

Cells: concurrency x stream batching (0, 50 ms) x ingress replicas (1, 2). Within a
round, each concurrency is a block that runs every system once, in an order that rotates
between rounds; the rounds give each figure's min-max spread. CPU of the serving layer
is every Ray process but the engine replicas (``loadtest.bench._cpu``), per 1,000 output
tokens/s. The load generator (Locust, in this process) runs on the same two cores.

``python -m loadtest.bench.scale [--rounds 2] [--quick] --out reports/bench/scale.json``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from loadtest.bench._cpu import classify, cpu_delta, snapshot
from loadtest.bench._harness import ROOT
from loadtest.bench._scale_report import GAVEL_MODES, plot, summarize, table
from serving.bench.provenance import write_report

CONCURRENCY = (1, 16, 64, 256)
OUTPUT_LEN = 64
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DIRECT_PORT = 8100
__all__ = ["CONCURRENCY", "GAVEL_MODES", "bench_stack", "main", "summarize", "table"]


def _wait(url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not answer in {timeout_s:.0f} s")


def _cell(system: str, base_url: str, c: int, *, key: str | None, quick: bool) -> dict[str, Any]:
    from loadtest._models import SweepSpec
    from loadtest._runner import run_cell
    from loadtest.metrics import percentile

    n = max(8, c * (1 if quick else 2))
    spec = SweepSpec(
        base_url=base_url,
        model="app-model" if system != "direct" else "direct",
        output_lens=[OUTPUT_LEN],
        concurrency=[c],
        requests_per_cell=n,
        request_timeout_s=120,
    )
    prompt = " ".join(["word"] * 100)
    before = snapshot()
    records, duration = run_cell(
        spec, prompt=prompt, output_len=OUTPUT_LEN, concurrency=c, api_key=key
    )
    after = snapshot()
    ok = [r for r in records if r.ok]
    tokens = sum(r.output_tokens or 0 for r in ok)
    tok_s = tokens / duration if duration else 0.0
    serving = classify(after)["serving"]
    serving_cpu = cpu_delta(before, after, serving) / duration if duration else 0.0
    roles = {"proxy": "ProxyActor", "ingress": "Ingress", "limiter": "RateLimiter",
             "gateway_in_engine_replica": "GavelLLMServer"}  # fmt: skip
    split = {
        role: round(
            cpu_delta(before, after, {p for p in serving if marker in after[p].cmdline}) / duration,
            3,
        )
        if duration
        else 0.0
        for role, marker in roles.items()
    }
    ttfts = [r.ttft_s * 1000 for r in ok if r.ttft_s is not None]
    gaps = [g * 1000 for r in ok for g in r.gaps_s]
    return {
        "requests": len(records),
        "errors": len(records) - len(ok),
        "output_tok_s": round(tok_s, 1),
        "request_rps": round(len(ok) / duration, 2) if duration else 0.0,
        "ttft_p50_ms": percentile(ttfts, 50),
        "ttft_p99_ms": percentile(ttfts, 99),
        "itl_p50_ms": percentile(gaps, 50),
        "itl_p99_ms": percentile(gaps, 99),
        "serving_cores": round(serving_cpu, 3),
        "serving_cores_by_role": split,
        "serving_cores_per_1k_tok_s": round(serving_cpu / (tok_s / 1000), 3) if tok_s else None,
    }


def _deploy(replicas: int, store: str, spool: str, *extra: str) -> None:
    from loadtest.bench._scale_deploy import HAPROXY_ENV

    env = {**os.environ, **(HAPROXY_ENV if "--haproxy" in extra else {})}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest.bench._scale_deploy",
            "--replicas",
            str(replicas),
            "--store",
            store,
            "--spool",
            spool,
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env=env,
    )
    if proc.returncode != 0:
        raise SystemExit(f"deploy failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def _key(store: str) -> str:
    from serving import new_key
    from serving.store import Store

    plaintext, record = new_key(
        f"bench-{uuid.uuid4().hex[:6]}", ["infer"], rpm=10_000_000, tpm=2_000_000_000
    )
    s = Store(store)
    try:
        s.add_key(record)
    finally:
        s.close()
    return plaintext


@contextmanager
def bench_stack(*side: list[str]) -> Iterator[tuple[str, str]]:
    """A scratch PostgreSQL database and capture spool for the benchmark's stacks, with
    ``side`` processes (argv lists) started beside them; yields (store URL, spool). On
    exit: the side processes end, the local Ray stops, the database is dropped."""
    from sqlalchemy import create_engine, text

    db = f"gavel_bench_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {db}"))
    procs = [subprocess.Popen(argv, cwd=ROOT) for argv in side]
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + db, tempfile.mkdtemp(prefix="gavel-scale-spool-")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        _stop_ray()
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))


PHASES = (("proxy", 1), ("proxy", 2), ("haproxy", 1), ("haproxy", 2))
"""(path, ingress replicas): each a fresh Ray. ``proxy``: Serve's default proxy (``direct``
beside it, a process of its own); ``haproxy``: Ray's fastest path, HAProxy with direct
ingress and ``stock-direct`` (direct streaming)."""


def _systems(path: str, replicas: int) -> list[tuple[str, str, int]]:
    """(URL prefix, system, batching) of the systems one phase runs."""
    if path == "haproxy":
        out = [(f"gavel-b{b}", "gavel-haproxy", b) for b in (0, 50)]
        one = [(f"gavel-direct-b{b}", "gavel-direct", b) for b in (0, 50)]
        return ([("stock-direct", "stock-direct", 0), *one] if replicas == 1 else []) + out
    out = [(f"{s}-b{b}", s, b) for s in ("stock", "gavel") for b in (0, 50)]
    return ([("direct", "direct", 0)] if replicas == 1 else []) + out


def _profile(system: str, prefix: str, key: str, quick: bool) -> dict[str, Any]:
    """The Gavel ingress of ``prefix`` profiled by py-spy through one c=64 cell (not
    counted among the figures: sampling costs the process time)."""
    from loadtest.bench import _pyspy

    cls = "GavelLLMServer" if system == "gavel-direct" else "GavelIngress"
    (pid,) = [p.pid for p in snapshot().values()
              if f"ServeReplica:{prefix}:{cls}" in p.cmdline][:1]  # fmt: skip
    out = Path(tempfile.mkdtemp(prefix="gavel-pyspy-")) / "stacks.txt"
    spy = _pyspy.start(pid, 12, out)
    while spy.poll() is None:
        _cell(system, f"http://127.0.0.1:8000/{prefix}", 64, key=key, quick=quick)
    return _pyspy.top_entries(out.read_text() if out.exists() else "")


def _phase(phase: tuple[str, int], rnd: int, ctx: dict[str, Any]) -> None:
    """One phase of one round on a fresh Ray: deploy, then each concurrency as a block
    running every system once, in an order that rotates between rounds."""
    path, replicas = phase
    print(f"round {rnd}: {path}, {replicas} ingress replica(s)", flush=True)
    _stop_ray()
    _deploy(replicas, ctx["store"], ctx["spool"], *(["--haproxy"] if path == "haproxy" else []))
    systems = _systems(path, replicas)
    for c in ctx["concurrency"]:
        order = systems[rnd % len(systems) :] + systems[: rnd % len(systems)]
        for prefix, system, b in order:
            url = (f"http://127.0.0.1:{DIRECT_PORT}" if system == "direct"
                   else f"http://127.0.0.1:8000/{prefix}")  # fmt: skip
            key = ctx["key"] if system.startswith("gavel") else None
            cell = _cell(system, url, c, key=key, quick=ctx["quick"])
            cell.update(system=system, concurrency=c, stream_batching_ms=b,
                        ingress_replicas=replicas, round=rnd)  # fmt: skip
            ctx["runs"].append(cell)
            print(json.dumps(cell), flush=True)
    if rnd == 0 and replicas == 1 and ctx["profile"]:
        profiled = [("gavel-haproxy", "gavel-b50"), ("gavel-direct", "gavel-direct-b50")]
        for system, prefix in profiled if path == "haproxy" else [("gavel", "gavel-b50")]:
            ctx["profiles"][system] = _profile(system, prefix, ctx["key"], ctx["quick"])
            print(json.dumps({system: ctx["profiles"][system]["inclusive"][:5]}), flush=True)


def _stop_ray() -> None:
    from serving._stack import stop_local_ray

    stop_local_ray()  # HAProxy too: `ray stop` leaves it on port 8000


def main() -> None:
    """Run the benchmark; print each cell and write the JSON and the PNG."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="reports/bench/scale.json")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="concurrency up to 64, fewer requests")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles")
    parser.add_argument("--path", choices=("proxy", "haproxy"), help="run one path's phases only")
    args = parser.parse_args()
    direct = [sys.executable, "-m", "loadtest.bench.sim_direct", "--port", str(DIRECT_PORT)]
    ctx: dict[str, Any] = {
        "concurrency": CONCURRENCY[:3] if args.quick else CONCURRENCY,
        "quick": args.quick,
        "runs": [],
        "profile": not args.no_profile,
        "profiles": {},
    }
    with bench_stack(direct) as (store, spool):
        _wait(f"http://127.0.0.1:{DIRECT_PORT}/health")
        ctx.update(store=store, spool=spool, key=_key(store))
        for rnd in range(args.rounds):
            for phase in PHASES if rnd % 2 == 0 else PHASES[::-1]:
                if args.path in (None, phase[0]):
                    _phase(phase, rnd, ctx)
    cells, summary = summarize(ctx["runs"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"cells": cells, "summary": summary, "runs": ctx["runs"], "output_len": OUTPUT_LEN,
              "profile": "llama-3.1-8b-h100", "hot_path_profile": ctx["profiles"]}  # fmt: skip
    write_report(out, report, config="simulated llama-3.1-8b-h100 engines")
    plot(cells, out.with_suffix(".png"))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
