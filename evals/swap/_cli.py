"""``gavel swap report``: the judged comparison of the configured model swap on live
traffic, with its decision (``promote``, ``rollback`` or ``continue``) and why.

Exit 0 whatever the decision (the decision is in the report and a metric); 2 for bad
input (no ``swap`` block, an unknown assertion, no pairwise criterion, no key).
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path

from serving import EXIT_USAGE, CliError, CommandSet, day_arg, open_store


def commands(cli: CommandSet) -> None:
    """Register ``gavel swap report`` (in serving's ``gavel swap`` group)."""
    sw = cli.group("swap")
    rp = sw.add_parser("report", help="judge the swap's traffic and decide")
    when = rp.add_mutually_exclusive_group()
    when.add_argument("--date", type=day_arg, help="one UTC day")
    when.add_argument(
        "--since", type=day_arg,
        help="every day from this one to today (default: the current trial, from the swap's "
        "first change after its last rollback or promote, as `gavel swap status` lists)",
    )  # fmt: skip
    rp.add_argument("--no-judge", action="store_true",
                    help="deterministic checks only (no pairwise judging)")  # fmt: skip
    rp.add_argument("--out", type=Path, help="output folder (default: reports/swap/LAST_DAY)")
    rp.add_argument("--judging")
    rp.add_argument(
        "--api-key", default=os.environ.get("GAVEL_API_KEY"),
        help="a key with the 'judge' scope (default: $GAVEL_API_KEY)",
    )  # fmt: skip
    rp.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    """Load the days' traffic, check, judge, decide; write JSON, HTML and the figures."""
    from evals._pairwise import PairJudging
    from evals.swap._report import (
        build_report,
        check_config,
        days_of,
        judged_report,
        load_days,
        pairwise_criterion,
        swap_criteria,
        write,
    )
    from evals.swap._trial import trial_start
    from judges import load_judging
    from serving import load_config
    from serving.feedback import feedback_between
    from serving.swap import swap_history

    stack = load_config(args.config)
    swap = stack.swap
    if swap is None:
        raise CliError(
            f"{args.config}: no swap block; add one (production, candidate, shadow_rate, "
            "canary_weight, checks) as in docs/model-swap.md",
            EXIT_USAGE,
        )
    check_config(swap, args.config)
    store = open_store(args.config)
    today = datetime.now(UTC).date()
    since, start = args.since, None
    if args.date is None and since is None:
        start = trial_start(swap_history(store, swap.production, swap.candidate))
        since = min(start.astimezone(UTC).date(), today) if start else today
    days = days_of(args.date, since, today)
    records = [r for r in load_days(store, days) if start is None or r.ts >= start]
    feedback = feedback_between(store, days[0], days[-1])
    if args.no_judge:
        report = build_report(swap, records, days, judge=lambda _: None, feedback=feedback)
    else:
        if not args.api_key:
            raise CliError(
                "no API key for the pairwise judge: pass --api-key or set GAVEL_API_KEY (a "
                "key with the 'judge' scope), or --no-judge for the deterministic checks only",
                EXIT_USAGE,
            )
        judging = load_judging(args.judging)
        ctx = PairJudging(pairwise_criterion(swap, judging), store, stack, judging, args.api_key)
        crits = swap_criteria(swap, judging, args.config)
        run_id = f"swap-{swap.candidate}-{days[-1].isoformat()}"
        report = judged_report(swap, records, days, ctx, crits, run_id=run_id,
                               feedback=feedback)  # fmt: skip
    out = args.out or Path("reports/swap") / days[-1].isoformat()
    write(report, out, store)
    v = report.verdict
    print(f"{swap.production} -> {swap.candidate}: production arm {report.production_arm}, "
          f"candidate arm {report.candidate_arm}, shadow pairs {report.shadow_pairs}")  # fmt: skip
    for c in report.checks:
        print(f"  {c.check} ({c.on}): {c.production_rate} -> {c.candidate_rate}, "
              f"CS [{c.cs_low}, {c.cs_high}]{'  WORSE' if c.worse else ''}")  # fmt: skip
    print(f"decision: {v.decision}: {v.reason}")
    if v.withheld:
        print(f"withheld: {v.withheld}")
    print(f"report: {out / 'report.html'} ({report.seconds} s)")
    return 0
