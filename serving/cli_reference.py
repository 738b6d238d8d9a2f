"""The CLI reference (``docs/reference.md``), generated from the ``gavel`` parsers.

``python -m serving.cli_reference`` rewrites the table between the reference page's
``<!-- cli-reference:start -->`` and ``<!-- cli-reference:end -->`` markers;
``--check`` exits 1 when the page differs (a test runs the same comparison).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from serving._commandline import walk_parsers
from serving.cli import build_parser

START = "<!-- cli-reference:start -->"
END = "<!-- cli-reference:end -->"
_GLOBAL = {"--config", "-h", "--help"}


def _helps(parser: argparse.ArgumentParser) -> dict[tuple[str, ...], str]:
    """Each command path's one-line help, as its parent's subparsers action gives it."""
    out: dict[tuple[str, ...], str] = {}
    for path, p in walk_parsers(parser):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    out[(*path, choice.dest)] = choice.help or ""
    return out


def _usage(path: tuple[str, ...], p: argparse.ArgumentParser) -> str:
    words = ["gavel", *path]
    for a in p._actions:
        if a.option_strings or isinstance(a, argparse._SubParsersAction):
            continue
        name = a.metavar or a.dest.upper()
        words.append(f"[{name}]" if a.nargs in ("?", "*") else str(name))
    return " ".join(words)


def _options(p: argparse.ArgumentParser) -> str:
    opts = []
    for a in p._actions:
        flag = next((o for o in a.option_strings if o.startswith("--")), None)
        if flag is None or flag in _GLOBAL:
            continue
        takes_value = a.nargs != 0
        opts.append(f"`{flag} {a.metavar or a.dest.upper()}`" if takes_value else f"`{flag}`")
    return ", ".join(opts)


def reference_table(parser: argparse.ArgumentParser | None = None) -> str:
    """A Markdown table of every ``gavel`` command that runs something: usage, what it
    does, its options. ``--config FILE`` is global and left out of each row."""
    parser = parser or build_parser()
    helps = _helps(parser)
    rows = ["| command | what it does | options |", "|---|---|---|"]
    for path, p in walk_parsers(parser):
        if not path or p.get_default("func") is None:
            continue
        text = helps.get(path, "").replace("|", "\\|")
        rows.append(f"| `{_usage(path, p)}` | {text} | {_options(p)} |")
    return "\n".join(rows) + "\n"


def readme_table(readme: str) -> str:
    """The table between the markers in ``readme`` (ValueError if they are missing)."""
    start, end = readme.index(START) + len(START), readme.index(END)
    return readme[start:end].strip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite (or, with ``--check``, compare) the CLI reference page."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--readme", type=Path, default=Path("docs/reference.md"))
    ap.add_argument("--check", action="store_true", help="exit 1 if the page differs")
    args = ap.parse_args(argv)
    text = args.readme.read_text()
    table = reference_table()
    if args.check:
        same = readme_table(text) == table
        print(
            f"{args.readme} is current"
            if same
            else f"{args.readme} differs: run `make cli-reference`"
        )
        return 0 if same else 1
    start, end = text.index(START) + len(START), text.index(END)
    args.readme.write_text(text[:start] + "\n" + table + text[end:])
    print(f"wrote the CLI reference into {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
