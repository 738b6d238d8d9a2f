"""Run one tier of the suite, time it, and warn when it exceeds its budget.

``python -m tests.tiers TIER [pytest arguments]`` runs pytest with ``--durations=25``
(the slowest tests are printed), then prints the tier's wall time against its budget
and a warning when it is over, and appends the figure to ``reports/tests/tiers.jsonl``.
The exit code is pytest's: a tier over budget warns, it does not fail (the machine is
noisy; the budget is a signal to look, not a gate).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BUDGET_S = {"unit": 240.0, "sim": 720.0, "engine": 540.0, "multinode": 360.0}
"""Each tier's time budget, in seconds of wall time (docs/development.md)."""
ROOT = Path(__file__).resolve().parents[1]


def verdict(tier: str, seconds: float) -> str:
    """One line: the tier's time against its budget, with a warning when over."""
    budget = BUDGET_S[tier]
    line = f"tier {tier}: {seconds:.0f} s of a {budget:.0f} s budget"
    if seconds > budget:
        return (
            f"WARNING: {line}: over by {seconds - budget:.0f} s; find what grew (--durations above)"
        )
    return line


def main(argv: list[str]) -> int:
    """Run the tier; returns pytest's exit code."""
    if not argv or argv[0] not in BUDGET_S:
        print(
            f"usage: python -m tests.tiers {{{'|'.join(BUDGET_S)}}} [pytest args]", file=sys.stderr
        )
        return 2
    tier, args = argv[0], argv[1:]
    t0 = time.monotonic()
    rc = subprocess.run(
        [sys.executable, "-m", "pytest", "--durations=25", *args], cwd=ROOT
    ).returncode
    seconds = time.monotonic() - t0
    print(verdict(tier, seconds), flush=True)
    out = ROOT / "reports" / "tests" / "tiers.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    figure = {"tier": tier, "seconds": round(seconds, 1), "rc": rc,
              "at": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
    with out.open("a") as f:
        f.write(json.dumps(figure) + "\n")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
