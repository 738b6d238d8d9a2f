"""``gavel keys ...`` and ``gavel traffic export``: the gateway's store from the command line."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import get_args

from serving._config import StackConfig, load_config
from serving._errors import CliError
from serving._wire import Scope

EXIT_USAGE = 2
DEFAULT_CONFIG = "config/cpu.yaml"


def _scopes(text: str) -> list[str]:
    scopes = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in scopes if s not in get_args(Scope)]
    if not scopes or bad:
        raise argparse.ArgumentTypeError(
            f"scopes are a comma-separated subset of infer,judge,label,admin; got {text!r}"
        )
    return scopes


def day_arg(text: str) -> date:
    """argparse type of a UTC day, ``YYYY-MM-DD`` (shared by the ``gavel`` subcommands)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from None


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``keys`` and ``traffic`` on the ``gavel`` parser."""
    keys = sub.add_parser("keys", help="API keys of the gateway")
    keys.add_argument("--config", default=DEFAULT_CONFIG)
    ks = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
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

    traffic = sub.add_parser("traffic", help="captured production traffic")
    traffic.add_argument("--config", default=DEFAULT_CONFIG)
    ts = traffic.add_subparsers(dest="traffic_command", required=True, metavar="ACTION")
    export = ts.add_parser("export", help="write one day's captured traffic")
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    export.add_argument(
        "--date", type=day_arg, default=yesterday, help="UTC day (default: yesterday)"
    )
    export.add_argument("--format", choices=["jsonl", "parquet"], default="jsonl")
    export.add_argument("--out", help="output file (default: reports/traffic-DATE.FORMAT)")
    export.set_defaults(func=cmd_traffic_export)
    from judges._cli import add_replay_parser

    add_replay_parser(ts)


def _store(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from serving._store import Store, resolve_url

    config: StackConfig = load_config(args.config)  # a ConfigError is printed by main
    return Store(resolve_url(config.gateway.store.url, base_dir=Path.cwd()))


def cmd_keys_create(args: argparse.Namespace) -> int:
    """Create a key and print it once."""

    def go(a: argparse.Namespace) -> int:
        from pydantic import ValidationError

        from serving._keys import new_key

        try:
            plaintext, record = new_key(
                a.name, a.scopes, rpm=a.rpm, tpm=a.tpm, metadata_only=a.metadata_only
            )
        except ValidationError as exc:
            e = exc.errors()[0]
            raise CliError(f"{e['loc'][0]}: {e['msg']}", EXIT_USAGE) from None
        try:
            _store(a).add_key(record)
        except ValueError as exc:
            raise CliError(f"{exc}; pick another name or revoke it", EXIT_USAGE) from None
        limits = ", ".join(f"{k}={v}" for k, v in (("rpm", a.rpm), ("tpm", a.tpm)) if v) or "none"
        print(
            f"created key {a.name!r}: scopes {','.join(a.scopes)}; limits {limits}"
            f"{'; metadata only' if a.metadata_only else ''}"
        )
        print("store it now, it is not shown again:")
        print(plaintext)
        return 0

    return go(args)


def cmd_keys_list(args: argparse.Namespace) -> int:
    """List keys."""

    def go(a: argparse.Namespace) -> int:
        keys = _store(a).list_keys()
        if not keys:
            print("no keys; create one with `gavel keys create NAME`")
        for k in keys:
            state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
            print(
                f"{k.name:<24} {','.join(k.scopes):<18} rpm={k.rpm or '-':<6} "
                f"tpm={k.tpm or '-':<8} {state}{' metadata-only' if k.metadata_only else ''}"
            )
        return 0

    return go(args)


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    """Revoke a key."""

    def go(a: argparse.Namespace) -> int:
        if not _store(a).revoke_key(a.name):
            raise CliError(f"no active key named {a.name!r}; see `gavel keys list`")
        print(f"revoked {a.name!r}")
        return 0

    return go(args)


def cmd_traffic_export(args: argparse.Namespace) -> int:
    """Export one day."""

    def go(a: argparse.Namespace) -> int:
        records = _store(a).traffic_for_day(a.date)
        out = Path(a.out or f"reports/traffic-{a.date.isoformat()}.{a.format}")
        out.parent.mkdir(parents=True, exist_ok=True)
        if a.format == "jsonl":
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
        print(f"wrote {len(records)} records of {a.date.isoformat()} to {out}")
        return 0

    return go(args)
