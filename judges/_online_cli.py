"""``gavel judge online``: the long-running loop that judges live traffic within the hour.

It is a client of the running stack (the judge's calls go through the gateway, as
``judge`` traffic, at background priority) and of the store, like the daily job, so it
runs as a plain process: a Deployment of one replica on Kubernetes
(``k8s/judge-online-deployment.yaml``), not a Serve deployment inside the stack (a judge
loop that shares the serving replicas' lifecycle would restart with every redeploy, and
would add nothing the store's cursor does not already give).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from judges._cli_open import add_api_key
from serving import EXIT_USAGE, CliError, open_store

if TYPE_CHECKING:
    from judges._config import JudgingConfig
    from judges._criteria import Criterion
    from judges._registry import KindRegistry


def add_online(judge_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``gavel judge online``."""
    on = judge_sub.add_parser(
        "online", help="judge live traffic by the judging config's online rules, in a loop"
    )
    on.add_argument("--judging")
    add_api_key(on, scope="judge")
    on.add_argument("--once", action="store_true", help="one pass of every rule, then exit")
    on.set_defaults(func=cmd_online)


def rule_criteria(
    judging: JudgingConfig, criteria: list[Criterion], kinds: KindRegistry, where: str
) -> dict[str, Criterion]:
    """The rules' criteria by name; a criterion that is missing or not pass/fail is a
    usage error naming the rule."""
    pass_fail = {c.name: c for c in kinds.pass_fail(criteria)}
    for i, rule in enumerate(judging.online):
        for name in rule.criteria:
            if name not in pass_fail:
                raise CliError(
                    f"{where}: online[{i}] ({rule.name}): criteria: {name!r} is not a pass/fail "
                    f"criterion of {judging.criteria_dir} ({', '.join(sorted(pass_fail))})",
                    EXIT_USAGE,
                )
    return {n: pass_fail[n] for rule in judging.online for n in rule.criteria}


def cmd_online(args: argparse.Namespace) -> int:
    """Run passes of every online rule until stopped (or once, with ``--once``)."""
    from judges._catalog import load_criteria
    from judges._config import load_judging
    from judges._online_run import OnlineContext, online_pass
    from judges.kinds import default_kinds
    from serving import load_config

    if not args.api_key:
        raise CliError("no API key: pass --api-key or set GAVEL_API_KEY to a key with the "
                       "'judge' scope (`gavel keys create judge-online --scopes judge`)",
                       EXIT_USAGE)  # fmt: skip
    judging = load_judging(args.judging)
    if not judging.online:
        raise CliError(f"{args.judging}: online: no rules; add one (name, sample_rate, "
                       "criteria) as in docs/judging.md", EXIT_USAGE)  # fmt: skip
    kinds = default_kinds()
    crits = rule_criteria(judging, load_criteria(Path(judging.criteria_dir), kinds), kinds,
                          args.judging)  # fmt: skip
    ctx = OnlineContext(
        stack=load_config(args.config), judging=judging, criteria=crits,
        store=open_store(args.config), api_key=args.api_key, kinds=kinds,
    )  # fmt: skip
    while True:
        try:
            for p in online_pass(ctx):
                print(f"{datetime.now(UTC):%H:%M:%S} {p.rule}: {p.read} read, {p.picked} "
                      f"picked, {p.judged_now} judged; cursor {p.cursor:%Y-%m-%dT%H:%M:%S}Z",
                      flush=True)  # fmt: skip
        except Exception as exc:  # the loop goes on; the next pass starts from the cursor
            if args.once:
                raise CliError(f"the online pass failed: {type(exc).__name__}: {exc}") from None
            print(f"warning: the online pass failed: {type(exc).__name__}: {exc}", flush=True)
        if args.once:
            return 0
        try:
            time.sleep(judging.online_loop.interval_s)
        except KeyboardInterrupt:
            return 0
