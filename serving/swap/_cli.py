"""``gavel swap set|promote|rollback|status``: change a model swap's state on the running
stack, recorded with who made it and when. (``gavel swap report`` is the evals'.)

A change is a row in the store; every gateway replica reads the latest within a second
and applies it in place, so nothing is redeployed and no request is dropped. The
command waits until every replica shows it applied (``gavel_swap_state_id`` on the
endpoint's ``/metrics``), or says that the stack will apply it when it starts.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import time
from typing import TYPE_CHECKING

from serving._commandline import EXIT_USAGE, CliError, CommandSet

if TYPE_CHECKING:
    from serving._config import StackConfig
    from serving.store import Store
    from serving.swap._config import SwapConfig
    from serving.swap._events import SwapAction


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share from 0 to 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a share from 0 to 1, got {text!r}")
    return value


def commands(cli: CommandSet) -> None:
    """Register ``gavel swap set|promote|rollback|status``."""
    sw = cli.group("swap", help="a candidate model beside production: shadow, canary, decision")
    st = sw.add_parser("set", help="change the shadow rate and the canary weight")
    st.add_argument("--shadow", type=_share, help="share of production requests shadowed")
    st.add_argument("--canary", type=_share, help="share of production requests on the candidate")
    st.set_defaults(func=_cmd_set)
    pr = sw.add_parser("promote", help="the candidate answers every request for production's id")
    pr.set_defaults(func=_cmd_promote)
    rb = sw.add_parser("rollback", help="production answers everything; no shadow, no canary")
    rb.set_defaults(func=_cmd_rollback)
    for p in (st, pr, rb):
        p.add_argument("--by", help="who made the change (default: $GAVEL_OPERATOR or the user)")
        p.add_argument("--wait", type=float, default=15.0,
                       help="seconds to wait for every gateway replica to apply it")  # fmt: skip
    ss = sw.add_parser("status", help="the swap's state and every change, oldest first")
    ss.set_defaults(func=_cmd_status)


def _swap(args: argparse.Namespace) -> tuple[StackConfig, SwapConfig, Store]:
    from serving._config import load_config
    from serving.store import Store

    stack = load_config(args.config)
    if stack.swap is None:
        raise CliError(
            f"{args.config}: no swap block; add one (production, candidate, shadow_rate, "
            "canary_weight) as in docs/model-swap.md",
            EXIT_USAGE,
        )
    return stack, stack.swap, Store(stack.gateway.store.url)


def _current(swap: SwapConfig, store: Store) -> tuple[float, float, bool]:
    from serving.swap._events import latest_swap

    last = latest_swap(store, swap.production, swap.candidate)
    if last is None:
        return swap.shadow_rate, swap.canary_weight, swap.promoted
    return last.shadow_rate, last.canary_weight, last.promoted


def _change(args: argparse.Namespace, action: SwapAction, state: tuple[float, float, bool]) -> int:
    from serving.swap._events import record_swap

    stack, swap, store = _swap(args)
    by = args.by or os.environ.get("GAVEL_OPERATOR") or getpass.getuser()
    shadow, canary, promoted = state
    event = record_swap(store, swap.production, swap.candidate, action, shadow_rate=shadow,
                        canary_weight=canary, promoted=promoted, by=by)  # fmt: skip
    print(f"swap {swap.production} -> {swap.candidate}: {action} (change {event.id}, by {by} "
          f"at {event.at:%Y-%m-%d %H:%M:%S} UTC): shadow {shadow:g}, canary {canary:g}, "
          f"promoted {promoted}")  # fmt: skip
    _wait_applied(stack, int(event.id or 0), args.wait)
    return 0


def _wait_applied(stack: StackConfig, change: int, wait_s: float) -> None:
    import httpx

    url = stack.http.base_url.removesuffix("/v1") + "/metrics"
    deadline = time.monotonic() + wait_s
    seen = None
    while time.monotonic() < deadline:
        try:
            page = httpx.get(url, timeout=5).text
        except httpx.HTTPError:
            print(f"the stack does not answer at {url}: it applies the change when it starts")
            return
        found = re.search(r"^gavel_swap_state_id (\S+)$", page, re.M)
        seen = float(found.group(1)) if found else None
        if seen is not None and seen >= change:
            print("applied by every gateway replica")
            return
        time.sleep(0.5)
    raise CliError(
        f"recorded, but not every gateway replica shows it applied after {wait_s:g} s "
        f"(lowest applied change: {seen}); check `gavel status` and the replicas' logs",
        1,
    )


def _cmd_set(args: argparse.Namespace) -> int:
    if args.shadow is None and args.canary is None:
        raise CliError("nothing to set: pass --shadow R and/or --canary W (0 to 1)", EXIT_USAGE)
    _, swap, store = _swap(args)
    shadow, canary, _ = _current(swap, store)
    state = (shadow if args.shadow is None else args.shadow,
             canary if args.canary is None else args.canary, False)  # fmt: skip
    return _change(args, "set", state)


def _cmd_promote(args: argparse.Namespace) -> int:
    return _change(args, "promote", (0.0, 1.0, True))


def _cmd_rollback(args: argparse.Namespace) -> int:
    return _change(args, "rollback", (0.0, 0.0, False))


def _cmd_status(args: argparse.Namespace) -> int:
    from serving.swap._events import swap_history

    _, swap, store = _swap(args)
    shadow, canary, promoted = _current(swap, store)
    print(f"swap {swap.production} -> {swap.candidate}: shadow {shadow:g}, canary {canary:g}, "
          f"promoted {promoted}")  # fmt: skip
    for e in swap_history(store, swap.production, swap.candidate):
        print(f"  {e.id}  {e.at:%Y-%m-%d %H:%M:%S}  {e.action:<8} by {e.by}: shadow "
              f"{e.shadow_rate:g}, canary {e.canary_weight:g}, promoted {e.promoted}")  # fmt: skip
    return 0
