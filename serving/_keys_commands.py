"""Serving's data commands: ``gavel keys create|list|revoke`` and ``gavel traffic export``.

Every handler returns an exit code; expected failures raise :class:`CliError`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from serving._commandline import EXIT_USAGE, CliError, CommandSet, day_arg, open_store, yesterday
from serving._wire import Scope

if TYPE_CHECKING:
    from serving.store import Store


def add_keys_commands(cli: CommandSet) -> None:
    """Register ``gavel keys ...`` and ``gavel traffic export``."""
    ks = cli.group("keys", help="API keys of the gateway")
    create = ks.add_parser("create", help="create a key; prints it once, as the last line")
    create.add_argument("name")
    create.add_argument("--scopes", type=_scopes, default=["infer"], help="infer,judge,label,admin")
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--tpm", type=int, help="tokens (prompt + completion) per minute")
    create.add_argument(
        "--metadata-only", action="store_true", help="capture no prompt or response text"
    )
    create.add_argument("--save", type=Path, help="also write the key to this file (mode 0600)")
    create.add_argument(
        "--reuse",
        action="store_true",
        help="with --save: if that file holds an active key of this store, print it instead",
    )
    create.set_defaults(func=cmd_keys_create)
    ks.add_parser("list", help="list keys (never the keys themselves)").set_defaults(
        func=cmd_keys_list
    )
    revoke = ks.add_parser("revoke", help="revoke a key by name")
    revoke.add_argument("name")
    revoke.set_defaults(func=cmd_keys_revoke)

    ts = cli.group("traffic", help="captured production traffic")
    export = ts.add_parser("export", help="write one day's captured traffic")
    export.add_argument(
        "--date", type=day_arg, default=yesterday(), help="UTC day (default: yesterday)"
    )
    export.add_argument("--format", choices=["jsonl", "parquet"], default="jsonl")
    export.add_argument("--out", help="output file (default: reports/traffic-DATE.FORMAT)")
    export.set_defaults(func=cmd_traffic_export)


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

    store = _store(args)
    if args.reuse and args.save is None:
        raise CliError("--reuse needs --save FILE (the file the key is kept in)", EXIT_USAGE)
    if args.reuse and (kept := _saved_key(args.save, store, args.name)) is not None:
        print(f"reusing key {args.name!r} saved in {args.save}")
        print(kept)
        return 0
    try:
        plaintext, record = new_key(
            args.name, args.scopes, rpm=args.rpm, tpm=args.tpm, metadata_only=args.metadata_only
        )
    except ValidationError as exc:
        e = exc.errors()[0]
        raise CliError(f"{e['loc'][0]}: {e['msg']}", EXIT_USAGE) from None
    try:
        store.add_key(record)
    except ValueError as exc:
        raise CliError(
            f"{exc}; pick another name (a revoked key's name stays taken)", EXIT_USAGE
        ) from None
    if args.save is not None:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.touch(mode=0o600)
        args.save.chmod(0o600)
        args.save.write_text(plaintext + "\n")
    limits = ", ".join(f"{k}={v}" for k, v in (("rpm", args.rpm), ("tpm", args.tpm)) if v) or "none"
    print(
        f"created key {args.name!r}: scopes {','.join(args.scopes)}; limits {limits}"
        f"{'; metadata only' if args.metadata_only else ''}"
    )
    print(f"saved to {args.save}" if args.save else "store it now, it is not shown again:")
    print(plaintext)
    return 0


def _saved_key(path: Path, store: Store, name: str) -> str | None:
    """The key saved in ``path`` if it is ``name``'s and still active in ``store``."""
    from serving._keys import hash_key

    try:
        plaintext = path.read_text().strip()
    except OSError:
        return None
    key = store.key_by_hash(hash_key(plaintext)) if plaintext else None
    if key is None or key.name != name or key.revoked_at is not None:
        return None
    return plaintext


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


def _flat_row(record: Any) -> dict[str, Any]:
    """A record as one parquet row: nested objects as JSON strings (one stable schema)."""
    row: dict[str, Any] = record.model_dump(mode="json")
    row["request"] = json.dumps(row["request"], sort_keys=True)
    row["metadata"] = json.dumps(row["metadata"], sort_keys=True)
    return row


def cmd_traffic_export(args: argparse.Namespace) -> int:
    """Export one day. A record that cannot be written (a body nested deeper than the
    serializer goes, say) is skipped, counted and named; the rest are exported."""

    records = _store(args).traffic_for_day(args.date)
    out = Path(args.out or f"reports/traffic-{args.date.isoformat()}.{args.format}")
    out.parent.mkdir(parents=True, exist_ok=True)
    written: list[Any] = []
    skipped: list[str] = []
    for r in records:
        try:
            written.append(r.model_dump_json() if args.format == "jsonl" else _flat_row(r))
        except (ValueError, RecursionError) as exc:  # pydantic's errors are ValueErrors
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            skipped.append(f"{r.request_id} ({reason[:80]})")
    if args.format == "jsonl":
        out.write_text("".join(line + "\n" for line in written))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            pq.write_table(pa.Table.from_pylist(written), out)
        except (pa.ArrowException, OSError) as exc:
            raise CliError(f"cannot write {out}: {exc}; try --format jsonl") from None
    print(f"wrote {len(written)} records of {args.date.isoformat()} to {out}")
    if skipped:
        print(
            f"skipped {len(skipped)} record(s) that cannot be exported: " + ", ".join(skipped),
            file=sys.stderr,
        )
    return 0
