"""Overhead benchmark: the Gavel stack against a bare vLLM OpenAI server, same model,
same engine settings, same load, side by side in alternating blocks.

    python -m loadtest.bench.overhead [--blocks 3] [--concurrency 1,4] [--out ...]

Both servers stay up for the whole run. For each concurrency, blocks alternate
(bare, Gavel, bare, Gavel, ...); each block runs vLLM's own serving benchmark
(``vllm.benchmarks.serve``: random 128-token prompts, 128 output tokens, ``ignore_eos``).
Each pair of blocks gives a throughput ratio (Gavel / bare) and TTFT/TPOT differences;
the report gives their median with the min-max over pairs, so a result carries its own
spread. During Gavel's blocks the CPU seconds of every Ray process outside the engine
(proxy, ingress, limiter, controller, daemons) are read from ``/proc`` and divided by the
output tokens; from that, the cores the serving layer needs per replica at the GPU
config's ``assumed_output_tok_s`` are projected.

The Gavel side serves the app model alone, with auth, a per-key limit (high enough not
to refuse) and capture to SQLite all on. The bare server gets the app engine's
arguments, its environment (threads, KV cache), and Ray's CPU executor (``mp``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from loadtest.bench._cpu import classify, cpu_delta, snapshot, tree_cpu
from loadtest.bench._harness import ROOT, create_key, gavel, vllm_bench
from serving import StackConfig, load_config
from serving.bench.provenance import write_report

BARE_PORT = 8100
INPUT_LEN = OUTPUT_LEN = 128
METRICS = ("output_throughput", "median_ttft_ms", "median_tpot_ms", "median_e2el_ms")
TARGETS = {"throughput_ratio_min": 0.97, "median_ttft_diff_ms_max": 10.0, "tpot_ratio_max": 1.03}


def _wait_models(base_url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/health", timeout=3).status_code == 200:
                return
        time.sleep(2)
    raise RuntimeError(f"{base_url} not ready after {timeout_s:.0f} s")


def bare_settings(config: StackConfig) -> tuple[list[str], dict[str, str]]:
    """The bare server's arguments and environment: the app engine's, with Ray's CPU
    executor (``mp``), vLLM's default stream interval (1) and stats logging on, as Ray
    Serve LLM runs it."""
    app = config.model("app")
    e = app.engine
    args = ["--dtype", e.dtype, "--distributed-executor-backend", "mp", "--stream-interval", "1"]
    if e.max_model_len:
        args += ["--max-model-len", str(e.max_model_len)]
    if e.enforce_eager:
        args.append("--enforce-eager")
    if e.max_num_seqs:
        args += ["--max-num-seqs", str(e.max_num_seqs)]
    return args, dict(app.env)


@contextlib.contextmanager
def bare_vllm(config: StackConfig, log: Path) -> Iterator[tuple[str, int]]:
    """A bare ``vllm.entrypoints.openai.api_server``; yields its URL and pid."""
    app = config.model("app")
    args, env = bare_settings(config)
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
           "--model", str(ROOT / str(app.source.path)), "--served-model-name", app.model_id,
           "--host", "127.0.0.1", "--port", str(BARE_PORT), *args]  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{BARE_PORT}"
    try:
        _wait_models(base, 600, proc)
        yield base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def gavel_stack(config: StackConfig, work: Path) -> Iterator[tuple[str, str]]:
    """The Gavel stack serving the app model alone, gateway on; yields URL and API key."""
    cfg = config.model_copy(update={"models": [config.model("app")]})
    path = work / "bench-stack.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    key = create_key(path, "bench", ["infer"], rpm=100_000, tpm=100_000_000)
    with (work / "bench-gavel.log").open("w") as out:
        rc = subprocess.run(
            [str(Path(sys.executable).parent / "gavel"), "serve", "--config", str(path),
             "--detach"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=False,
        ).returncode  # fmt: skip
    try:
        if rc != 0:
            raise RuntimeError(f"gavel serve failed; see {work / 'bench-gavel.log'}")
        yield cfg.http.base_url.removesuffix("/v1"), key
    finally:
        gavel("down")


# --- pure statistics ----------------------------------------------------------------


def spread(values: list[float]) -> dict[str, float]:
    """Median with min and max."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def pair_stats(bare: dict[str, Any], gavel: dict[str, Any]) -> dict[str, float]:
    """One pair of blocks: throughput ratio, TTFT difference (ms), TPOT ratio."""
    return {  # float(): vLLM's figures may be numpy scalars, which JSON refuses
        "throughput_ratio": float(gavel["output_throughput"] / bare["output_throughput"]),
        "median_ttft_diff_ms": float(gavel["median_ttft_ms"] - bare["median_ttft_ms"]),
        "median_tpot_ratio": float(gavel["median_tpot_ms"] / bare["median_tpot_ms"]),
    }


