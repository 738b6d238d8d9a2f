"""Serving's data commands: ``gavel keys create|list|rotate|revoke`` and
``gavel traffic export``.

Every handler returns an exit code; expected failures raise :class:`CliError`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from serving._commandline import (
    EXIT_USAGE,
    CliError,
    CommandSet,
    day_arg,
    duration_arg,
    instant_arg,
    open_store,
    yesterday,
)
from serving._wire import MAX_LIMIT, Scope

if TYPE_CHECKING:
    from serving.store import Store


def add_keys_commands(cli: CommandSet) -> None:
    """Register ``gavel keys ...`` and ``gavel traffic export``."""
    ks = cli.group("keys", help="API keys of the gateway")
    create = ks.add_parser("create", help="create a key; prints it once, as the last line")
    create.add_argument("name")
    create.add_argument("--scopes", type=_scopes, default=["infer"], help=",".join(get_args(Scope)))
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--tpm", type=int, help="tokens (prompt + completion) per minute")
    create.add_argument(
        "--metadata-only", action="store_true", help="capture no prompt or response text"
    )
    _budget_options(create)
    create.add_argument(
        "--expires", type=instant_arg, help="when it stops working: 30d, YYYY-MM-DD or ISO time"
    )
    create.add_argument("--save", type=Path, help="also write the key to this file (mode 0600)")
    create.add_argument(
        "--reuse",
        action="store_true",
        help="with --save: if that file holds an active key of this store, print it instead",
    )
    create.set_defaults(func=cmd_keys_create)
    ls = ks.add_parser("list", help="list keys (never the keys themselves)")
    ls.add_argument("--json", action="store_true", help="one JSON array, for scripts")
    ls.set_defaults(func=cmd_keys_list)
    upd = ks.add_parser("update", help="change a key's limits or budgets (0 removes one)")
    upd.add_argument("name")
    upd.add_argument("--rpm", type=_limit, help="requests per minute (0: none)")
    upd.add_argument("--tpm", type=_limit, help="tokens per minute (0: none)")
    _budget_options(upd, removable=True)
    upd.set_defaults(func=cmd_keys_update)
    rotate = ks.add_parser(
        "rotate", help="give a key a new secret; the old one works until --grace ends"
    )
    rotate.add_argument("name")
    rotate.add_argument(
        "--grace", type=duration_arg, default=duration_arg("24h"), help="default 24h; 0 ends it now"
    )
    rotate.add_argument("--save", type=Path, help="also write the new key to this file (0600)")
    rotate.set_defaults(func=cmd_keys_rotate)
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


def _usd(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value >= 0 and value < 1e9):
        raise argparse.ArgumentTypeError(
            f"expected an amount of USD such as 5 or 0.50; got {text!r}"
        )
    return value


def _limit(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number (0: no limit); got {text!r}")
    if int(text) > MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"at most {MAX_LIMIT}; got {text}")
    return int(text)


def _budget_options(parser: argparse.ArgumentParser, *, removable: bool = False) -> None:
    tail = " (0: none)" if removable else ""
    parser.add_argument("--budget-usd-day", type=_usd, help=f"USD per UTC day{tail}")
    parser.add_argument("--budget-usd-month", type=_usd, help=f"USD per UTC month{tail}")


def _scopes(text: str) -> list[str]:
    scopes = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in scopes if s not in get_args(Scope)]
    if not scopes or bad:
        raise argparse.ArgumentTypeError(
            f"scopes are a comma-separated subset of {','.join(get_args(Scope))}; got {text!r}"
        )
    return scopes


def _store(args: argparse.Namespace) -> Store:
    return open_store(args.config)  # a ConfigError is printed by main


def cmd_keys_create(args: argparse.Namespace) -> int:
    """Create a key and print it once."""

    from pydantic import ValidationError

    from serving._keys import new_key
    from serving._wire import ApiKey

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
        record = ApiKey.model_validate(
            {**record.model_dump(), "expires_at": args.expires,
             "budget_usd_day": args.budget_usd_day, "budget_usd_month": args.budget_usd_month}
        )  # fmt: skip
    except ValidationError as exc:
        e = exc.errors()[0]
        raise CliError(f"{e['loc'][0]}: {e['msg']}", EXIT_USAGE) from None
    if args.expires is not None and args.expires <= record.created_at:
        raise CliError(f"--expires {args.expires:%Y-%m-%d %H:%M} is in the past", EXIT_USAGE)
    try:
        replaced = store.add_key(record)
    except ValueError as exc:
        raise CliError(
            f"{exc}; pick another name, or `gavel keys rotate {args.name}` for a new secret",
            EXIT_USAGE,
        ) from None
    if replaced:
        print(f"the revoked key {args.name!r} is kept as {replaced!r}; the new key takes its name")
    if args.save is not None:
        _save(args.save, plaintext)
    limits = _limits_text(record)
    expiry = f"; expires {args.expires:%Y-%m-%d %H:%M} UTC" if args.expires else ""
    print(
        f"created key {args.name!r}: scopes {','.join(args.scopes)}; limits {limits}"
        f"{'; metadata only' if args.metadata_only else ''}{expiry}"
    )
    print(f"saved to {args.save}" if args.save else "store it now, it is not shown again:")
    print(plaintext)
    return 0


def _limits_text(k: Any) -> str:
    named = (("rpm", k.rpm), ("tpm", k.tpm), ("USD/day", k.budget_usd_day),
             ("USD/month", k.budget_usd_month))  # fmt: skip
    return ", ".join(f"{n}={v:g}" for n, v in named if v) or "none"


def cmd_keys_update(args: argparse.Namespace) -> int:
    """Change a key's limits and budgets (0 removes one; an omitted option is kept)."""
    changes = {
        field: (None if value == 0 else value)
        for field, value in (("rpm", args.rpm), ("tpm", args.tpm),
                             ("budget_usd_day", args.budget_usd_day),
                             ("budget_usd_month", args.budget_usd_month))
        if value is not None
    }  # fmt: skip
    if not changes:
        raise CliError("nothing to change: pass --rpm, --tpm, --budget-usd-day or "
                       "--budget-usd-month", EXIT_USAGE)  # fmt: skip
    store = _store(args)
    updated = store.update_key(args.name, changes)
    if updated is None:
        raise CliError(f"no active key named {args.name!r}; see `gavel keys list`")
    print(f"updated {args.name!r}: limits {_limits_text(updated)} (within the key cache's TTL)")
    return 0


