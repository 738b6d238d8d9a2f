"""``gavel loadtest sweep`` and ``gavel loadtest compare``."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from serving import EXIT_USAGE, CliError, CommandSet

if TYPE_CHECKING:
    from loadtest._models import SweepResult


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def commands(cli: CommandSet) -> None:
    """Register ``loadtest sweep|compare`` on the ``gavel`` parser."""
    lt_sub = cli.group("loadtest", help="latency and cost as output length and load change")

    sw = lt_sub.add_parser("sweep", help="run a Locust sweep over output lengths x concurrency")
    sw.add_argument("--base-url", help="endpoint root (default: the config's http host/port)")
    sw.add_argument("--role", default="app", choices=["app", "judge"], help="model to load")
    sw.add_argument("--model", help="served model id (default: the role's model_id)")
    sw.add_argument("--output-lens", type=_ints, default=[16, 64, 256, 1024])
    sw.add_argument("--concurrency", type=_ints, default=[1, 4])
    sw.add_argument("--requests-per-cell", type=int, help="default: max(4, 2 x concurrency)")
    sw.add_argument("--prompt-tokens", type=int, default=128)
    sw.add_argument("--mode", choices=["closed", "poisson"], default="closed")
    sw.add_argument("--rate", type=float, help="Poisson arrivals per second (--mode poisson)")
    sw.add_argument("--slo-ttft-ms", type=float)
    sw.add_argument("--slo-tpot-ms", type=float)
    sw.add_argument("--slo-e2e-ms", type=float)
    sw.add_argument("--api-key", default=os.environ.get("GAVEL_API_KEY"))
    sw.add_argument("--out-dir", help="default: reports/loadtest/<UTC time>")
    sw.add_argument("--pushgateway", help="Prometheus Pushgateway URL to push the results to")
    sw.set_defaults(func=cmd_sweep)

    cmp = lt_sub.add_parser("compare", help="flag regressions between two result files")
    cmp.add_argument("old", type=Path)
    cmp.add_argument("new", type=Path)
    cmp.add_argument("--threshold", type=float, default=0.10, help="relative change (0.10=10%%)")
    cmp.set_defaults(func=cmd_compare)


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run the sweep and write JSON, PNG and HTML."""
    from pydantic import ValidationError

    from loadtest._models import Slo, SweepResult, SweepSpec
    from loadtest._report import plot_latency, push_to_gateway, run_info, write_html, write_json
    from loadtest._runner import LoadTestError, run_sweep
    from loadtest.metrics import fit_latency
    from serving import load_config

    config = load_config(args.config)  # a ConfigError is printed by gavel's main (exit 2)
    model = config.model(args.role)
    base_url = args.base_url or config.http.base_url.removesuffix("/v1")
    price = model.price
    try:
        spec = SweepSpec(
            base_url=base_url,
            model=args.model or model.model_id,
            output_lens=args.output_lens,
            concurrency=args.concurrency,
            requests_per_cell=args.requests_per_cell,
            prompt_tokens=args.prompt_tokens,
            mode=args.mode,
            rate_rps=args.rate,
            slo=Slo(ttft_ms=args.slo_ttft_ms, tpot_ms=args.slo_tpot_ms, e2e_ms=args.slo_e2e_ms),
            node_hour_usd=price.node_hour_usd,
        )
    except ValidationError as exc:
        e = exc.errors()[0]
        raise CliError(f"--{'-'.join(str(p) for p in e['loc'])}: {e['msg']}", EXIT_USAGE) from None
    out_dir = Path(args.out_dir or f"reports/loadtest/{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
    print(f"sweep: {spec.model} at {spec.base_url}, output lengths {spec.output_lens}, "
          f"concurrency {spec.concurrency}, {spec.mode} loop", flush=True)  # fmt: skip
    try:
        cells, records = run_sweep(spec, api_key=args.api_key,
                                   log=lambda m: print(m, flush=True))  # fmt: skip
    except LoadTestError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    result = SweepResult(
        spec=spec,
        run=run_info(config.model_dump(mode="json")),
        cells=cells,
        fits=fit_latency(records),
        records=records,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(result, out_dir / "result.json")
    plot_latency(result, out_dir / "latency.png")
    write_html(result, out_dir / "report.html", "latency.png")
    for f in result.fits:
        off = f"; {len(f.outliers)} point(s) off the line" if f.outliers else ""
        print(f"fit c={f.concurrency}: E2E = {f.intercept_ms:.0f} ms + (N-1) x "
              f"{f.slope_ms_per_token:.1f} ms, R2={f.r2:.4f}{off}")  # fmt: skip
    for c in cells:
        if c.goodput_rps is not None or c.cost_per_mtok_usd is not None:
            print(f"out={c.output_len} c={c.concurrency}: goodput "
                  f"{c.goodput_rps if c.goodput_rps is not None else '-'} req/s, "
                  f"cost {c.cost_per_mtok_usd or 0:.2f} USD per 1M output tokens")  # fmt: skip
    _publish(args.config, result)
    if args.pushgateway:
        try:
            push_to_gateway(result, args.pushgateway)
        except OSError as exc:
            print(f"gavel: warning: push to {args.pushgateway} failed: {exc}", file=sys.stderr)
    print(f"report: {out_dir / 'report.html'}")
    print(f"results: {out_dir / 'result.json'}")
    return 0


def _publish(config_path: str, result: SweepResult) -> None:
    """Store the sweep's figures, which the gateway's ``/metrics`` serves (the dashboards'
    load-test panels). The report files are written either way."""
    from loadtest._report import loadtest_figures
    from serving import open_store

    try:
        store = open_store(config_path)
        try:
            store.replace_figures("loadtest", loadtest_figures(result))
        finally:
            store.close()
    except Exception as exc:
        print(f"gavel: warning: could not store the figures for /metrics: {exc}", file=sys.stderr)


def cmd_compare(args: argparse.Namespace) -> int:
    """Print regressions of NEW against OLD; exit 1 if there are any."""
    from pydantic import ValidationError

    from loadtest._report import compare, read_result

    try:
        old, new = read_result(args.old), read_result(args.new)
    except FileNotFoundError as exc:
        raise CliError(f"{exc.filename}: file not found", EXIT_USAGE) from None
    except ValidationError as exc:
        raise CliError(
            f"not a gavel load-test result: {exc.errors()[0]['msg']}", EXIT_USAGE
        ) from None
    regressions = compare(old, new, threshold=args.threshold)
    if not regressions:
        print(f"no regressions beyond {args.threshold:.0%}")
        return 0
    for r in regressions:
        print(f"REGRESSION out={r.output_len} c={r.concurrency} {r.metric}: "
              f"{r.old:.2f} -> {r.new:.2f} ({r.change:+.0%})")  # fmt: skip
    return 1
