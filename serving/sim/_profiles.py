"""Profiles of the simulated engine: the latency model of one engine replica on one GPU.

A profile is config (pure data). Its parameters come from published vLLM benchmark
figures; each profile names its sources. The model, per replica:

- a request waits until a sequence slot (``max_num_seqs``) and room in the KV cache
  (``kv_tokens``, its prompt plus its whole output) are free: queueing;
- its prompt is prefilled at ``prefill_tok_s``, one prompt at a time: the first token
  comes at the end of it;
- then every decode step gives one more token to each running sequence, and a step
  takes ``step_base_ms + step_per_seq_ms * running``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from serving._base import GavelModel


class OutputLength(GavelModel):
    """The length of an answer that the request does not fix (no ``ignore_eos``): drawn
    from the prompt, deterministically, between these bounds."""

    min_tokens: Annotated[int, Field(ge=1)] = 32
    max_tokens: Annotated[int, Field(ge=1)] = 256

    @model_validator(mode="after")
    def _ordered(self) -> OutputLength:
        if self.min_tokens > self.max_tokens:
            raise ValueError(
                f"min_tokens ({self.min_tokens}) exceeds max_tokens ({self.max_tokens})"
            )
        return self


class SimProfile(GavelModel):
    """The latency model of one simulated engine replica."""

    description: str
    prefill_tok_s: Annotated[float, Field(gt=0)]
    """Prompt tokens prefilled per second (one prompt at a time)."""
    step_base_ms: Annotated[float, Field(gt=0)]
    """A decode step's time with one running sequence (the weights' read)."""
    step_per_seq_ms: Annotated[float, Field(ge=0)]
    """What each further running sequence adds to a step (its KV cache's read)."""
    max_num_seqs: Annotated[int, Field(ge=1)]
    """vLLM's ``max_num_seqs``: sequences decoded together."""
    kv_tokens: Annotated[int, Field(ge=1)]
    """Tokens the KV cache holds; a request reserves its prompt plus its whole output."""
    max_model_len: Annotated[int, Field(ge=1)]
    output: OutputLength = OutputLength()
    sources: list[str] = Field(default_factory=list)
    """Where the figures come from."""

    def step_s(self, running: int) -> float:
        """Seconds of one decode step with ``running`` sequences."""
        return (self.step_base_ms + self.step_per_seq_ms * max(running - 1, 0)) / 1000

    def prefill_s(self, prompt_tokens: int) -> float:
        """Seconds to prefill a prompt of ``prompt_tokens``."""
        return prompt_tokens / self.prefill_tok_s

    def peak_output_tok_s(self) -> float:
        """Output tokens/s with every slot decoding (the engine's bound, prefill aside)."""
        return self.max_num_seqs / self.step_s(self.max_num_seqs)


PROFILES: dict[str, SimProfile] = {
    "llama-3.1-8b-h100": SimProfile(
        description="Llama-3.1-8B-Instruct, BF16, vLLM on one H100 80GB SXM",
        # TPOT 6.48 ms at concurrency 1 and 10.94 ms at 16 (InferenceBench concurrency
        # sweep, vLLM 0.21, H100-80GB-HBM3): 6.5 ms + 0.3 ms per further sequence.
        step_base_ms=6.5,
        step_per_seq_ms=0.3,
        # ~990 TFLOP/s BF16 dense at ~40% MFU over 16 GFLOP per token of an 8B model.
        prefill_tok_s=25_000,
        max_num_seqs=256,  # vLLM's default on GPU
        # 80 GB x 0.9 - 16 GB of weights = ~56 GB at 128 KiB per token (32 layers x 8
        # KV heads x 128 x 2 x BF16).
        kv_tokens=420_000,
        max_model_len=8192,
        sources=[
            "https://yobitelcomm.github.io/bench/recipes/concurrency-sweep/",
            "https://johnmusgrave.com/p/vllm-throughput-latency-sweep-on (77% of the "
            "memory-bandwidth roofline at concurrency 1, A100 40GB, same model)",
        ],
    ),
    "llama-3.1-8b-l4": SimProfile(
        description="Llama-3.1-8B-Instruct, BF16, vLLM on one L4 24GB",
        # The A100 sweep's 77% of the memory-bandwidth roofline at concurrency 1, applied
        # to the L4's 300 GB/s over 16 GB of weights: 69 ms a step; each sequence of ~1k
        # tokens of context adds its KV read (128 MiB) at the same efficiency.
        step_base_ms=69.0,
        step_per_seq_ms=0.55,
        # 121 TFLOP/s BF16 dense at ~40% MFU over 16 GFLOP per token.
        prefill_tok_s=3_000,
        max_num_seqs=128,
        # 24 GB x 0.9 - 16 GB of weights = ~5.6 GB at 128 KiB per token.
        kv_tokens=43_000,
        max_model_len=8192,
        sources=[
            "https://johnmusgrave.com/p/vllm-throughput-latency-sweep-on",
            "NVIDIA L4 datasheet: 300 GB/s, 121 TFLOP/s BF16 dense",
        ],
    ),
}
"""The built-in profiles, by the name a config gives in ``source: {simulate: NAME}``."""