def summarize(pairs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Each figure's median and min-max over the pairs of blocks."""
    return {k: spread([p[k] for p in pairs]) for k in pairs[0]}


def meets(summary: dict[str, dict[str, float]]) -> dict[str, bool]:
    """The issue's targets, on the medians."""
    return {
        "throughput_ratio": summary["throughput_ratio"]["median"]
        >= TARGETS["throughput_ratio_min"],
        "median_ttft_diff_ms": summary["median_ttft_diff_ms"]["median"]
        <= TARGETS["median_ttft_diff_ms_max"],
        "median_tpot_ratio": summary["median_tpot_ratio"]["median"] <= TARGETS["tpot_ratio_max"],
    }


def table(data: dict[str, Any]) -> str:
    """The page's table from this benchmark's JSON (pure)."""

    def cell(s: dict[str, float], fmt: str) -> str:
        return f"{fmt.format(s['median'])} [{fmt.format(s['min'])}, {fmt.format(s['max'])}]"

    rows = ["| streams | throughput Gavel / bare | TTFT added | TPOT Gavel / bare "
            "| serving CPU-s per 1k tokens | targets met |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    for c, level in data["concurrency"].items():
        s = level["summary"]
        met = data["meets"][c]
        rows.append(f"| {c} | {cell(s['throughput_ratio'], '{:.3f}')} "
                    f"| {cell(s['median_ttft_diff_ms'], '{:+.0f}')} ms "
                    f"| {cell(s['median_tpot_ratio'], '{:.3f}')}x "
                    f"| {level['serving_cpu_s_per_1k_output_tokens']:.1f} "
                    f"| {sum(met.values())} of {len(met)} |")  # fmt: skip
    p, load = data["capacity_projection"], data["load"]
    rows.append(f"\n{load['blocks_per_side']} pairs of blocks per level ({load['order']}), "
                f"{load['input_len']} tokens in, {load['output_len']} out; targets: ratio >= "
                f"{data['targets']['throughput_ratio_min']}, TTFT <= "
                f"+{data['targets']['median_ttft_diff_ms_max']:.0f} ms, TPOT <= "
                f"{data['targets']['tpot_ratio_max']}x. Projected for `{p['gpu_config']}` at "
                f"{p['assumed_output_tok_s']:.0f} output tokens/s per replica: "
                f"{p['serving_cores_per_replica']:.2f} serving cores per replica (config: "
                f"{p['replica_cpus_in_config']}).")  # fmt: skip
    return "\n".join(rows)


def serving_cpu(cpu: dict[str, float]) -> dict[str, float]:
    """The serving layer's CPU: its fixed cost (cores used while Gavel idles) and its
    marginal cost per 1k output tokens (CPU under load minus that fixed cost)."""
    idle_cores = cpu["idle_serving_s"] / cpu["idle_wall_s"] if cpu["idle_wall_s"] else 0.0
    marginal = max(0.0, cpu["serving_s"] - idle_cores * cpu["wall_s"])
    return {
        "serving_cpu_s_per_1k_output_tokens": cpu["serving_s"] / cpu["tokens"] * 1000,
        "serving_idle_cores": idle_cores,
        "serving_marginal_cpu_s_per_1k_tokens": marginal / cpu["tokens"] * 1000,
    }


def serving_cores(cpu_s_per_ktok: float, output_tok_s: float) -> float:
    """Cores the serving layer needs for a replica that makes ``output_tok_s`` tokens/s."""
    return cpu_s_per_ktok / 1000 * output_tok_s


# --- the run --------------------------------------------------------------------------


def _block(url: str, model: str, tokenizer: str, concurrency: int, prompts: int,
           key: str | None, label: str) -> dict[str, Any]:  # fmt: skip
    if key is None:
        os.environ.pop("OPENAI_API_KEY", None)
    else:
        os.environ["OPENAI_API_KEY"] = key
    return vllm_bench(url, model, tokenizer, chat=False, input_len=INPUT_LEN,
                      output_len=OUTPUT_LEN, concurrency=concurrency, num_prompts=prompts,
                      warmups=min(concurrency, 2), label=label)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the blocks, print the comparison with its spread and the CPU figures, write JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--config", default="config/cpu.yaml")
    p.add_argument("--gpu-config", default="config/gpu.yaml", help="for the capacity projection")
    p.add_argument("--blocks", type=int, default=3, help="blocks per side and concurrency (>= 3)")
    p.add_argument("--concurrency", default="1,4")
    p.add_argument("--prompts-per-block", type=int, default=8,
                   help="prompts per block at concurrency 1 (x concurrency/2 above)")  # fmt: skip
    p.add_argument("--out", default="reports/bench/overhead.json")
    args = p.parse_args(argv)
    config, gpu = load_config(args.config), load_config(args.gpu_config)
    app = config.model("app")
    tokenizer = str(ROOT / str(app.source.path))
    levels = [int(c) for c in args.concurrency.split(",")]
    work = ROOT / ".gavel"
    work.mkdir(exist_ok=True)
    bare_args, bare_env = bare_settings(config)
    print(f"bare vLLM: {' '.join(bare_args)}; env {bare_env}")
    print(f"Gavel: engine {app.engine.to_engine_kwargs()}, env {app.env}, executor mp (Ray on "
          f"CPU), stream batching {app.stream_batching_interval_ms} ms")  # fmt: skip

    per_level: dict[str, Any] = {}
    with bare_vllm(config, work / "bench-bare-vllm.log") as (bare_url, bare_pid), \
            gavel_stack(config, work) as (gavel_url, key):  # fmt: skip
        for c in levels:
            prompts = max(args.prompts_per_block, args.prompts_per_block * c // 2)
            pairs, blocks = [], []
            cpu = {"serving_s": 0.0, "engine_s": 0.0, "tokens": 0.0, "wall_s": 0.0,
                   "idle_serving_s": 0.0, "idle_wall_s": 0.0}  # fmt: skip
            for b in range(args.blocks):
                s0, t0 = snapshot(), time.monotonic()
                bare = _block(bare_url, app.model_id, tokenizer, c, prompts, None, f"bare-{b}")
                s1, t1 = snapshot(), time.monotonic()
                # Gavel is idle meanwhile: its serving layer's fixed cost (daemons, polls).
                idle = classify(s1)["serving"] - tree_cpu(s1, bare_pid)
                cpu["idle_serving_s"] += cpu_delta(s0, s1, idle)
                cpu["idle_wall_s"] += t1 - t0
                g = _block(gavel_url, app.model_id, tokenizer, c, prompts, key, f"gavel-{b}")
                s2, t2 = snapshot(), time.monotonic()
                groups = classify(s2)
                groups["serving"] -= tree_cpu(s2, bare_pid)
                cpu["serving_s"] += cpu_delta(s1, s2, groups["serving"])
                cpu["engine_s"] += cpu_delta(s1, s2, groups["engine"])
                cpu["tokens"] += float(g["total_output_tokens"])
                cpu["wall_s"] += t2 - t1
                pairs.append(pair_stats(bare, g))
                blocks.append({"bare": {k: float(bare[k]) for k in METRICS},
                               "gavel": {k: float(g[k]) for k in METRICS}})  # fmt: skip
                print(f"c={c} block {b}: bare {bare['output_throughput']:.1f} tok/s, Gavel "
                      f"{g['output_throughput']:.1f} tok/s, ratio "
                      f"{pairs[-1]['throughput_ratio']:.3f}, TTFT "
                      f"{pairs[-1]['median_ttft_diff_ms']:+.1f} ms, TPOT ratio "
                      f"{pairs[-1]['median_tpot_ratio']:.3f}", flush=True)  # fmt: skip
            per_level[str(c)] = {
                "prompts_per_block": prompts,
                "blocks": blocks,
                "summary": summarize(pairs),
                **serving_cpu(cpu),
                "engine_cpu_s_per_1k_output_tokens": cpu["engine_s"] / cpu["tokens"] * 1000,
            }
    gpu_app = gpu.model("app")
    tok_s = gpu_app.price.assumed_output_tok_s or 0.0
    worst = max(v["serving_marginal_cpu_s_per_1k_tokens"] for v in per_level.values())
    idle_cores = max(v["serving_idle_cores"] for v in per_level.values())
    projection = {
        "gpu_config": args.gpu_config,
        "assumed_output_tok_s": tok_s,
        "serving_idle_cores": idle_cores,
        "serving_marginal_cpu_s_per_1k_tokens": worst,
        "serving_cores_per_replica": idle_cores + serving_cores(worst, tok_s),
        "replica_cpus_in_config": gpu_app.resources.cpus,
    }
    report = {
        "schema": "gavel.bench_overhead/2",
        "load": {
            "input_len": INPUT_LEN,
            "output_len": OUTPUT_LEN,
            "ignore_eos": True,
            "blocks_per_side": args.blocks,
            "order": "bare, gavel alternating",
        },
        "settings": {
            "bare_vllm_args": bare_args,
            "bare_vllm_env": bare_env,
            "gavel_engine": app.engine.to_engine_kwargs(),
            "gavel_env": app.env,
            "stream_batching_interval_ms": app.stream_batching_interval_ms,
        },
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "gateway": {"auth": True, "per_key_limits": True, "capture": "sqlite"},
        "concurrency": per_level,
        "targets": TARGETS,
        "meets": {c: meets(v["summary"]) for c, v in per_level.items()},
        "capacity_projection": projection,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_report(out, report, config=args.config)

    print(f"\n=== Gavel vs bare vLLM: median [min-max] over {args.blocks} pairs of blocks ===")
    met: dict[str, dict[str, bool]] = report["meets"]  # type: ignore[assignment]
    for level, v in per_level.items():
        s = v["summary"]
        print(f"c={level}: throughput ratio {_fmt(s['throughput_ratio'], '.3f')}, "
              f"TTFT {_fmt(s['median_ttft_diff_ms'], '+.1f')} ms, "
              f"TPOT ratio {_fmt(s['median_tpot_ratio'], '.3f')}; serving layer "
              f"{v['serving_cpu_s_per_1k_output_tokens']:.2f} CPU-s per 1k output tokens "
              f"({v['serving_idle_cores']:.2f} cores idle + "
              f"{v['serving_marginal_cpu_s_per_1k_tokens']:.2f} CPU-s per 1k tokens; engine "
              f"{v['engine_cpu_s_per_1k_output_tokens']:.2f})")  # fmt: skip
        print(f"     targets (ratio >= 0.97, TTFT <= +10 ms, TPOT <= +3%): {met[level]}")
    print(f"projection: at {tok_s:.0f} output tok/s per replica ({args.gpu_config}), the serving "
          f"layer needs {projection['serving_cores_per_replica']:.1f} cores per replica "
          f"({idle_cores:.2f} fixed + {worst:.2f} CPU-s per 1k tokens) "
          f"(the replica's bundle has {gpu_app.resources.cpus:g})")  # fmt: skip
    print(f"wrote {out}")
    return 0


def _fmt(s: dict[str, float], f: str) -> str:
    return f"{s['median']:{f}} [{s['min']:{f}}, {s['max']:{f}}]"


if __name__ == "__main__":
    sys.exit(main())
