"""What every ``gavel`` command shares: the command set packages add to, the global
options, the day type, and how the stack config is found.

The grammar is the same for every command:

- ``--config FILE`` (or ``$GAVEL_CONFIG``) may come before or after any command and
  action: ``gavel --config X keys create N``, ``gavel keys --config X create N`` and
  ``gavel keys create N --config X`` are the same call;
- without either, the config is ``config/cpu.yaml`` in the working directory or the
  nearest parent folder that has one (so ``gavel`` works from anywhere in a checkout);
- ``--judging FILE`` (where a command takes it) defaults to the stack config's
  ``judging`` field, relative to the stack config's folder;
- ``--date`` and ``--since`` take ``YYYY-MM-DD``, ``today`` or ``yesterday`` (UTC);
  durations are ``90s``, ``30m``, ``24h`` or ``7d``; instants (``--expires``) a duration
  from now or a day or time.

Packages register through :class:`CommandSet`; :func:`finish_parser` then makes the
global options uniform; :func:`resolve_globals` fills them in before a handler runs.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from serving._errors import CliError

if TYPE_CHECKING:
    from serving.store import Store

CONFIG_ENV = "GAVEL_CONFIG"
DEFAULT_CONFIG_NAME = "config/cpu.yaml"
"""Looked for in the working directory and its parents when neither ``--config`` nor
``$GAVEL_CONFIG`` names a stack config."""
EXIT_USAGE = 2

_GLOBAL_HELP = {
    "--config": f"stack config (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG_NAME} here or above)",
    "--judging": "judging config (default: the stack config's `judging` field)",
}

SubParsers = argparse._SubParsersAction  # the type argparse gives no public name
ConfigCheck = Callable[[argparse.Namespace], tuple[str, list[str]]]
"""A package's part of ``gavel config check``: given the parsed arguments (``config`` and
``judging`` filled in), a one-line summary of what it checked and one line per error."""


def default_config() -> str:
    """The stack config a command uses when none is named: ``$GAVEL_CONFIG``, else the
    nearest ``config/cpu.yaml`` from the working directory up, else that relative name
    (whose "file not found" then says what to pass)."""
    env = os.environ.get(CONFIG_ENV)
    if env:
        return env
    cwd = Path.cwd()
    for folder in (cwd, *cwd.parents):
        candidate = folder / DEFAULT_CONFIG_NAME
        if candidate.is_file():
            return str(candidate if folder != cwd else Path(DEFAULT_CONFIG_NAME))
    return DEFAULT_CONFIG_NAME


class CommandSet:
    """The top-level subcommands, handed to each package's ``commands`` function.

    :meth:`group` declares a command with actions (``gavel keys create``), once, with its
    help; a package that adds actions to a group another package declared asks for it by
    name alone (``gavel traffic export`` is serving's, ``gavel traffic replay`` the
    judges'; ``gavel swap set`` is serving's, ``gavel swap report`` the evals').
    Every command and action accepts ``--config`` (added by :func:`finish_parser`).
    """

    def __init__(self, sub: SubParsers[argparse.ArgumentParser]) -> None:
        self._sub = sub
        self._groups: dict[str, SubParsers[argparse.ArgumentParser]] = {}
        self.config_checks: list[ConfigCheck] = []
        """What ``gavel config check`` runs after the stack config's own check; packages
        append theirs (the judges check ``judging.yaml`` and the criteria files)."""

    def command(self, name: str, **kwargs: object) -> argparse.ArgumentParser:
        """A new top-level command without actions."""
        return self._sub.add_parser(name, **kwargs)  # type: ignore[arg-type]

    def group(self, name: str, *, help: str | None = None) -> SubParsers[argparse.ArgumentParser]:
        """The actions of command ``name``: declared with ``help`` (exactly once), or, with
        no ``help``, the group as declared by the package that owns it."""
        if help is not None:
            if name in self._groups:
                raise ValueError(f"gavel {name}: the group is declared twice")
            parser = self._sub.add_parser(name, help=help)
            actions = parser.add_subparsers(dest=f"{name}_command", required=True, metavar="ACTION")
            self._groups[name] = actions
        if name not in self._groups:
            raise ValueError(f"gavel {name}: no package declared this group (declare it first)")
        return self._groups[name]


def walk_parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser under ``parser`` with its command path, depth first, in order."""
    out = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += walk_parsers(sub, (*path, name))
    return out


def finish_parser(parser: argparse.ArgumentParser) -> None:
    """Make ``--config`` (everywhere) and ``--judging`` (where a command has it) global
    options: accepted at every level, and never overwritten by a level's default."""
    for _, p in walk_parsers(parser):
        have = {opt: a for a in p._actions for opt in a.option_strings}
        for opt, help_text in _GLOBAL_HELP.items():
            if opt in have:
                have[opt].default = argparse.SUPPRESS
                have[opt].help = help_text
                p.set_defaults(**{f"_takes{opt[1:].replace('-', '_')}": True})
            elif opt == "--config":
                p.add_argument(opt, default=argparse.SUPPRESS, help=help_text)


def resolve_globals(args: argparse.Namespace) -> None:
    """Fill in the global options a command line left out (see the module's grammar)."""
    args.config_defaulted = getattr(args, "config", None) is None
    if args.config_defaulted:
        args.config = default_config()
    if getattr(args, "_takes_judging", False) and getattr(args, "judging", None) is None:
        from serving._config import ConfigError, load_config

        try:
            args.judging = load_config(args.config).judging
        except ConfigError:  # the command reports the stack config's error itself
            args.judging = str(Path(args.config).resolve().parent / "judging.yaml")


def missing_config_hint(args: argparse.Namespace) -> str:
    """What to add to "file not found" when the stack config was not named on purpose."""
    if not getattr(args, "config_defaulted", False):
        return ""
    return (
        f"; pass --config FILE or set {CONFIG_ENV} (no {DEFAULT_CONFIG_NAME} in this "
        "folder or above it)"
    )


def day_arg(text: str) -> date:
    """argparse type of a UTC day: ``YYYY-MM-DD``, ``today`` or ``yesterday``."""
    now = datetime.now(UTC).date()
    named = {"today": now, "yesterday": now - timedelta(days=1)}
    if text in named:
        return named[text]
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected YYYY-MM-DD, today or yesterday; got {text!r}"
        ) from None


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_arg(text: str) -> timedelta:
    """argparse type of a duration: ``0``, or a whole number and a unit (``90s``, ``30m``,
    ``24h``, ``7d``)."""
    number, unit = text[:-1], text[-1:]
    if text == "0":
        return timedelta(0)
    if unit in _UNITS and number.isdigit():
        return timedelta(seconds=int(number) * _UNITS[unit])
    raise argparse.ArgumentTypeError(
        f"expected a duration such as 90s, 30m, 24h or 7d; got {text!r}"
    )


def instant_arg(text: str) -> datetime:
    """argparse type of an instant: a duration from now (``30d``), a UTC day
    (``YYYY-MM-DD``, its start) or an ISO 8601 time (UTC unless it names a zone)."""
    try:
        return datetime.now(UTC) + duration_arg(text)
    except argparse.ArgumentTypeError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a duration from now (30d), YYYY-MM-DD or an ISO time; got {text!r}"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def yesterday() -> date:
    """Yesterday in UTC: the default day of daily commands."""
    return (datetime.now(UTC) - timedelta(days=1)).date()


def open_store(config_path: str) -> Store:
    """The store that the stack config at ``config_path`` names (a ConfigError if invalid)."""
    from serving._config import load_config
    from serving.store import Store

    return Store(load_config(config_path).gateway.store.url)


__all__ = [
    "CONFIG_ENV",
    "EXIT_USAGE",
    "CliError",
    "CommandSet",
    "ConfigCheck",
    "SubParsers",
    "day_arg",
    "default_config",
    "finish_parser",
    "missing_config_hint",
    "open_store",
    "resolve_globals",
    "walk_parsers",
    "yesterday",
]
