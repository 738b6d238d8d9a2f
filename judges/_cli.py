"""The judges' commands: ``gavel judge daily|calibrate|online``, ``gavel label [import|export]``
and ``gavel traffic replay``. Handlers parse arguments, call the judges' public functions
and print; expected failures raise :class:`~serving.CliError`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

from judges._calibrate_cli import cmd_calibrate
from judges._cli_open import add_api_key, open_configs
from serving import EXIT_USAGE, CliError, CommandSet, day_arg, open_store, yesterday


def commands(cli: CommandSet) -> None:
    """Register ``judge``, ``label`` and ``traffic replay`` on the ``gavel`` parser."""
    js = cli.group("judge", help="judge captured traffic with the judge model")
    daily = js.add_parser("daily", help="sample and judge one day's traffic")
    daily.add_argument(
        "--date",
        type=day_arg,
        default=None,
        help="UTC day: YYYY-MM-DD, today or yesterday (default: yesterday, for a nightly job)",
    )
    daily.add_argument("--judging")
    add_api_key(daily, scope="judge")
    daily.add_argument("--no-ray", action="store_true", help="judge in this process")
    daily.add_argument("--retry-errors", action="store_true", help="judge error verdicts again")
    daily.add_argument(
        "--batch",
        action="store_true",
        help="judge pass/fail criteria with Ray Data's LLM batch processor (an engine of its "
        "own) instead of the online endpoint",
    )
    daily.set_defaults(func=cmd_daily)
    _add_calibrate(js)
    from judges._online_cli import add_online

    add_online(js)
    _add_label(cli)
    from judges._config_check import check_judging

    cli.config_checks.append(check_judging)
    _add_replay(cli.group("traffic"))  # serving's group


def _add_replay(traffic_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rp = traffic_sub.add_parser("replay", help="send the shipped prompt set over chosen days")
    rp.add_argument("--days", type=int, default=3, help="how many days, ending --end-date")
    rp.add_argument("--end-date", type=day_arg, default=None, help="default: yesterday (UTC)")
    rp.add_argument("--per-day", type=int, default=40, help="prompts per day")
    rp.add_argument("--concurrency", type=int, default=8)
    add_api_key(rp, scope="admin", why=": replays are back-dated")
    rp.set_defaults(func=cmd_replay)


def cmd_daily(args: argparse.Namespace) -> int:
    """Run the daily job (it writes the reports) and print the day's figures."""
    from judges._catalog import load_criteria
    from judges._config import load_judging
    from judges._daily import run_daily
    from serving import connect_ray, load_config

    if not args.api_key:
        raise CliError(
            "no API key: pass --api-key or set GAVEL_API_KEY to a key with the "
            "'judge' scope (`gavel keys create judge-job --scopes judge`)",
            EXIT_USAGE,
        )
    stack = load_config(args.config)
    judging = load_judging(args.judging)
    criteria = load_criteria(Path(judging.criteria_dir))
    if not any(m.role == "judge" for m in stack.models):
        raise CliError(f"{args.config}: models: no model with role 'judge'", EXIT_USAGE)
    day = args.date or yesterday()
    use_ray = not args.no_ray
    if use_ray and not connect_ray(stack.ray.address):
        raise CliError(
            "no Ray cluster is running; start the stack with `gavel serve --detach` "
            "(or pass --no-ray)"
        )
    res = run_daily(
        stack,
        judging,
        criteria,
        open_store(args.config),
        day=day,
        api_key=args.api_key,
        use_ray=use_ray,
        retry_errors=args.retry_errors,
        batch=args.batch,
    )
    if res.sampled == 0:
        default = " (yesterday, the default)" if args.date is None else ""
        print(
            f"no production traffic captured on {day.isoformat()}{default}; nothing to judge. "
            "Traffic sent today is judged with `gavel judge daily --date today`."
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
    trust = {c.criterion: c for c in res.calibration}
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
    print(f"report: {res.report}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Replay the shipped prompts through the gateway."""
    from judges._replay import day_range, replay
    from serving import load_config

    if not args.api_key:
        raise CliError(
            "no API key: pass --api-key or set GAVEL_API_KEY to a key with the 'admin' scope",
            EXIT_USAGE,
        )
    stack = load_config(args.config)
    days = day_range(args.end_date or yesterday(), args.days)
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
        raise CliError(
            f"some replayed requests failed: {bad}; check the key's scopes (admin) "
            "and that the stack is up"
        )
    print(f"replayed {sum(counts.values())} requests over {len(days)} days ({days[0]}..{days[-1]})")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    """--judging; a global option (``gavel`` fills in its default), like --config."""
    p.add_argument("--judging")


def _add_label(cli: CommandSet) -> None:
    """Register ``gavel label [import|export]``."""
    label = cli.command(
        "label",
        help="the labelling page; `label import|export` move labels as JSONL",
        description="Without an action: serve the labelling page.",
    )
    _common(label)
    label.add_argument("--host", default="127.0.0.1")
    label.add_argument("--port", type=int, default=8100)
    label.set_defaults(func=cmd_serve)
    ls = label.add_subparsers(dest="label_command", required=False, metavar="ACTION")
    imp = ls.add_parser("import", help="import a JSONL file of labels (all rows or none)")
    _common(imp)
    imp.add_argument("file", type=Path)
    imp.add_argument("--labeller", default=None, help="for rows without one (default: import)")
    imp.set_defaults(func=cmd_import)
    exp = ls.add_parser("export", help="write the labels as JSONL (atomically)")
    _common(exp)
    exp.add_argument("file", type=Path)
    exp.add_argument("--criterion", default=None)
    exp.add_argument("--since", type=day_arg, default=None, help="labelled on or after this day")
    exp.set_defaults(func=cmd_export)


def _add_calibrate(judge_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``gavel judge calibrate``."""
    cal = judge_sub.add_parser("calibrate", help="agreement of the judge with human labels")
    _common(cal)
    cal.add_argument("--criterion", default=None, help="only this criterion")
    cal.add_argument("--since", type=day_arg, default=None, help="labels made on or after this day")
    cal.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    cal.set_defaults(func=cmd_calibrate)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the labelling page until Ctrl-C."""
    import uvicorn

    from judges._label_app import build_label_app

    opened = open_configs(args)
    app = build_label_app(opened.store, opened.criteria, kinds=opened.kinds,
                          labelling=opened.judging.labelling)  # fmt: skip
    print(
        f"labelling page: http://{args.host}:{args.port}/ (records) and "
        f"http://{args.host}:{args.port}/pairs (shadow pairs, blind); sign in with a key "
        "that has the 'label' scope: `gavel keys create NAME --scopes label`",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Import a JSONL label file in one transaction."""
    from judges._labels import LabelImportError, LabelStore, parse_label_file

    opened = open_configs(args)
    try:
        rows = parse_label_file(
            args.file,
            opened.criteria,
            labeller=args.labeller or "import",
            now=datetime.now(UTC),
            kinds=opened.kinds,
        )
    except LabelImportError as exc:
        if exc.problems[0][0] == 0:
            raise CliError(f"{exc.problems[0][1]}; check the path", EXIT_USAGE) from None
        for line, message in exc.problems:
            print(f"{exc.path}:{line}: {message}", file=sys.stderr)
        raise CliError(
            f"{len(exc.problems)} bad row(s) in {exc.path}; nothing was imported. "
            "Fix the lines above and import again.",
            EXIT_USAGE,
        ) from None
    written = LabelStore(opened.store).upsert(rows)
    print(f"imported {written} labels from {args.file}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write labels as JSONL."""
    from judges._labels import LabelStore, since_filter, write_label_file

    opened = open_configs(args, criterion=args.criterion)
    found = since_filter(LabelStore(opened.store).query(criterion=args.criterion), args.since)
    try:
        write_label_file(args.file, found)
    except OSError as exc:
        raise CliError(f"cannot write {args.file}: {exc.strerror or exc}") from None
    print(f"exported {len(found)} labels to {args.file}")
    return 0
