"""The ``gavel`` command line: one parser assembled from every package's commands.

Each package offers its subcommands through one function, ``commands(cli)``, named by
an entry point in the ``gavel.commands`` group (``serving`` first, then the others by
name). This module imports none of them: it only assembles what the entry points give,
makes ``--config`` and ``--judging`` global options (:mod:`serving._commandline`), and
owns the one mapping of failures to exit codes:

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
from importlib.metadata import entry_points

from serving._commandline import (
    EXIT_USAGE,
    CliError,
    CommandSet,
    finish_parser,
    missing_config_hint,
    resolve_globals,
)

ENTRY_POINT_GROUP = "gavel.commands"

Handler = Callable[[argparse.Namespace], int]

__all__ = ["ENTRY_POINT_GROUP", "build_parser", "main"]


def _package_commands() -> list[Callable[[CommandSet], None]]:
    found = sorted(
        entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name != "serving", e.name)
    )
    return [e.load() for e in found]


def build_parser() -> argparse.ArgumentParser:
    """The ``gavel`` argument parser with every package's subcommands."""
    parser = argparse.ArgumentParser(
        prog="gavel",
        description="Gavel: self-hosted inference and judge-serving stack. --config FILE "
        "(or $GAVEL_CONFIG) may come before or after any command.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cli = CommandSet(sub)
    for add in _package_commands():
        add(cli)
    finish_parser(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gavel`` console script."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    handler: Handler = args.func
    from sqlalchemy.exc import SQLAlchemyError

    from serving._config import ConfigError
    from serving.store import SchemaOutOfDate

    try:
        resolve_globals(args)
        return handler(args)
    except CliError as exc:
        message, code = str(exc), exc.code
    except ConfigError as exc:
        message, code = str(exc), EXIT_USAGE
        if exc.message == "file not found" and exc.file == getattr(args, "config", None):
            message += missing_config_hint(args)
    except SchemaOutOfDate as exc:
        message, code = str(exc), 1
    except SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        message = f"the store is unreachable ({first}); check gateway.store.url"
        code = 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`gavel ... | head`): no traceback; stdout is pointed at
        # /dev/null so the interpreter's own flush at exit stays quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    print(f"gavel: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
