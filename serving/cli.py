"""The ``gavel`` command line: one parser assembled from every package's commands.

Each package offers its subcommands through one function, ``commands(cli)``, named by
an entry point in the ``gavel.commands`` group (``serving`` first, then the others by
name). This module imports none of them: it only assembles what the entry points give
and owns the one mapping of failures to exit codes:

- a :class:`CliError` (an expected failure): its message, its code;
- a :class:`~serving.ConfigError`: the file, the field and the value, exit 2;
- the store unreachable: the driver's first line, exit 1;
- bad usage (argparse): exit 2.

None of them prints a stack trace.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from serving._errors import CliError

if TYPE_CHECKING:
    from serving.store import Store

DEFAULT_CONFIG = os.environ.get("GAVEL_CONFIG", "config/cpu.yaml")
"""The stack config every ``--config`` defaults to (``$GAVEL_CONFIG`` overrides it)."""
EXIT_USAGE = 2
ENTRY_POINT_GROUP = "gavel.commands"

Handler = Callable[[argparse.Namespace], int]

__all__ = [
    "DEFAULT_CONFIG",
    "EXIT_USAGE",
    "CliError",
    "CommandSet",
    "build_parser",
    "day_arg",
    "main",
    "open_store",
    "yesterday",
]


class CommandSet:
    """The top-level subcommands, handed to each package's ``commands`` function.

    :meth:`group` creates a command with actions (``gavel keys create``), or returns
    the one another package created, so that packages can add actions to a shared group
    (``gavel traffic export`` is serving's, ``gavel traffic replay`` the judges').
    """

    def __init__(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        self._sub = sub
        self._groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}

    def command(self, name: str, **kwargs: object) -> argparse.ArgumentParser:
        """A new top-level command without actions."""
        return self._sub.add_parser(name, **kwargs)  # type: ignore[arg-type]

    def group(
        self, name: str, *, help: str, config: bool = False
    ) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        """The actions of command ``name`` (created on first use, with ``--config`` if asked)."""
        if name not in self._groups:
            parser = self._sub.add_parser(name, help=help)
            if config:
                parser.add_argument("--config", default=DEFAULT_CONFIG)
            actions = parser.add_subparsers(dest=f"{name}_command", required=True, metavar="ACTION")
            self._groups[name] = actions
        return self._groups[name]


def day_arg(text: str) -> date:
    """argparse type of a UTC day, ``YYYY-MM-DD`` (shared by every ``--date``/``--since``)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from None


def yesterday() -> date:
    """Yesterday in UTC: the default day of daily commands."""
    return (datetime.now(UTC) - timedelta(days=1)).date()


def open_store(config_path: str) -> Store:
    """The store that the stack config at ``config_path`` names (a ConfigError if invalid)."""
    from serving._config import load_config
    from serving.store import Store, resolve_url

    config = load_config(config_path)
    return Store(resolve_url(config.gateway.store.url, base_dir=Path.cwd()))


def _package_commands() -> list[Callable[[CommandSet], None]]:
    found = sorted(
        entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name != "serving", e.name)
    )
    return [e.load() for e in found]


def build_parser() -> argparse.ArgumentParser:
    """The ``gavel`` argument parser with every package's subcommands."""
    parser = argparse.ArgumentParser(
        prog="gavel", description="Gavel: self-hosted inference and judge-serving stack."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cli = CommandSet(sub)
    for add in _package_commands():
        add(cli)
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