def _save(path: Path, plaintext: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(plaintext + "\n")


def _saved_key(path: Path, store: Store, name: str) -> str | None:
    """The key saved in ``path`` if it is ``name``'s and still active in ``store``."""
    from serving._keys import hash_key

    try:
        plaintext = path.read_text().strip()
    except OSError:
        return None
    key = store.key_by_hash(hash_key(plaintext)) if plaintext else None
    if key is None or key.name != name or key.refusal(key.key_hash, _now()) is not None:
        return None
    if key.key_hash != hash_key(plaintext):
        return None  # the secret before a rotation: not reused
    return plaintext


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _state(k: Any) -> str:
    """active, revoked, expired or rotating (the old secret still in its grace)."""
    now = _now()
    if k.revoked_at is not None:
        return "revoked"
    if k.expires_at is not None and now >= k.expires_at:
        return "expired"
    if k.previous_valid_until is not None and now < k.previous_valid_until:
        return "rotating"
    return "active"


def cmd_keys_list(args: argparse.Namespace) -> int:
    """List keys (as a table, or JSON without any hash)."""

    keys = _store(args).list_keys()
    if args.json:
        rows = [
            {
                "state": _state(k),
                **k.model_dump(mode="json", exclude={"key_hash", "previous_key_hash"}),
            }
            for k in keys
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not keys:
        print("no keys; create one with `gavel keys create NAME`")
    for k in keys:
        when = k.revoked_at or k.expires_at or k.previous_valid_until
        state = _state(k) + (f" {when:%Y-%m-%d %H:%M}" if when else "")
        used = f"used {k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never used"
        print(
            f"{k.name:<24} {','.join(k.scopes):<18} rpm={k.rpm or '-':<6} "
            f"tpm={k.tpm or '-':<8} {state:<22} {used}"
            f"{' metadata-only' if k.metadata_only else ''}"
        )
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    """Give a key a new secret; print it once."""
    import secrets

    from serving._keys import KEY_PREFIX, hash_key

    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    until = _now() + args.grace
    if not _store(args).rotate_key(args.name, hash_key(plaintext), previous_valid_until=until):
        raise CliError(f"no active key named {args.name!r}; see `gavel keys list`")
    if args.save is not None:
        _save(args.save, plaintext)
    print(f"rotated {args.name!r}: the old secret works until {until:%Y-%m-%d %H:%M:%S} UTC")
    print(f"saved to {args.save}" if args.save else "store it now, it is not shown again:")
    print(plaintext)
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
    # Captured text is private: the file is the user's alone (0600) before it holds any.
    os.close(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    out.chmod(0o600)
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
