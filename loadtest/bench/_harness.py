"""What the benchmarks share: vLLM's serving benchmark in-process, keys, the ``gavel`` CLI."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from serving import Scope, new_key, open_store

ROOT = Path(__file__).resolve().parents[2]


def gavel(*args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run the ``gavel`` CLI from the repo root, capturing its output."""
    exe = str(Path(sys.executable).parent / "gavel")
    return subprocess.run(
        [exe, *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=timeout
    )


def create_key(
    config_path: str | Path,
    prefix: str,
    scopes: list[Scope],
    *,
    rpm: int | None = None,
    tpm: int | None = None,
) -> str:
    """A new key in the store of the stack config at ``config_path``; returns the plaintext."""
    plaintext, record = new_key(f"{prefix}-{uuid.uuid4().hex[:8]}", scopes, rpm=rpm, tpm=tpm)
    store = open_store(str(config_path))
    try:
        store.add_key(record)
    finally:
        store.close()
    return plaintext


def vllm_bench(
    base_url: str,
    model: str,
    tokenizer: str,
    *,
    chat: bool,
    input_len: int,
    output_len: int,
    concurrency: int,
    num_prompts: int,
    warmups: int = 2,
    label: str | None = None,
) -> dict[str, Any]:
    """Run ``vllm.benchmarks.serve`` in-process (random dataset, ``ignore_eos``, seed 0).

    ``chat`` uses the streaming chat endpoint, else completions. The API key, if any,
    comes from ``OPENAI_API_KEY``. Returns vLLM's result dict.
    """
    from vllm.benchmarks.serve import add_cli_args, main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()
    add_cli_args(parser)
    argv = [
        "--backend",
        "openai-chat" if chat else "openai",
        "--endpoint",
        "/v1/chat/completions" if chat else "/v1/completions",
        "--base-url",
        base_url,
        "--model",
        model,
        "--tokenizer",
        tokenizer,
        "--dataset-name",
        "random",
        "--random-input-len",
        str(input_len),
        "--random-output-len",
        str(output_len),
        "--num-prompts",
        str(num_prompts),
        "--max-concurrency",
        str(concurrency),
        "--ignore-eos",
        "--num-warmups",
        str(warmups),
        "--temperature",
        "0",
        "--disable-tqdm",
        "--seed",
        "0",
        "--percentile-metrics",
        "ttft,tpot,itl,e2el",
    ]
    if label:
        argv += ["--label", label]
    return main(parser.parse_args(argv))
