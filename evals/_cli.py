"""``gavel eval run|list|compare|ab`` (and, from :mod:`evals._judge_cli`, ``judge|align|
promote``): offline evals, CI gates, model swap.

Handlers parse arguments, call the evals' functions and print. A bad suite, dataset,
criterion, endpoint or key is a one-line error with exit 2; a failed gate exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evals._cli_common import configs, endpoint, load
from evals._judge_cli import add_judge_commands
from evals.swap import commands as add_swap_commands
from serving import EXIT_USAGE, CliError, CommandSet, open_store

if TYPE_CHECKING:
    from evals._generate import Endpoint
    from evals._suite import LoadedSuite
    from judges import JudgingConfig
    from serving import StackConfig


def _json_obj(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of items, 1 or more, got {text!r}"
        )
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--judging")
    p.add_argument(
        "--api-key",
        default=os.environ.get("GAVEL_API_KEY"),
        help="a key with the 'infer' and 'judge' scopes (default: $GAVEL_API_KEY)",
    )


def _target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base-url", help="OpenAI-compatible base URL (default: the stack's)")
    p.add_argument("--epochs", type=int, help="answers per item (default: the suite's)")
    p.add_argument(
        "--limit", type=_positive, metavar="N", help="the suite's first N items only (a quick look)"
    )
    p.add_argument("--no-cache", action="store_true", help="generate even if cached")
    p.add_argument("--out", type=Path, help="output folder (default: reports/evals/RUN)")


def commands(cli: CommandSet) -> None:
    """Register ``gavel eval ...`` and ``gavel console``."""
    from evals.console import commands as console_commands

    console_commands(cli)
    ev = cli.group("eval", help="offline eval suites, CI gates and A/B comparisons of two arms")
    run = ev.add_parser("run", help="run a suite on a model")
    run.add_argument("suite", type=Path)
    run.add_argument("--model", help="served model id (default: the suite's target)")
    run.add_argument("--params", type=_json_obj, help="sampling parameters (JSON) over the suite's")
    _target(run)
    _common(run)
    run.set_defaults(func=cmd_run)

    ls = ev.add_parser("list", help="stored runs, newest first")
    ls.set_defaults(func=cmd_list)

    cmp = ev.add_parser("compare", help="gate a candidate run against a baseline run")
    cmp.add_argument("baseline", help="run id or result.json")
    cmp.add_argument("candidate", help="run id or result.json")
    cmp.add_argument("--max-drop", type=float, default=0.02)
    cmp.add_argument("--json", type=Path, help="also write the comparison as JSON")
    cmp.set_defaults(func=cmd_compare)

    ab = ev.add_parser("ab", help="run a suite on two models (or settings) and judge pairwise")
    ab.add_argument("suite", type=Path)
    ab.add_argument("--a", required=True, help="model A (the baseline)")
    ab.add_argument("--b", required=True, help="model B (the candidate)")
    ab.add_argument("--a-params", type=_json_obj, help="A's sampling parameters (JSON)")
    ab.add_argument("--b-params", type=_json_obj, help="B's sampling parameters (JSON)")
    ab.add_argument("--max-drop", type=float, default=0.02)
    ab.add_argument("--max-flip-rate", type=float, default=0.15)
    _target(ab)
    _common(ab)
    ab.set_defaults(func=cmd_ab)

    add_judge_commands(ev, common=_common)
    add_swap_commands(cli)


def _run(
    args: argparse.Namespace,
    ep: Endpoint,
    loaded: LoadedSuite,
    stack: StackConfig,
    judging: JudgingConfig,
) -> Any:
    from evals._report import run_table, write_run
    from evals._run import run_suite

    store = open_store(args.config)
    result = run_suite(
        loaded,
        ep,
        store,
        stack=stack,
        judging=judging,
        judge_api_key=ep.api_key,
        epochs=args.epochs,
        use_cache=not args.no_cache,
    )
    out = write_run(result, args.out or Path("reports/evals") / result.run_id)
    print(run_table(result))
    print(f"result: {out}")
    return result


def cmd_run(args: argparse.Namespace) -> int:
    """Run a suite and write its result."""
    stack, judging = configs(args)
    loaded = load(args, judging)
    ep = endpoint(args, stack, loaded, args.model, args.params)
    _run(args, ep, loaded, stack, judging)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """List stored runs."""
    from evals._run import list_runs

    rows = list_runs(open_store(args.config))
    if not rows:
        print("no eval runs yet; run one with `gavel eval run SUITE`")
    for r in rows:
        print(
            f"{r['run_id']:<36} {r['suite']:<20} {r['model']:<16} {r['created_at']:%Y-%m-%d %H:%M}"
        )
    return 0


def _gate(args: argparse.Namespace, base: Any, cand: Any) -> Any:
    from evals._compare import compare
    from evals._report import comparison_table

    if (base.suite_hash, base.dataset_hash) != (cand.suite_hash, cand.dataset_hash):
        raise CliError(
            f"runs of different suites or datasets: {base.run_id} ({base.suite} "
            f"{base.suite_hash}/{base.dataset_hash}) and {cand.run_id} ({cand.suite} "
            f"{cand.suite_hash}/{cand.dataset_hash})",
            EXIT_USAGE,
        )
    comparison = compare(base, cand, max_drop=args.max_drop)
    print(comparison_table(comparison))
    return comparison


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare two runs; exit 1 when a gating check dropped."""
    from evals._run import load_run

    store = open_store(args.config)
    comparison = _gate(args, load_run(store, args.baseline), load_run(store, args.candidate))
    if args.json is not None:
        args.json.write_text(comparison.model_dump_json(indent=2))
    print("gate: FAIL" if comparison.failed else "gate: pass")
    return 1 if comparison.failed else 0


def cmd_ab(args: argparse.Namespace) -> int:
    """Run both arms, compare them, judge them pairwise; exit 1 if B is worse."""
    from evals._pairwise import judge_pairs, pairwise_criterion
    from evals._report import pairwise_table
    from evals._trust import pairwise_trust

    stack, judging = configs(args)
    loaded = load(args, judging)
    crit = pairwise_criterion(loaded, judging.criteria_dir)
    ep_a = endpoint(args, stack, loaded, args.a, args.a_params)
    ep_b = endpoint(args, stack, loaded, args.b, args.b_params)
    print("== A ==")
    a = _run(args, ep_a, loaded, stack, judging)
    print("== B ==")
    b = _run(args, ep_b, loaded, stack, judging)
    comparison = _gate(args, a, b)
    store = open_store(args.config)
    trusted, why = pairwise_trust(store, judging, crit)
    print(f"pairwise judge ({crit.name}): {'trusted' if trusted else 'NOT trusted'}: {why}")
    report = judge_pairs(
        loaded,
        a,
        b,
        crit,
        store,
        stack,
        judging,
        ep_a.api_key,
        max_flip_rate=args.max_flip_rate,
        judge_trusted=trusted,
        trust_reason=why,
    )
    print(pairwise_table(report))
    worse = comparison.failed or report.decision == "A better"
    print("gate: FAIL" if worse else "gate: pass")
    return 1 if worse else 0
