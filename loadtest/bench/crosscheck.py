"""Cross-check: one cell measured by our Locust sweep and by vLLM's own serving benchmark.

Both run against the same endpoint (the Gavel stack), the same model, the same input
and output lengths and the same concurrency. The script prints median TTFT and median
TPOT from each and their ratios (target: within 10%), and writes them to JSON.

    python -m loadtest.bench.crosscheck [--output-len 128] [--concurrency 4] [--requests 16]

It starts the stack with ``gavel serve --detach`` if nothing answers, and stops it again
only in that case.
"""

from __future__ import annotations

import argparse
import os
import sys

import httpx

from loadtest._report import read_result
from loadtest.bench._harness import ROOT, create_key, vllm_bench
from loadtest.bench._harness import gavel as _gavel
from serving import load_config
from serving.bench.provenance import write_report


def main(argv: list[str] | None = None) -> int:
    """Run both measurements and print the comparison."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--config", default="config/cpu.yaml")
    p.add_argument("--input-len", type=int, default=128)
    p.add_argument("--output-len", type=int, default=128)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--requests", type=int, default=16)
    p.add_argument("--out", default="reports/bench_crosscheck.json")
    args = p.parse_args(argv)
    config = load_config(args.config)
    app = config.model("app")
    base = config.http.base_url.removesuffix("/v1")
    started = False
    try:
        up = httpx.get(f"{base}/health", timeout=3).status_code == 200
    except httpx.HTTPError:
        up = False
    if not up:
        print("starting the stack (gavel serve --detach)", flush=True)
        proc = _gavel("serve", "--detach", "--config", args.config)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        started = True
    try:
        key = create_key(args.config, "crosscheck", ["infer"])
        out_dir = ROOT / "reports" / "crosscheck-locust"
        # vLLM's random dataset puts input_len tokens inside the chat template; ours counts
        # the whole prompt, so add the template's overhead (measured: ~31 tokens).
        sweep = _gavel(
            "loadtest",
            "sweep",
            "--config",
            args.config,
            "--api-key",
            key,
            "--output-lens",
            str(args.output_len),
            "--concurrency",
            str(args.concurrency),
            "--requests-per-cell",
            str(args.requests),
            "--prompt-tokens",
            str(args.input_len + 31),
            "--out-dir",
            str(out_dir),
        )
        if sweep.returncode != 0:
            print(sweep.stdout, sweep.stderr, file=sys.stderr)
            return 1
        ours = read_result(out_dir / "result.json").cells[0]
        os.environ["OPENAI_API_KEY"] = key
        theirs = vllm_bench(
            base,
            app.model_id,
            str(ROOT / str(app.source.path)),
            chat=True,
            input_len=args.input_len,
            output_len=args.output_len,
            concurrency=args.concurrency,
            num_prompts=args.requests,
        )
    finally:
        if started:
            _gavel("down")
    assert ours.ttft_ms.p50 is not None and ours.tpot_ms.p50 is not None
    rows = {
        "median_ttft_ms": (ours.ttft_ms.p50, float(theirs["median_ttft_ms"])),
        "median_tpot_ms": (ours.tpot_ms.p50, float(theirs["median_tpot_ms"])),
        "median_e2e_ms": (ours.e2e_ms.p50 or 0.0, float(theirs["median_e2el_ms"])),
    }
    report = {
        "schema": "gavel.bench_crosscheck/1",
        "cell": {
            "input_len": args.input_len,
            "output_len": args.output_len,
            "concurrency": args.concurrency,
            "requests": args.requests,
        },
        "locust": {k: v[0] for k, v in rows.items()},
        "vllm_bench": {k: v[1] for k, v in rows.items()},
        "ratio_locust_over_vllm": {k: v[0] / v[1] for k, v in rows.items() if v[1]},
    }
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    write_report(out, report, config=args.config)
    print(
        f"\n=== one cell: {args.input_len} in / {args.output_len} out, "
        f"concurrency {args.concurrency}, {args.requests} requests ==="
    )
    print(f"{'':<16}{'Locust (ours)':>15}{'vllm bench':>13}{'ratio':>8}")
    for name, (a, b) in rows.items():
        ratio = a / b if b else float("nan")
        flag = "" if name == "median_e2e_ms" or abs(ratio - 1) <= 0.10 else "  (> 10% apart)"
        print(f"{name:<16}{a:>15.1f}{b:>13.1f}{ratio:>8.3f}{flag}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
