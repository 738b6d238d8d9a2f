"""Serving's commands: ``gavel model|config|serve|status|down|keys|traffic export``.

Every handler returns an exit code. Expected failures raise :class:`CliError` (or a
:class:`ConfigError`), which ``gavel``'s main prints as one line.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, get_args

from serving._errors import CliError
from serving._wire import Scope
from serving.cli import DEFAULT_CONFIG, EXIT_USAGE, CommandSet, day_arg, open_store, yesterday

if TYPE_CHECKING:
    from serving._config import StackConfig
    from serving.store import Store


def commands(cli: CommandSet) -> None:
    """Register serving's commands: model, config, serve, status, down, keys, traffic export."""
    model_sub = cli.group("model", help="prepare model weights")
    prep = model_sub.add_parser("prepare", help="convert the shipped GGUF to a HF checkpoint")
    prep.add_argument("--output", default="models/SmolLM2-135M-Instruct")
    prep.add_argument("--force", action="store_true", help="rebuild even if complete")
    prep.set_defaults(func=_cmd_model_prepare)

    cfg_sub = cli.group("config", help="validate a stack config")
    check = cfg_sub.add_parser("check", help="validate a config file")
    check.add_argument("config", nargs="?", default=DEFAULT_CONFIG)
    check.add_argument("--sources", action="store_true", help="also check local model folders")
    check.set_defaults(func=_cmd_config_check)

    serve = cli.command("serve", help="start the stack")
    serve.add_argument("--config", default=DEFAULT_CONFIG)
    serve.add_argument("--detach", action="store_true", help="return once the stack is ready")
    serve.add_argument("--timeout", type=float, default=900, help="seconds to wait for ready")
    serve.set_defaults(func=_cmd_serve)

    status = cli.command("status", help="report each model's state")
    status.set_defaults(func=_cmd_status)

    down = cli.command("down", help="stop a detached stack")
    down.set_defaults(func=_cmd_down)

    ks = cli.group("keys", help="API keys of the gateway", config=True)
    create = ks.add_parser("create", help="create a key; prints it once, as the last line")
    create.add_argument("name")
    create.add_argument("--scopes", type=_scopes, default=["infer"], help="infer,judge,label,admin")
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--tpm", type=int, help="tokens (prompt + completion) per minute")
    create.add_argument(
        "--metadata-only", action="store_true", help="capture no prompt or response text"
    )
    create.set_defaults(func=cmd_keys_create)
    ks.add_parser("list", help="list keys (never the keys themselves)").set_defaults(
        func=cmd_keys_list
    )
    revoke = ks.add_parser("revoke", help="revoke a key by name")
    revoke.add_argument("name")
    revoke.set_defaults(func=cmd_keys_revoke)

    ts = cli.group("traffic", help="captured production traffic", config=True)
    export = ts.add_parser("export", help="write one day's captured traffic")
    export.add_argument(
        "--date", type=day_arg, default=yesterday(), help="UTC day (default: yesterday)"
    )
    export.add_argument("--format", choices=["jsonl", "parquet"], default="jsonl")
    export.add_argument("--out", help="output file (default: reports/traffic-DATE.FORMAT)")
    export.set_defaults(func=cmd_traffic_export)

    from serving.monitoring._cli import add_commands

    add_commands(cli)


def _load(path: str) -> tuple[StackConfig, Path]:
    from serving._config import load_config

    return load_config(path), Path.cwd()  # a ConfigError is printed by main (exit 2)


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

    config, base = _load(args.config)
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
    from serving._stack import StackError, deploy, read_state, shutdown

    config, base = _load(args.config)
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

    shutdown(read_state())
    return 0


def _scopes(text: str) -> list[str]:
    scopes = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in scopes if s not in get_args(Scope)]
    if not scopes or bad:
        raise argparse.ArgumentTypeError(
            f"scopes are a comma-separated subset of infer,judge,label,admin; got {text!r}"
        )
    return scopes


def _store(args: argparse.Namespace) -> Store:
    return open_store(args.config)  # a ConfigError is printed by main


def cmd_keys_create(args: argparse.Namespace) -> int:
    """Create a key and print it once."""

    from pydantic import ValidationError

    from serving._keys import new_key

    try:
        plaintext, record = new_key(
            args.name, args.scopes, rpm=args.rpm, tpm=args.tpm, metadata_only=args.metadata_only
        )
    except ValidationError as exc:
        e = exc.errors()[0]
        raise CliError(f"{e['loc'][0]}: {e['msg']}", EXIT_USAGE) from None
    try:
        _store(args).add_key(record)
    except ValueError as exc:
        raise CliError(f"{exc}; pick another name or revoke it", EXIT_USAGE) from None
    limits = ", ".join(f"{k}={v}" for k, v in (("rpm", args.rpm), ("tpm", args.tpm)) if v) or "none"
    print(
        f"created key {args.name!r}: scopes {','.join(args.scopes)}; limits {limits}"
        f"{'; metadata only' if args.metadata_only else ''}"
    )
    print("store it now, it is not shown again:")
    print(plaintext)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    """List keys."""

    keys = _store(args).list_keys()
    if not keys:
        print("no keys; create one with `gavel keys create NAME`")
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
        print(
            f"{k.name:<24} {','.join(k.scopes):<18} rpm={k.rpm or '-':<6} "
            f"tpm={k.tpm or '-':<8} {state}{' metadata-only' if k.metadata_only else ''}"
        )
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    """Revoke a key."""

    if not _store(args).revoke_key(args.name):
        raise CliError(f"no active key named {args.name!r}; see `gavel keys list`")
    print(f"revoked {args.name!r}")
    return 0


def cmd_traffic_export(args: argparse.Namespace) -> int:
    """Export one day."""

    records = _store(args).traffic_for_day(args.date)
    out = Path(args.out or f"reports/traffic-{args.date.isoformat()}.{args.format}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.format == "jsonl":
        out.write_text("".join(r.model_dump_json() + "\n" for r in records))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [r.model_dump(mode="json") for r in records]
        for row in rows:  # nested objects as JSON strings: one flat, stable schema
            row["request"] = json.dumps(row["request"], sort_keys=True)
            row["metadata"] = json.dumps(row["metadata"], sort_keys=True)
        try:
            pq.write_table(pa.Table.from_pylist(rows), out)
        except (pa.ArrowException, OSError) as exc:
            raise CliError(f"cannot write {out}: {exc}; try --format jsonl") from None
    print(f"wrote {len(records)} records of {args.date.isoformat()} to {out}")
    return 0
