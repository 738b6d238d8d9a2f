"""``gavel store``: the store's schema (``upgrade``, ``current``), its lifecycle
(``purge``, ``erase``) and its backups (``backup``, ``restore``).

Every command that removes anything has ``--dry-run``, which changes nothing and says
what would go.
"""

from __future__ import annotations

import argparse
import getpass
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from serving._commandline import CliError, CommandSet, day_arg, open_store

if TYPE_CHECKING:
    from serving.store import PurgeReport


def add_store_commands(cli: CommandSet) -> None:
    """Register ``gavel store ...``."""
    st = cli.group("store", help="the store: schema, retention, erasure, backups")
    st.add_parser("current", help="the store's schema revision").set_defaults(func=cmd_current)
    st.add_parser("upgrade", help="upgrade the schema to this Gavel's").set_defaults(
        func=cmd_upgrade
    )
    pu = st.add_parser("purge", help="apply gateway.store.retention (blank text, delete rows)")
    pu.add_argument("--dry-run", action="store_true", help="count what would go; change nothing")
    pu.set_defaults(func=cmd_purge)
    er = st.add_parser("erase", help="remove one key's captured text (recorded)")
    er.add_argument("--key", required=True, help="the key's name")
    er.add_argument("--since", type=day_arg, help="only records of this UTC day or later")
    er.add_argument("--by", default=None, help="who asked (default: the user running it)")
    er.add_argument("--dry-run", action="store_true", help="count what would go; change nothing")
    er.set_defaults(func=cmd_erase)
    bk = st.add_parser("backup", help="write a consistent snapshot (while serving)")
    bk.add_argument("path", type=Path)
    bk.set_defaults(func=cmd_backup)
    rs = st.add_parser("restore", help="replace the store with a backup (stop serving first)")
    rs.add_argument("path", type=Path)
    rs.add_argument("--dry-run", action="store_true", help="say what the backup holds")
    rs.add_argument(
        "--force", action="store_true", help="restore even while this folder's stack serves"
    )
    rs.set_defaults(func=cmd_restore)


def cmd_current(args: argparse.Namespace) -> int:
    """Print the store's revision and whether it is this Gavel's."""
    state = open_store(args.config).schema()
    print(state.describe())
    return 0 if state.up_to_date else 1


def cmd_upgrade(args: argparse.Namespace) -> int:
    """Upgrade the schema (one migration per change, each in its own transaction)."""
    before, after = open_store(args.config).upgrade()
    if before.current == after.current:
        print(f"already at revision {after.current}; nothing to do")
    else:
        print(f"upgraded the store from revision {before.current or 'none'} to {after.current}")
    return 0


def _print_purge(report: PurgeReport) -> None:
    verb = "would remove" if report.dry_run else "removed"
    if not report.lines:
        print("no retention configured (gateway.store.retention): nothing is due")
    for ln in report.lines:
        what = "text of" if ln.what == "text" else "rows of"
        print(
            f"{ln.source:<10} {verb} {what} {ln.removed} record(s) before {ln.before}; "
            f"kept {ln.kept_labelled} labelled, {ln.kept_golden} golden"
        )


def cmd_purge(args: argparse.Namespace) -> int:
    """Apply the configured retention."""
    from serving._config import load_config
    from serving.store import Store, purge

    config = load_config(args.config)
    report = purge(
        Store(config.gateway.store.url),
        config.gateway.store.retention,
        today=datetime.now(UTC).date(),
        dry_run=args.dry_run,
    )
    _print_purge(report)
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    """Erase one key's text: in the store, and in this node's spool and quarantine."""
    from serving._config import load_config
    from serving.store import erase, erase_files

    by = args.by or os.environ.get("GAVEL_OPERATOR") or getpass.getuser()
    n = erase(open_store(args.config), args.key, since=args.since, by=by, dry_run=args.dry_run)
    since = f" since {args.since}" if args.since else ""
    if args.dry_run:
        print(f"would erase the text of {n} record(s) of key {args.key!r}{since}")
        return 0
    spool = Path(load_config(args.config).gateway.capture.spool_dir)
    files = erase_files(spool, args.key)
    print(f"erased the text of {n} record(s) of key {args.key!r}{since}; recorded for {by}")
    print(f"blanked {files} record(s) of the key in the spool and quarantine under {spool}")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    """Back the store up."""
    from serving.store import BackupError, backup

    try:
        backup(open_store(args.config), args.path)
    except BackupError as exc:
        raise CliError(str(exc)) from None
    print(f"backed up the store to {args.path}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """Restore a backup."""
    from serving.store import BackupError, describe, erasure_log, reapply_erasures, restore

    store = open_store(args.config)
    serving_at = _serving_url()
    if serving_at is not None and not args.dry_run and not args.force:
        raise CliError(
            f"the stack at {serving_at} is serving from this store: stop it first "
            "(`gavel down`), or pass --force"
        )
    try:
        held = describe(store, args.path)
        if args.dry_run:
            print(f"{args.path} holds {held}; without --dry-run it replaces the store's tables")
            return 0
        log = erasure_log(store)
        restore(store, args.path)
    except BackupError as exc:
        raise CliError(str(exc)) from None
    before, after = store.upgrade()  # an older backup is brought to this Gavel's schema
    again = reapply_erasures(store, log)  # erased text never comes back with a backup
    print(f"restored {args.path} ({held}); schema {before.current} -> {after.current}")
    print(f"re-applied {len(erasure_log(store))} erasure(s): {again} record(s) erased again")
    return 0


def _serving_url() -> str | None:
    """The endpoint of the stack this folder started, if it answers now."""
    import httpx

    from serving._stack import health_url, read_state

    state = read_state()
    if state is None:
        return None
    try:
        up = httpx.get(health_url(state.base_url), timeout=2).status_code == 200
    except httpx.HTTPError:
        return None
    return state.base_url if up else None
