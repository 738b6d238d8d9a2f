"""``gavel judge daily|calibrate``, ``gavel label`` and ``gavel traffic replay``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from judges._cli_labels import add_calibrate_parser, add_label_parser
from serving._cli_gateway import day_arg

EXIT_USAGE = 2


def _yesterday() -> date:
    return (datetime.now(UTC) - timedelta(days=1)).date()


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``judge`` on the ``gavel`` parser, and ``replay`` under ``traffic``."""
    judge = sub.add_parser("judge", help="judge captured traffic with the judge model")
    js = judge.add_subparsers(dest="judge_command", required=True, metavar="ACTION")
    daily = js.add_parser("daily", help="sample and judge one day's traffic")
    daily.add_argument("--date", type=day_arg, default=None, help="UTC day (default: yesterday)")
    daily.add_argument("--config", default="config/cpu.yaml")
    daily.add_argument("--judging", default="config/judging.yaml")
    daily.add_argument(
        "--api-key",
        default=os.environ.get("GAVEL_API_KEY"),
        help="a key with the 'judge' scope (default: $GAVEL_API_KEY)",
    )
    daily.add_argument("--no-ray", action="store_true", help="judge in this process")
    daily.add_argument("--retry-errors", action="store_true", help="judge error verdicts again")
    daily.set_defaults(func=cmd_daily)
    add_calibrate_parser(js)
    add_label_parser(sub)


def add_replay_parser(traffic_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``gavel traffic replay``."""
    rp = traffic_sub.add_parser("replay", help="send the shipped prompt set over chosen days")
    rp.add_argument("--days", type=int, default=3, help="how many days, ending --end-date")
    rp.add_argument("--end-date", type=day_arg, default=None, help="default: yesterday (UTC)")
    rp.add_argument("--per-day", type=int, default=40, help="prompts per day")
    rp.add_argument("--concurrency", type=int, default=8)
    rp.add_argument(
        "--api-key",
        default=os.environ.get("GAVEL_API_KEY"),
        help="a key with the 'admin' scope (replays are back-dated)",
    )
    rp.set_defaults(func=cmd_replay)


def _err(message: str, code: int = 1) -> int:
    print(f"gavel: error: {message}", file=sys.stderr)
    return code


def cmd_daily(args: argparse.Namespace) -> int:
    """Run the daily job and write the reports."""
    from sqlalchemy.exc import SQLAlchemyError

    from judges._calibration import calibrate
    from judges._config import load_judging
    from judges._criteria import load_criteria
    from judges._daily import run_daily
    from judges._labels import LabelStore
    from judges._report import report_dir, write_reports
    from judges._store import VerdictStore
    from serving._config import ConfigError, load_config
    from serving._stack import connect_ray
    from serving._store import Store, resolve_url

    if not args.api_key:
        return _err(
            "no API key: pass --api-key or set GAVEL_API_KEY to a key with the "
            "'judge' scope (`gavel keys create judge-job --scopes judge`)",
            EXIT_USAGE,
        )
    try:
        stack = load_config(args.config)
        judging = load_judging(args.judging)
        criteria = load_criteria(Path(judging.criteria_dir))
        stack.model("judge")
    except ConfigError as exc:
        return _err(str(exc), EXIT_USAGE)
    except KeyError:
        return _err(f"{args.config}: models: no model with role 'judge'", EXIT_USAGE)
    day = args.date or _yesterday()
    use_ray = not args.no_ray
    if use_ray and not connect_ray(stack.ray.address):
        return _err(
            "no Ray cluster is running; start the stack with `gavel serve --detach` "
            "(or pass --no-ray)"
        )
    store = Store(resolve_url(stack.gateway.store.url, base_dir=Path.cwd()))
    try:
        res = run_daily(
            stack,
            judging,
            criteria,
            store,
            day=day,
            api_key=args.api_key,
            use_ray=use_ray,
            retry_errors=args.retry_errors,
        )
        vstore = VerdictStore(store)
        history = vstore.for_days(day - timedelta(days=30), day)
        calibration = calibrate(
            criteria,
            LabelStore(store).query(),
            vstore.current({c.name: c.version for c in criteria}),
            judging.calibration,
        )
    except SQLAlchemyError as exc:
        return _err(f"the store is unreachable ({type(exc).__name__}); check gateway.store.url")
    html = write_reports(
        res,
        history,
        report_dir(judging.report_dir, day),
        calibration=calibration,
        pushgateway=judging.pushgateway,
    )
    judged = res.judged_now
    rate = judged / res.seconds if res.seconds > 0 else 0.0
    per_k = (
        res.judge_cost_usd
        / max(
            1,
            sum(r.passes + r.fails + r.errors for r in res.rates)
            + sum(p.wins_a + p.wins_b + p.ties + p.errors for p in res.pairs),
        )
        * 1000
    )
    trust = {c.criterion: c for c in calibration}
    for r in res.rates:
        flag = "  DROP" if r.dropped else ""
        cal = trust.get(r.criterion)
        if cal is not None and not cal.trusted:
            flag += "  (judge not trustworthy)"
        rate_txt = "-" if r.pass_rate is None else f"{100 * r.pass_rate:.1f}%"
        print(
            f"  {r.criterion:<20} {r.model:<12} pass {rate_txt:>6} "
            f"[{100 * r.ci_low:.0f}-{100 * r.ci_high:.0f}%] n={r.passes + r.fails} "
            f"errors={r.errors}{flag}"
        )
    for p in res.pairs:
        pc = "-" if p.position_consistency is None else f"{100 * p.position_consistency:.0f}%"
        print(
            f"  {p.criterion:<20} {p.models}: A {p.wins_a} / B {p.wins_b} / tie {p.ties}, "
            f"position consistency {pc}"
        )
    print(
        f"judged {judged} items in {res.seconds:.1f} s ({rate:.2f}/s); judge cost "
        f"{res.judge_cost_usd:.6f} USD ({per_k:.4f} USD per 1,000 records)"
    )
    print(f"report: {html}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Replay the shipped prompts through the gateway."""
    from judges._replay import day_range, replay
    from serving._config import ConfigError, load_config

    if not args.api_key:
        return _err(
            "no API key: pass --api-key or set GAVEL_API_KEY to a key with the 'admin' scope",
            EXIT_USAGE,
        )
    try:
        stack = load_config(args.config)
    except ConfigError as exc:
        return _err(str(exc), EXIT_USAGE)
    days = day_range(args.end_date or _yesterday(), args.days)
    counts = asyncio.run(
        replay(
            stack,
            api_key=args.api_key,
            days=days,
            per_day=args.per_day,
            concurrency=args.concurrency,
        )
    )
    bad = {k: v for k, v in counts.items() if k != "200"}
    if bad:
        return _err(
            f"some replayed requests failed: {bad}; check the key's scopes (admin) "
            "and that the stack is up"
        )
    print(f"replayed {sum(counts.values())} requests over {len(days)} days ({days[0]}..{days[-1]})")
    return 0
