"""Serving's commands: ``gavel model|config|serve|status|down`` (and, from
:mod:`serving._keys_commands`, ``keys`` and ``traffic export``; from
:mod:`serving._store_commands`, ``store``).

Every handler returns an exit code. Expected failures raise :class:`CliError` (or a
:class:`ConfigError`), which ``gavel``'s main prints as one line.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from serving._commandline import EXIT_USAGE, CliError, CommandSet, missing_config_hint
from serving._keys_commands import add_keys_commands
from serving._store_commands import add_store_commands
from serving.swap import commands as add_swap_commands

if TYPE_CHECKING:
    from serving._config import StackConfig


def commands(cli: CommandSet) -> None:
    """Register serving's commands: model, config, serve, status, down, keys, traffic export."""
    model_sub = cli.group("model", help="prepare model weights")
    prep = model_sub.add_parser("prepare", help="convert the shipped GGUF to a HF checkpoint")
    prep.add_argument(
        "--output", help="checkpoint folder (default: the config's app model source.path)"
    )
    prep.add_argument("--force", action="store_true", help="rebuild even if complete")
    prep.set_defaults(func=_cmd_model_prepare)

    cfg_sub = cli.group("config", help="validate the configs")
    check = cfg_sub.add_parser(
        "check", help="validate the stack config, its judging config and the criteria files"
    )
    check.add_argument(
        "config_file", nargs="?", metavar="CONFIG", help="stack config (same as --config)"
    )
    check.add_argument("--judging")
    check.add_argument("--sources", action="store_true", help="also check local model folders")
    check.set_defaults(func=_cmd_config_check, config_checks=cli.config_checks)

    serve = cli.command("serve", help="start the stack")
    serve.add_argument("--detach", action="store_true", help="return once the stack is ready")
    serve.add_argument("--timeout", type=float, default=900, help="seconds to wait for ready")
    serve.set_defaults(func=_cmd_serve)

    status = cli.command("status", help="report each model's state")
    status.set_defaults(func=_cmd_status)

    down = cli.command("down", help="stop a detached stack")
    down.set_defaults(func=_cmd_down)

    add_keys_commands(cli)
    add_store_commands(cli)
    add_swap_commands(cli)

    from serving.monitoring._cli import add_commands

    add_commands(cli)


def _load(path: str) -> tuple[StackConfig, Path]:
    """The config (its paths absolute), and the folder they were resolved against."""
    from serving._config import load_config

    return load_config(path), Path(path).resolve().parent  # a ConfigError: main prints it


def _state_path(config_file: str) -> Path:
    """Where the stack of ``config_file`` is recorded (the default place if it is invalid)."""
    from serving._config import ConfigError, load_config
    from serving._stack import state_file

    try:
        return state_file(load_config(config_file).state_dir)
    except ConfigError:
        return state_file()


def _cmd_model_prepare(args: argparse.Namespace) -> int:
    from serving._model_prep import PrepareError, prepare_model

    output = Path(args.output) if args.output else _default_model_folder(args.config)
    try:
        result = prepare_model(output, force=args.force)
    except PrepareError as exc:
        raise CliError(str(exc)) from None
    print(f"verified: greedy answer {result.answer!r}")
    print(f"model ready at {result.path}")
    return 0


def _default_model_folder(config_file: str) -> Path:
    """Where ``gavel model prepare`` writes: the app model's local folder in the config."""
    from serving._config import load_config

    app = load_config(config_file).model("app")
    if app.source.path is None:
        raise CliError(
            f"{config_file}: models: the app model loads from the hub ({app.source.hub}); "
            "there is nothing to prepare (or pass --output FOLDER)",
            EXIT_USAGE,
        )
    return Path(app.source.path)


