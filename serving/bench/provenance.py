"""Where a benchmark's figures come from: the date, the commit, the config and the machine.

Every benchmark writes its JSON with :func:`write_report`, which adds a ``provenance``
object, so that a figure in the docs (regenerated from that JSON by
:mod:`serving.bench.figures`) always says when, at which commit, with which config and on
what kind of machine it was measured.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _commit() -> tuple[str, bool]:
    """The checkout's short commit and whether it had uncommitted changes."""

    def git(*args: str) -> str:
        proc = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
        return proc.stdout.strip() if proc.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return commit, dirty


def _memory_gib() -> float | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None
    return round(pages * size / 2**30, 1)


def provenance(config: str | None = None) -> dict[str, Any]:
    """The date, commit, config and machine of a measurement made now."""
    commit, dirty = _commit()
    return {
        "date": datetime.now(UTC).date().isoformat(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "dirty": dirty,
        "config": config,
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": _memory_gib(),
            "system": f"{platform.system()} {platform.machine()}",
            "python": platform.python_version(),
        },
    }


def describe(prov: dict[str, Any]) -> str:
    """One sentence for a page: "Measured 2026-12-03 at commit abc1234 (config: ...) on a
    2-core, 23.4 GiB Linux x86_64 machine." (pure)."""
    machine = prov.get("machine") or {}
    commit = str(prov.get("commit", "unknown")) + (
        " with local changes" if prov.get("dirty") else ""
    )
    config = f" (config: {prov['config']})" if prov.get("config") else ""
    size = f"{machine.get('cpus', '?')}-core, {machine.get('memory_gib', '?')} GiB"
    return (
        f"Measured {prov.get('date', '?')} at commit `{commit}`{config} on a {size} "
        f"{machine.get('system', '')} machine."
    ).replace("  ", " ")


def write_report(path: Path | str, report: dict[str, Any], config: str | None = None) -> Path:
    """Write a benchmark's JSON with its provenance; returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**report, "provenance": provenance(config)}, indent=2, default=str))
    return out
