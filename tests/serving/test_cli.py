"""CLI errors: exit 2 with a one-line message naming file, field and value; no traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from tests.conftest import GAVEL, ROOT, gavel_main, run_gavel

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
    proc = gavel_main("serve", "--config", str(cfg))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    expect = expect.format(tmp=tmp_path)
    assert lines[0].startswith(f"gavel: error: {cfg}: {expect}"), lines[0]
    assert "Traceback" not in proc.stderr


def test_missing_model_folder_says_to_prepare(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(BASE % "models/nothing-here")
    proc = gavel_main("serve", "--config", str(cfg))
    assert "run `gavel model prepare`" in proc.stderr


def test_missing_config_file() -> None:
    # The serve group's one subprocess test: the console script itself.
    proc = run_gavel("serve", "--config", "nope.yaml")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "gavel: error: nope.yaml: file not found"


def test_config_check_accepts_shipped_configs() -> None:
    for name in ("config/cpu.yaml", "config/gpu.yaml"):
        proc = gavel_main("config", "check", name)
        assert proc.returncode == 0, proc.stderr
        assert "app=app-model, judge=judge-model" in proc.stdout


# --- One CLI grammar: --config anywhere, paths relative to the config file -------------


def _gavel_in(cwd: Path, *args: str, env: dict[str, str] | None = None) -> CompletedProcess[str]:
    """``gavel`` run (in this process) from ``cwd`` with ``$GAVEL_CONFIG`` unset unless
    ``env`` sets it; the environment is put back afterwards."""
    saved = dict(os.environ)
    os.environ.pop("GAVEL_CONFIG", None)
    os.environ.update(env or {})
    try:
        return gavel_main(*args, cwd=cwd)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _store_config(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / "stack.yaml"
    cfg.write_text(
        'gateway: {store: {url: "sqlite:///data/gavel.db"}}\n'
        "models: [{role: app, model_id: app-model, source: {path: m}}]\n"
    )
    return cfg


def test_config_before_or_after_any_command_from_any_folder_uses_one_store(
    tmp_path: Path,
) -> None:
    cfg = _store_config(tmp_path / "conf")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    calls = [
        (ROOT, ["keys", "--config", str(cfg), "create", "k1"], None),
        (ROOT, ["keys", "create", "k2", "--config", str(cfg)], None),
        (elsewhere, ["--config", str(cfg), "keys", "create", "k3"], None),
        (Path("/"), ["keys", "create", "k4", "--config", str(cfg)], None),
        (elsewhere, ["keys", "create", "k5"], {"GAVEL_CONFIG": str(cfg)}),
    ]
    for cwd, argv, env in calls:
        proc = _gavel_in(cwd, *argv, env=env)
        assert proc.returncode == 0, (argv, proc.stderr)
    listed = _gavel_in(elsewhere, "keys", "list", "--config", str(cfg))
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [
        "k1", "k2", "k3", "k4", "k5",
    ]  # fmt: skip
    # The relative SQLite path is relative to the config file, not to any working folder.
    assert (tmp_path / "conf/data/gavel.db").is_file()
    assert not (elsewhere / "data").exists() and not (ROOT / "data").exists()


def test_default_config_is_found_from_a_subfolder_of_the_checkout() -> None:
    proc = _gavel_in(ROOT / "serving" / "gateway", "config", "check")
    assert proc.returncode == 0, proc.stderr
    assert "app=app-model, judge=judge-model" in proc.stdout
    assert f"{ROOT}/config/judging.yaml: ok" in proc.stdout


def test_no_config_anywhere_says_what_to_pass(tmp_path: Path) -> None:
    proc = _gavel_in(tmp_path, "keys", "list")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "gavel: error: config/cpu.yaml: file not found; pass --config FILE or set "
        "GAVEL_CONFIG (no config/cpu.yaml in this folder or above it)"
    )


def test_config_check_names_every_bad_file_and_field(tmp_path: Path) -> None:
    crit = tmp_path / "crit"
    crit.mkdir()
    (crit / "ok.yaml").write_text((ROOT / "judges/criteria/general.yaml").read_text())
    (crit / "bad.yaml").write_text("criteria: [{name: x, kind: binary}]\n")
    (tmp_path / "judging.yaml").write_text("criteria_dir: crit\nsampling: {rate: 2}\n")
    cfg = tmp_path / "stack.yaml"
    cfg.write_text(
        "models:\n  - {role: app, model_id: a, source: {path: m},\n"
        "     engine: {extra: {max_num_seq: 4, kv_cache_dtype: auto}}}\n"
    )
    proc = _gavel_in(tmp_path, "config", "check", "--config", "stack.yaml")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        "gavel: error: stack.yaml: models[0].engine.extra.max_num_seq: not an argument of "
        "the installed vLLM's EngineArgs",
        f"gavel: error: {tmp_path}/judging.yaml: sampling.rate = 2: Input should be less "
        "than or equal to 1",
    ], lines
    (tmp_path / "judging.yaml").write_text("criteria_dir: crit\n")
    proc = _gavel_in(tmp_path, "config", "check", "--config", "stack.yaml")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[1:] == [
        f"gavel: error: {tmp_path}/crit/bad.yaml: criteria.0.rubric: Field required"
    ], proc.stderr


def test_engine_extra_cannot_shadow_a_typed_field(tmp_path: Path) -> None:
    cfg = tmp_path / "stack.yaml"
    cfg.write_text(
        "models: [{role: app, model_id: a, source: {path: m}, engine: {extra: {dtype: float16}}}]\n"
    )
    proc = _gavel_in(tmp_path, "config", "check", str(cfg))
    assert proc.returncode == 2
    assert "models[0].engine: set dtype as a field of engine, not under extra" in proc.stderr


def test_keys_save_and_reuse(tmp_path: Path) -> None:
    cfg = _store_config(tmp_path)
    key_file = tmp_path / "keys/demo.key"
    first = _gavel_in(tmp_path, "keys", "create", "demo", "--save", str(key_file), "--reuse",
                      env={"GAVEL_CONFIG": str(cfg)})  # fmt: skip
    again = _gavel_in(tmp_path, "keys", "create", "demo", "--save", str(key_file), "--reuse",
                      env={"GAVEL_CONFIG": str(cfg)})  # fmt: skip
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    key = first.stdout.strip().splitlines()[-1]
    assert again.stdout.strip().splitlines()[-1] == key == key_file.read_text().strip()
    assert "reusing key 'demo'" in again.stdout
    assert key_file.stat().st_mode & 0o077 == 0
    _gavel_in(tmp_path, "keys", "revoke", "demo", env={"GAVEL_CONFIG": str(cfg)})
    after = _gavel_in(tmp_path, "keys", "create", "demo", "--save", str(key_file), "--reuse",
                      env={"GAVEL_CONFIG": str(cfg)})  # fmt: skip
    # The revoked secret is not reused; its name is, with a new secret.
    assert after.returncode == 0, after.stderr
    assert "the revoked key 'demo' is kept as 'demo.revoked-" in after.stdout
    listed = _gavel_in(tmp_path, "keys", "list", env={"GAVEL_CONFIG": str(cfg)}).stdout
    assert "demo.revoked-" in listed and "revoked" in listed  # nothing deleted
    fresh = after.stdout.strip().splitlines()[-1]
    assert fresh != key and fresh == key_file.read_text().strip()
    taken = _gavel_in(tmp_path, "keys", "create", "demo", env={"GAVEL_CONFIG": str(cfg)})
    assert taken.returncode == 2
    assert "pick another name, or `gavel keys rotate demo` for a new secret" in taken.stderr


def test_a_reader_that_goes_away_gets_no_traceback() -> None:
    """Found this stop: `gavel config check | head -1` printed a BrokenPipeError traceback."""
    proc = subprocess.run(
        f"{GAVEL} config check --config config/gpu.yaml | head -c 1",
        shell=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
