"""`gavel model prepare`: real conversion of the shipped GGUF, idempotent, self-healing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serving._model_prep import MARKER, is_complete, prepare_model


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models") / "smol"
    result = prepare_model(out, log=lambda _m: None)
    assert not result.reused
    assert "paris" in result.answer.lower()
    return out


def test_conversion_yields_a_checkpoint_with_chat_template(prepared: Path) -> None:
    assert (prepared / "config.json").is_file()
    cfg = json.loads((prepared / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"]
    tok = json.loads((prepared / "tokenizer_config.json").read_text())
    assert tok.get("chat_template") or (prepared / "chat_template.jinja").is_file()
    assert is_complete(prepared)


def test_second_run_reuses_and_says_so(prepared: Path) -> None:
    said: list[str] = []
    result = prepare_model(prepared, log=said.append)
    assert result.reused and "paris" in result.answer.lower()  # as verified when prepared
    assert any("reusing" in s for s in said)


def test_half_written_folder_is_detected_and_redone(prepared: Path) -> None:
    weights = next(prepared.glob("*.safetensors"))
    with weights.open("r+b") as f:
        f.truncate(weights.stat().st_size // 2)
    assert not is_complete(prepared)
    said: list[str] = []
    result = prepare_model(prepared, log=said.append)
    assert not result.reused
    assert any("incomplete" in s for s in said)
    assert is_complete(prepared)


def test_folder_without_marker_is_incomplete(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert not is_complete(tmp_path)
    (tmp_path / MARKER).write_text("not json")
    assert not is_complete(tmp_path)