def _check_stack(args: argparse.Namespace) -> tuple[str, list[str]]:
    from serving._builder import MissingModelError, check_engine_args, check_sources
    from serving._config import ConfigError

    try:
        config, base = _load(args.config)
    except ConfigError as exc:
        hint = missing_config_hint(args) if exc.message == "file not found" else ""
        return "", [f"{exc}{hint}"]
    errors = check_engine_args(config, config_file=args.config)
    if args.sources:
        try:
            check_sources(config, base_dir=base, config_file=args.config)
        except MissingModelError as exc:
            errors.append(str(exc))
    roles = ", ".join(f"{m.role}={m.model_id}" for m in config.models)
    return f"{args.config}: ok ({roles})", errors


def _cmd_config_check(args: argparse.Namespace) -> int:
    if args.config_file:
        args.config = args.config_file
    errors: list[str] = []
    for check in (_check_stack, *args.config_checks):
        if errors and not Path(args.config).is_file():
            break  # no stack config: the judging config it names is unknown
        summary, found = check(args)
        errors += found
        if summary and not found:
            print(summary)
    for line in errors:
        print(f"gavel: error: {line}", file=sys.stderr)
    return EXIT_USAGE if errors else 0


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _cmd_serve(args: argparse.Namespace) -> int:
    from serving._builder import MissingModelError, check_engine_args, check_sources
    from serving._stack import StackError, deploy, read_state, shutdown, state_file

    config, base = _load(args.config)
    _ready_store(config)
    try:
        check_sources(config, base_dir=base, config_file=args.config)
    except MissingModelError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    bad_args = check_engine_args(config, config_file=args.config)
    if bad_args:
        raise CliError(bad_args[0], EXIT_USAGE)
    if not config.gateway.auth.enabled:
        print(
            f"gavel: warning: {args.config}: gateway.auth.enabled is false; the endpoint "
            "accepts requests without an API key",
            file=sys.stderr,
        )
    signal.signal(signal.SIGTERM, _raise_interrupt)
    path = state_file(config.state_dir)
    config_file = str(Path(args.config).resolve())
    try:
        state = deploy(config, config_file=config_file, base_dir=base, timeout_s=args.timeout)
    except StackError as exc:
        shutdown(read_state(path), path=path, log=lambda _m: None)
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        print("interrupted during start-up; shutting down", file=sys.stderr)
        shutdown(read_state(path), path=path)
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
        shutdown(state, path=path)
    return 0


def _ready_store(config: StackConfig) -> None:
    """Refuse to serve on an out-of-date PostgreSQL schema (``SchemaOutOfDate``, printed by
    ``gavel``'s main as one line); create a new store, and upgrade the embedded SQLite one
    by itself, saying so (the store's own policy: :meth:`Database.ensure_schema`)."""
    from serving.store import Store

    Store(config.gateway.store.url).ensure_schema()


def _cmd_status(args: argparse.Namespace) -> int:
    import httpx

    from serving._stack import app_status, connect_ray, health_url, read_state

    state = read_state(_state_path(args.config))
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
        models = [d.name.split(":", 1)[1] for d in deployments
                  if d.name.startswith(("LLMServer:", "GavelLLMServer:"))]  # fmt: skip
        try:
            r = httpx.get(health_url(state.base_url), timeout=5)
            shown = "healthy" if r.status_code == 200 else f"HTTP {r.status_code}"
        except httpx.HTTPError as exc:
            shown = f"unreachable ({type(exc).__name__})"
        print(f"endpoint {state.base_url}: {shown}; serving {', '.join(models)}")
        _print_scrape_targets(state.config_file)
    return 0 if status == "RUNNING" else 1


def _print_scrape_targets(config_file: str) -> None:
    from serving._config import ConfigError, load_config
    from serving.monitoring._prometheus import scrape_targets

    try:
        config = load_config(config_file)
    except ConfigError as exc:
        print(f"scrape targets: unknown ({exc})")
        return
    for t in scrape_targets(config):
        print(f"scrape target {t.job}: {t.url}")


def _cmd_down(args: argparse.Namespace) -> int:
    from serving._stack import read_state, shutdown

    path = _state_path(args.config)
    shutdown(read_state(path), path=path)
    return 0
