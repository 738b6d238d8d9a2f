"""Session fixtures: the real stack (Ray Serve + vLLM on CPU), started once per session.

Set ``GAVEL_TEST_REUSE_STACK=1`` to run against a stack that is already up (it is
then left running); otherwise the session starts one with ``gavel serve --detach``
and stops it with ``gavel down`` at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
GAVEL = str(Path(sys.executable).parent / "gavel")
CONFIG = "config/cpu.yaml"
BASE_URL = "http://127.0.0.1:8000/v1"
LOG = ROOT / ".gavel" / "test-serve.log"


def run_gavel(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the ``gavel`` CLI from the repo root and capture its output."""
    return subprocess.run(
        [GAVEL, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def _serving() -> bool:
    try:
        return httpx.get(f"{BASE_URL}/models", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def stack() -> Iterator[str]:
    """Base URL of a running stack serving ``app-model`` and ``judge-model``."""
    if os.environ.get("GAVEL_TEST_REUSE_STACK") == "1" and _serving():
        yield BASE_URL
        return
    if _serving():
        pytest.fail(
            f"something already serves {BASE_URL}; stop it with `gavel down` "
            "or set GAVEL_TEST_REUSE_STACK=1 to test it"
        )
    prep = run_gavel("model", "prepare", timeout=600)
    assert prep.returncode == 0, prep.stderr
    LOG.parent.mkdir(exist_ok=True)
    with LOG.open("w") as log:
        proc = subprocess.run(
            [GAVEL, "serve", "--config", CONFIG, "--detach", "--timeout", "900"],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=1200,
            check=False,
        )
    if proc.returncode != 0:
        run_gavel("down")
        pytest.fail(
            f"gavel serve failed (exit {proc.returncode}); see {LOG}:\n" + LOG.read_text()[-3000:]
        )
    try:
        yield BASE_URL
    finally:
        down = run_gavel("down", timeout=300)
        print(down.stdout, down.stderr)
