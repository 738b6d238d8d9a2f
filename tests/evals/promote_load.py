"""Locust's load with ``gavel swap promote`` in its middle, in a process of its own, so
that gevent's monkey-patching stays out of the pytest session. Prints one JSON object:
the records, and the promote's exit code, output and the time it returned.

``python -m tests.evals.promote_load BASE_URL API_KEY PREFIX REQUESTS [OUTPUT_LEN]``
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import gevent

from loadtest._models import SweepSpec
from loadtest._runner import run_cell

GAVEL = str(Path(sys.executable).parent / "gavel")


def main() -> None:
    """Run the load, promote after 2 s, print the JSON."""
    base, key, prefix, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    length = int(sys.argv[5]) if len(sys.argv) > 5 else 8
    promoted: dict[str, object] = {}

    def promote() -> None:
        gevent.sleep(2)
        done = subprocess.run([GAVEL, "swap", "promote", "--by", "tests", "--wait", "30"],
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        promoted.update(code=done.returncode, output=done.stdout + done.stderr,
                        at=datetime.now(UTC).isoformat())  # fmt: skip

    spec = SweepSpec(base_url=base, model="app-model", output_lens=[length], concurrency=[4],
                     requests_per_cell=n, request_timeout_s=120)  # fmt: skip
    timer = gevent.spawn(promote)
    records, _ = run_cell(spec, prompt="Say something about the sea.", output_len=length,
                          concurrency=4, api_key=key, request_id_prefix=prefix)  # fmt: skip
    timer.join()
    out = {"records": [r.model_dump(mode="json") for r in records], "promote": promoted}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
