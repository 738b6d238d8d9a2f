"""The ``gavel`` command line.

Every handler returns an exit code. Expected failures (bad config, missing model,
unreachable stack) print one line to stderr saying what to do next and exit
non-zero; config errors exit 2. None of them prints a stack trace.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from serving._errors import CliError

DEFAULT_CONFIG = "config/cpu.yaml"
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


def _load(path: str) -> tuple[object, Path]:
    from serving._config import ConfigError, load_config

    try:
        return load_config(path), Path.cwd()
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def _cmd_model_prepare(args: argparse.Namespace) -> int:
    from serving._model_prep import PrepareError, prepare_model

    try:
        result = prepare_model(Path(args.output), force=args.force)
    except PrepareError as exc:
        raise CliError(str(exc)) from None
    print(f"verified: greedy answer {result.answer!r}")
    print(f"model ready at {result.path}")
    return 0


def _cmd_config_check(args: argparse.Namespace) -> int:
    from serving._builder import MissingModelError, check_sources
    from serving._config import StackConfig

    config, base = _load(args.config)
    assert isinstance(config, StackConfig)
    if args.sources:
        try:
            check_sources(config, base_dir=base, config_file=args.config)
        except MissingModelError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
    roles = ", ".join(f"{m.role}={m.model_id}" for m in config.models)
    print(f"{args.config}: ok ({roles})")
    return 0


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _cmd_serve(args: argparse.Namespace) -> int:
    from serving._builder import MissingModelError, check_sources
    from serving._config import StackConfig
    from serving._stack import StackError, deploy, read_state, shutdown

    config, base = _load(args.config)
    assert isinstance(config, StackConfig)
    try:
        check_sources(config, base_dir=base, config_file=args.config)
    except MissingModelError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if not config.gateway.auth.enabled:
        print(
            f"gavel: warning: {args.config}: gateway.auth.enabled is false; the endpoint "
            "accepts requests without an API key",
            file=sys.stderr,
        )
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        state = deploy(config, config_file=args.config, base_dir=base, timeout_s=args.timeout)
    except StackError as exc:
        shutdown(read_state(), log=lambda _m: None)
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        print("interrupted during start-up; shutting down", file=sys.stderr)
        shutdown(read_state())
        return 130
    models = ", ".join(m.model_id for m in config.models)
    print(f"Gavel is ready: {state.base_url} (models: {models})", flush=True)
    if args.detach:
        print("running in the background; `gavel status` reports it, `gavel down` stops it")
        return 0
    print("press Ctrl-C to stop", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nshutting down", flush=True)
        shutdown(state)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    import httpx

    from serving._stack import app_status, connect_ray, health_url, read_state

    state = read_state()
    app_name = state.app_name if state else "gavel"
    if not connect_ray(state.ray_address if state else None):
        raise CliError("no Gavel stack is running; start one with `gavel serve --detach`")
    status, deployments = app_status(app_name)
    print(f"app {app_name}: {status}")
    for d in deployments:
        replicas = ", ".join(f"{k.lower()}={v}" for k, v in d.replicas.items()) or "-"
        print(f"  {d.name:<32} {d.status:<12} replicas: {replicas}")
        if d.message and d.status != "HEALTHY":
            print(f"    {d.message.splitlines()[0]}")
    if state is not None:
        models = [d.name.split(":", 1)[1] for d in deployments if d.name.startswith("LLMServer:")]
        try:
            r = httpx.get(health_url(state.base_url), timeout=5)
            shown = "healthy" if r.status_code == 200 else f"HTTP {r.status_code}"
        except httpx.HTTPError as exc:
            shown = f"unreachable ({type(exc).__name__})"
        print(f"endpoint {state.base_url}: {shown}; serving {', '.join(models)}")
    return 0 if status == "RUNNING" else 1


def _cmd_down(args: argparse.Namespace) -> int:
    from serving._stack import read_state, shutdown

    shutdown(read_state())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``gavel`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="gavel", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    model = sub.add_parser("model", help="prepare model weights")
    model_sub = model.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    prep = model_sub.add_parser("prepare", help="convert the shipped GGUF to a HF checkpoint")
    prep.add_argument("--output", default="models/SmolLM2-135M-Instruct")
    prep.add_argument("--force", action="store_true", help="rebuild even if complete")
    prep.set_defaults(func=_cmd_model_prepare)

    cfg = sub.add_parser("config", help="validate a stack config")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = cfg_sub.add_parser("check", help="validate a config file")
    check.add_argument("config", nargs="?", default=DEFAULT_CONFIG)
    check.add_argument("--sources", action="store_true", help="also check local model folders")
    check.set_defaults(func=_cmd_config_check)

    serve = sub.add_parser("serve", help="start the stack")
    serve.add_argument("--config", default=DEFAULT_CONFIG)
    serve.add_argument("--detach", action="store_true", help="return once the stack is ready")
    serve.add_argument("--timeout", type=float, default=900, help="seconds to wait for ready")
    serve.set_defaults(func=_cmd_serve)

    status = sub.add_parser("status", help="report each model's state")
    status.set_defaults(func=_cmd_status)

    down = sub.add_parser("down", help="stop a detached stack")
    down.set_defaults(func=_cmd_down)

    from judges._cli import add_parsers as add_judges
    from loadtest._cli import add_parser as add_loadtest
    from serving._cli_gateway import add_parsers as add_gateway

    add_gateway(sub)
    add_judges(sub)
    add_loadtest(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gavel`` console script."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    handler: Handler = args.func
    from sqlalchemy.exc import SQLAlchemyError

    from serving._config import ConfigError

    try:
        return handler(args)
    except CliError as exc:
        message, code = str(exc), exc.code
    except ConfigError as exc:
        message, code = str(exc), EXIT_USAGE
    except SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        message = f"the store is unreachable ({first}); check gateway.store.url"
        code = 1
    except KeyboardInterrupt:
        return 130
    print(f"gavel: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
