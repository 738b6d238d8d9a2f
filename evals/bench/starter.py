"""The starter suite end to end: items per second cold (nothing cached) and cached.

    python -m evals.bench.starter [--suite evals/suites/reference_qa.yaml] [--rounds 2]

Needs a running stack (``gavel serve --detach``). Each round runs the whole suite once
with ``no_cache`` and fresh judge verdicts (a new seed, so nothing is reused), then once
more from the cache; cold and cached alternate, and the spread over rounds is printed.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import uuid
from pathlib import Path

from evals._generate import Endpoint, check_endpoint
from evals._run import run_suite
from evals._suite import load_suite
from judges import load_judging
from serving import default_config, load_config, new_key, open_store
from serving.bench.provenance import write_report


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print items/s, write JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--suite", default="evals/suites/reference_qa.yaml")
    p.add_argument("--config", default=default_config())
    p.add_argument("--judging", help="default: the stack config's judging field")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", default="reports/bench_evals.json")
    args = p.parse_args(argv)
    stack = load_config(args.config)
    judging = load_judging(args.judging or stack.judging)
    store = open_store(args.config)
    plain, rec = new_key(f"bench-evals-{uuid.uuid4().hex[:8]}", ["infer", "judge"])
    store.add_key(rec)
    loaded = load_suite(args.suite, criteria_dir=judging.criteria_dir)
    cold: list[float] = []
    cached: list[float] = []
    for r in range(args.rounds):
        params = loaded.suite.target.params.model_copy(update={"seed": 1000 + r})
        ep = Endpoint(stack.http.base_url, plain, stack.model("app").model_id, params)
        check_endpoint(ep)
        for bucket, use_cache in ((cold, False), (cached, True)):
            res = run_suite(
                loaded,
                ep,
                store,
                stack=stack,
                judging=judging,
                judge_api_key=plain,
                use_cache=use_cache,
                log=lambda _m: None,
            )
            bucket.append(len(loaded.items) / res.seconds)
            print(
                f"round {r + 1} {'cached' if use_cache else 'cold  '}: "
                f"{len(loaded.items)} items in {res.seconds:.1f} s = {bucket[-1]:.2f} items/s "
                f"({res.model_calls} model calls)",
                flush=True,
            )
    report = {
        "schema": "gavel.bench_evals/1",
        "suite": loaded.suite.name,
        "items": len(loaded.items),
        "machine": {"platform": platform.platform()},
        "cold_items_per_s": {"median": statistics.median(cold), "min": min(cold), "max": max(cold)},
        "cached_items_per_s": {
            "median": statistics.median(cached),
            "min": min(cached),
            "max": max(cached),
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_report(out, report, config=args.config)
    print(
        f"cold {statistics.median(cold):.2f} items/s [{min(cold):.2f}-{max(cold):.2f}], "
        f"cached {statistics.median(cached):.1f} items/s [{min(cached):.1f}-{max(cached):.1f}]; "
        f"wrote {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
