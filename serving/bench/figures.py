"""The benchmark pages' figures, regenerated from the benchmarks' JSON.

A page under ``docs/benchmarks/`` holds one block per figure table::

    <!-- figures: limiter -->
    ...generated: do not edit...
    <!-- /figures -->

The block is rendered from ``docs/benchmarks/data/limiter.json`` (a benchmark's own
output, with its provenance) by the table function that the entry point ``limiter`` of
the ``gavel.bench_tables`` group names: each package renders its own benchmarks, and
this module imports none of them. ``python -m serving.bench.figures`` rewrites every
block; ``--check`` rewrites nothing and exits 1 naming each stale block (``make test``
runs it, and ``tests/test_docs.py`` checks the same in-process).

Publishing a run: ``cp reports/bench/limiter.json docs/benchmarks/data/`` and
``make docs-figures``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from serving.bench.provenance import ROOT, describe

ENTRY_POINT_GROUP = "gavel.bench_tables"
DOCS = ROOT / "docs" / "benchmarks"
BLOCK = re.compile(
    r"(<!-- figures: (?P<name>[a-z0-9_-]+) -->\n)(?P<body>.*?)(<!-- /figures -->)", re.S
)

Table = Callable[[dict[str, Any]], str]

__all__ = ["BLOCK", "ENTRY_POINT_GROUP", "refresh", "render", "stale_blocks", "tables"]


def tables() -> dict[str, Table]:
    """Every registered table function, by benchmark name."""
    return {e.name: e.load() for e in entry_points(group=ENTRY_POINT_GROUP)}


def render(data: dict[str, Any], table: Table) -> str:
    """A block's body: the provenance sentence, then the table (pure)."""
    prov = data.get("provenance")
    line = describe(prov) if prov else "Measured before benchmarks recorded their provenance."
    return f"{line}\n\n{table(data).strip()}\n"


def refresh(text: str, data_dir: Path, known: Mapping[str, Table]) -> str:
    """The page's text with every block rendered from its JSON in ``data_dir``."""

    def one(m: re.Match[str]) -> str:
        name = m["name"]
        if name not in known:
            raise SystemExit(
                f"figures: no table function registered for {name!r} ({ENTRY_POINT_GROUP})"
            )
        path = data_dir / f"{name}.json"
        if not path.is_file():
            raise SystemExit(f"figures: {path}: file not found (a block names it)")
        return m[1] + render(json.loads(path.read_text()), known[name]) + m[4]

    return BLOCK.sub(one, text)


def stale_blocks(docs: Path = DOCS, *, write: bool = False) -> list[str]:
    """The pages whose blocks differ from their JSON; rewritten when ``write``."""
    known, stale = tables(), []
    for page in sorted(docs.glob("*.md")):
        text = page.read_text()
        fresh = refresh(text, docs / "data", known)
        if fresh != text:
            stale.append(str(page.relative_to(ROOT)))
            if write:
                page.write_text(fresh)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite (or ``--check``) every benchmark page's figure blocks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    stale = stale_blocks(write=not args.check)
    for page in stale:
        verb = "is stale: run `make docs-figures`" if args.check else "regenerated"
        print(f"{page}: {verb}", file=sys.stderr if args.check else sys.stdout)
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
