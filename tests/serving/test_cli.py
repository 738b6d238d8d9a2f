"""CLI errors: exit 2 with a one-line message naming file, field and value; no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_gavel

BASE = """
models:
  - role: app
    model_id: app-model
    source: {path: %s}
"""


@pytest.mark.parametrize(
    ("extra", "path", "expect"),
    [
        ("    colour: red\n", "models/SmolLM2-135M-Instruct", "models[0].colour: unknown field"),
        (
            "    deployment: {num_replicas: -2}\n",
            "models/SmolLM2-135M-Instruct",
            "models[0].deployment.num_replicas = -2",
        ),
        ("", "models/does-not-exist", "models[0].source.path: no model folder at {tmp}/models/"),
    ],
    ids=["unknown-field", "negative-replicas", "missing-model-folder"],
)
def test_serve_config_errors_exit_2_in_one_line(
    tmp_path: Path, extra: str, path: str, expect: str
) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(BASE % path + extra)
    proc = run_gavel("serve", "--config", str(cfg))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    expect = expect.format(tmp=tmp_path)
    assert lines[0].startswith(f"gavel: error: {cfg}: {expect}"), lines[0]
    assert "Traceback" not in proc.stderr


def test_missing_model_folder_says_to_prepare(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(BASE % "models/nothing-here")
    proc = run_gavel("serve", "--config", str(cfg))
    assert "run `gavel model prepare`" in proc.stderr


def test_missing_config_file() -> None:
    proc = run_gavel("serve", "--config", "nope.yaml")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "gavel: error: nope.yaml: file not found"


def test_config_check_accepts_shipped_configs() -> None:
    for name in ("config/cpu.yaml", "config/gpu.yaml"):
        proc = run_gavel("config", "check", name)
        assert proc.returncode == 0, proc.stderr
        assert "app=app-model, judge=judge-model" in proc.stdout
