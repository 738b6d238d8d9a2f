"""Overhead benchmark: the Gavel stack against a bare vLLM OpenAI server, same model, same load.

Both are measured by vLLM's own serving benchmark (``vllm.benchmarks.serve``) with
128 input tokens, 128 output tokens, 4 concurrent streams and ``ignore_eos``. The
script prints the output-throughput ratio (Gavel / bare vLLM) and the differences in
median TTFT and TPOT, and writes them to JSON.

    python -m loadtest.bench.overhead [--num-prompts 32] [--out reports/bench_overhead.json]

The two servers run one after the other (a 2-core machine cannot host both fairly).
The Gavel side serves the app model alone, so the only difference is Ray Serve and
Gavel's ingress in front of the same engine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from loadtest.bench._harness import ROOT, create_key, gavel, vllm_bench
from serving import StackConfig, load_config

BARE_PORT = 8100
METRICS = ("output_throughput", "median_ttft_ms", "median_tpot_ms", "median_e2el_ms")


def _wait_models(base_url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/v1/models", timeout=3).status_code == 200:
                return
        time.sleep(2)
    raise RuntimeError(f"{base_url} not ready after {timeout_s:.0f} s")


@contextlib.contextmanager
def bare_vllm(config: StackConfig, log: Path) -> Iterator[str]:
    """A bare ``vllm.entrypoints.openai.api_server`` with the app model's engine arguments."""
    app = config.model("app")
    engine = app.engine
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(ROOT / str(app.source.path)),
        "--served-model-name",
        app.model_id,
        "--host",
        "127.0.0.1",
        "--port",
        str(BARE_PORT),
        "--dtype",
        engine.dtype,
    ]
    if engine.max_model_len:
        cmd += ["--max-model-len", str(engine.max_model_len)]
    if engine.enforce_eager:
        cmd.append("--enforce-eager")
    env = {**os.environ, **app.env}
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{BARE_PORT}"
    try:
        _wait_models(base, 600, proc)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def gavel_stack(config: StackConfig, batching_ms: float | None, work: Path) -> Iterator[str]:
    """The Gavel stack serving the app model alone, gateway on, started with the CLI.

    Auth, a per-key limit (high enough not to refuse) and capture to the SQLite store
    are all on; ``OPENAI_API_KEY`` carries the key to vLLM's benchmark client.
    """
    app = config.model("app").model_copy(update={"stream_batching_interval_ms": batching_ms})
    cfg = config.model_copy(update={"models": [app]})
    path = work / "bench-stack.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    os.environ["OPENAI_API_KEY"] = create_key(
        path, "bench", ["infer"], rpm=100_000, tpm=100_000_000
    )
    exe = str(Path(sys.executable).parent / "gavel")
    with (work / "bench-gavel.log").open("w") as out:
        rc = subprocess.run(
            [exe, "serve", "--config", str(path), "--detach"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode
    try:
        if rc != 0:
            raise RuntimeError(f"gavel serve failed; see {work / 'bench-gavel.log'}")
        yield cfg.http.base_url.removesuffix("/v1")
    finally:
        os.environ.pop("OPENAI_API_KEY", None)
        gavel("down")


def run_vllm_bench(
    base_url: str, model: str, tokenizer: str, *, num_prompts: int, label: str
) -> dict[str, Any]:
    """The overhead load: completions, 128 in / 128 out, 4 streams, 4 warm-ups."""
    return vllm_bench(
        base_url,
        model,
        tokenizer,
        chat=False,
        input_len=128,
        output_len=128,
        concurrency=4,
        num_prompts=num_prompts,
        warmups=4,
        label=label,
    )


def compare(bare: dict[str, Any], gavel: dict[str, Any]) -> dict[str, float]:
    """Gavel against bare vLLM: throughput ratio and median TTFT/TPOT differences (ms)."""
    return {
        "throughput_ratio": gavel["output_throughput"] / bare["output_throughput"],
        "median_ttft_diff_ms": gavel["median_ttft_ms"] - bare["median_ttft_ms"],
        "median_tpot_diff_ms": gavel["median_tpot_ms"] - bare["median_tpot_ms"],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the comparison, write JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--config", default="config/cpu.yaml")
    p.add_argument("--num-prompts", type=int, default=32)
    p.add_argument("--out", default="reports/bench_overhead.json")
    p.add_argument(
        "--with-default-batching",
        action="store_true",
        help="also measure Gavel with Ray Serve LLM's default 50 ms stream batching",
    )
    args = p.parse_args(argv)
    config = load_config(args.config)
    app = config.model("app")
    tokenizer = str(ROOT / str(app.source.path))
    work = ROOT / ".gavel"
    work.mkdir(exist_ok=True)
    kw: dict[str, Any] = {"num_prompts": args.num_prompts}

    results: dict[str, dict[str, Any]] = {}
    with bare_vllm(config, work / "bench-bare-vllm.log") as url:
        results["bare_vllm"] = run_vllm_bench(url, app.model_id, tokenizer, label="bare", **kw)
    variants: list[tuple[str, float | None]] = [("gavel", app.stream_batching_interval_ms)]
    if args.with_default_batching:
        variants.append(("gavel_batching_50ms", 50.0))
    for name, batching in variants:
        with gavel_stack(config, batching, work) as url:
            results[name] = run_vllm_bench(url, app.model_id, tokenizer, label=name, **kw)

    summary = {name: {k: results[name][k] for k in METRICS} for name in results}
    comparisons = {name: compare(results["bare_vllm"], results[name]) for name, _ in variants}
    report = {
        "schema": "gavel.bench_overhead/1",
        "load": {
            "input_len": 128,
            "output_len": 128,
            "max_concurrency": 4,
            "num_prompts": args.num_prompts,
            "ignore_eos": True,
        },
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "stream_batching_interval_ms": app.stream_batching_interval_ms,
        "gateway": {"auth": True, "per_key_limits": True, "capture": "sqlite"},
        "results": summary,
        "comparison": comparisons,
        "targets": {"throughput_ratio_min": 0.95, "median_ttft_diff_ms_max": 25},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))

    print("\n=== Gavel vs bare vLLM (vllm.benchmarks.serve, 128 in / 128 out, 4 streams) ===")
    print(f"{'':<22}{'out tok/s':>11}{'TTFT p50 ms':>13}{'TPOT p50 ms':>13}{'E2E p50 ms':>12}")
    for name, s in summary.items():
        print(
            f"{name:<22}{s['output_throughput']:>11.1f}{s['median_ttft_ms']:>13.1f}"
            f"{s['median_tpot_ms']:>13.1f}{s['median_e2el_ms']:>12.0f}"
        )
    for name, c in comparisons.items():
        ok = c["throughput_ratio"] >= 0.95 and c["median_ttft_diff_ms"] <= 25
        print(
            f"{name}: throughput ratio {c['throughput_ratio']:.3f}, "
            f"TTFT {c['median_ttft_diff_ms']:+.1f} ms, TPOT {c['median_tpot_diff_ms']:+.1f} ms "
            f"-> {'meets' if ok else 'MISSES'} target (>=0.95, <=+25 ms)"
        )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
