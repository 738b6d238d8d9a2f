"""A py-spy profile of one process while a load runs, and its flame graph's top entries
(pure parsing of py-spy's collapsed stacks), for a benchmark's JSON."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

OURS = ("serving/", "starlette/", "fastapi/", "uvicorn/", "prometheus_client/", "pydantic")
"""Frames of the gateway's own stack (its code and the web and metrics libraries)."""


def start(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """Start sampling ``pid`` at 100 Hz for ``seconds`` into ``out`` (collapsed stacks)."""
    spy = Path(sys.executable).parent / "py-spy"
    argv = [str(spy), "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "100",
            "--format", "raw", "--nonblocking", "-o", str(out)]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def top_entries(collapsed: str, *, n: int = 15) -> dict[str, Any]:
    """The flame graph's top entries: frames by their own samples (``self``), and the
    gateway's frames (:data:`OURS`) by the samples under them (``inclusive``), each as a
    share of all samples."""
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = stack.split(";")
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            if any(mark in frame for mark in OURS):
                under[frame] += samples
    if not total:
        return {"samples": 0, "self": [], "inclusive": []}

    def share(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"frame": f, "share": round(s / total, 4)} for f, s in counter.most_common(n)]

    return {"samples": total, "self": share(own), "inclusive": share(under)}
