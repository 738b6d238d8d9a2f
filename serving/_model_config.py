"""Config of one served model: its role, weights, vLLM engine, replicas, resources,
price and latency objectives. Pure models: no I/O."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from serving._base import GavelModel
from serving.sim._profiles import PROFILES

Role = Literal["app", "judge"]
"""Models are referred to by role, never by id, everywhere outside the config."""
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10, 30, 60,
                   120, 300)  # fmt: skip
"""Bucket bounds (seconds) of the gateway's TTFT, TPOT and end-to-end histograms."""


class ModelSource(GavelModel):
    """Where a model's weights come from: a local folder, a hub id, or none at all for a
    simulated engine (exactly one)."""

    path: str | None = None
    """Local Hugging Face checkpoint folder; a relative path is relative to the config
    file's folder."""
    hub: str | None = None
    """Hugging Face hub id (GPU clusters with hub access)."""
    simulate: str | None = None
    """A simulated engine's profile (``serving.sim.PROFILES``): GPU latency without a GPU
    or weights, for scale tests and capacity planning."""

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelSource:
        if sum(v is not None for v in (self.path, self.hub, self.simulate)) != 1:
            raise ValueError("give exactly one of 'path', 'hub' or 'simulate'")
        if self.simulate is not None and self.simulate not in PROFILES:
            raise ValueError(
                f"no simulated profile {self.simulate!r}; the profiles are "
                + ", ".join(sorted(PROFILES))
            )
        return self

    @property
    def uri(self) -> str:
        """The string handed to vLLM as ``model`` (a simulated one: ``sim:PROFILE``)."""
        if self.simulate is not None:
            return f"sim:{self.simulate}"
        return self.path if self.path is not None else str(self.hub)


class EngineConfig(GavelModel):
    """vLLM engine arguments: the common ones typed, any other one through ``extra``."""

    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    max_model_len: Annotated[int, Field(gt=0)] | None = None
    enforce_eager: bool = False
    enable_prefix_caching: bool | None = None
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] | None = None
    tensor_parallel_size: Annotated[int, Field(ge=1)] = 1
    max_num_seqs: Annotated[int, Field(ge=1)] | None = None
    max_num_batched_tokens: Annotated[int, Field(ge=1)] | None = None
    quantization: str | None = None
    seed: int | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    """Any other vLLM engine argument, by its ``EngineArgs`` field name (for example
    ``kv_cache_dtype: fp8`` or ``swap_space: 8``). ``gavel config check`` and ``gavel serve``
    check each name against the installed vLLM's ``EngineArgs``, so a typo is an error."""

    @model_validator(mode="after")
    def _extra_not_typed(self) -> EngineConfig:
        typed = set(type(self).model_fields) - {"extra"}
        clash = sorted(typed & set(self.extra))
        if clash:
            raise ValueError(f"set {', '.join(clash)} as a field of engine, not under extra")
        return self

    def to_engine_kwargs(self) -> dict[str, Any]:
        """The non-default fields and ``extra``, as vLLM ``AsyncEngineArgs`` keyword arguments."""
        kwargs = self.model_dump(exclude_none=True, exclude={"extra"})
        if kwargs.get("tensor_parallel_size") == 1:
            kwargs.pop("tensor_parallel_size")
        kwargs.update(self.extra)
        return kwargs


class AutoscalingConfig(GavelModel):
    """Ray Serve autoscaling bounds for one model."""

    min_replicas: Annotated[int, Field(ge=0)] = 1
    max_replicas: Annotated[int, Field(ge=1)] = 1
    target_ongoing_requests: Annotated[float, Field(gt=0)] = 16

    @model_validator(mode="after")
    def _ordered(self) -> AutoscalingConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) exceeds max_replicas ({self.max_replicas})"
            )
        return self


class DeploymentConfig(GavelModel):
    """How many replicas serve a model: a fixed count or autoscaling, not both."""

    num_replicas: Annotated[int, Field(ge=1)] | None = None
    autoscaling: AutoscalingConfig | None = None
    max_ongoing_requests: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _one_mode(self) -> DeploymentConfig:
        if self.num_replicas is not None and self.autoscaling is not None:
            raise ValueError("give either 'num_replicas' or 'autoscaling', not both")
        return self

    def to_serve_config(self) -> dict[str, Any]:
        """The ``deployment_config`` dict that ``ray.serve.llm.LLMConfig`` takes."""
        out: dict[str, Any] = {}
        if self.autoscaling is not None:
            out["autoscaling_config"] = self.autoscaling.model_dump()
        else:
            out["num_replicas"] = self.num_replicas or 1
        if self.max_ongoing_requests is not None:
            out["max_ongoing_requests"] = self.max_ongoing_requests
        return out


class ResourcesConfig(GavelModel):
    """Resources of one engine replica (its placement-group bundle)."""

    cpus: Annotated[float, Field(gt=0)] = 1
    gpus: Annotated[float, Field(ge=0)] = 0
    """Whole or fractional GPUs; a fraction lets a small judge share a GPU."""
    accelerator_type: str | None = None
    """Ray accelerator type (e.g. ``L4``, ``A10G``, ``H100``) when the cluster mixes GPUs."""

    def bundle(self) -> dict[str, float]:
        """The placement-group bundle for one engine replica."""
        b: dict[str, float] = {"CPU": self.cpus}
        if self.gpus:
            b["GPU"] = self.gpus
        return b


def hourly_per_mtok(node_hour_usd: float, output_tok_s: float) -> float:
    """USD per 1M output tokens of hardware that costs ``node_hour_usd`` and makes
    ``output_tok_s`` tokens a second."""
    return node_hour_usd / (output_tok_s * 3600) * 1e6


class PriceConfig(GavelModel):
    """Price of a model, per 1M tokens or derived from a GPU-hour price and a throughput."""

    input_per_mtok: Annotated[float, Field(ge=0)] | None = None
    output_per_mtok: Annotated[float, Field(ge=0)] | None = None
    node_hour_usd: Annotated[float, Field(ge=0)] | None = None
    """Price of the hardware one replica uses, per hour."""
    assumed_output_tok_s: Annotated[float, Field(gt=0)] | None = None
    """Output tokens per second one replica sustains, used to derive a per-token price."""

    @model_validator(mode="after")
    def _complete(self) -> PriceConfig:
        per_tok = self.input_per_mtok is not None or self.output_per_mtok is not None
        hourly = self.node_hour_usd is not None or self.assumed_output_tok_s is not None
        if per_tok and hourly:
            raise ValueError("price per token or per node-hour, not both")
        if hourly and (self.node_hour_usd is None or self.assumed_output_tok_s is None):
            raise ValueError("node_hour_usd needs assumed_output_tok_s (and vice versa)")
        return self

    def per_mtok(self) -> tuple[float, float]:
        """(input, output) USD per 1M tokens. An hourly price is charged to output tokens."""
        if self.node_hour_usd is not None and self.assumed_output_tok_s:
            return 0.0, hourly_per_mtok(self.node_hour_usd, self.assumed_output_tok_s)
        return self.input_per_mtok or 0.0, self.output_per_mtok or 0.0

    def cost(self, prompt_tokens: int | None, completion_tokens: int | None) -> float:
        """USD of one request: the one cost formula of Gavel (gateway, judge, evals)."""
        inp, out = self.per_mtok()
        return ((prompt_tokens or 0) * inp + (completion_tokens or 0) * out) / 1e6


class SloConfig(GavelModel):
    """Latency objectives of one model: what share of requests must meet each target.

    Targets must be bucket bounds of the gateway's latency histograms, so dashboards and
    alerts read attainment straight from the buckets.
    """

    ttft_s: Annotated[float, Field(gt=0)] = 1.0
    """Time-to-first-token target."""
    tpot_s: Annotated[float, Field(gt=0)] = 0.1
    """Time-per-output-token target (mean over a request's decode)."""
    objective: Annotated[float, Field(gt=0, lt=1)] = 0.95
    """Share of requests that must meet each target; ``1 - objective`` is the error budget."""

    @model_validator(mode="after")
    def _on_buckets(self) -> SloConfig:
        for name, value in (("ttft_s", self.ttft_s), ("tpot_s", self.tpot_s)):
            if value not in LATENCY_BUCKETS:
                raise ValueError(
                    f"{name} = {value} is not a latency bucket bound; use one of "
                    + ", ".join(f"{b:g}" for b in LATENCY_BUCKETS)
                )
        return self


class ModelConfig(GavelModel):
    """One served model: its role, served id, weights, engine, replicas and resources."""

    role: Role
    model_id: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9._:/-]+$")]
    """The id clients put in ``model``."""
    source: ModelSource
    engine: EngineConfig = EngineConfig()
    deployment: DeploymentConfig = DeploymentConfig()
    resources: ResourcesConfig = ResourcesConfig()
    env: dict[str, str] = Field(default_factory=dict)
    """Environment variables for the engine's workers (e.g. ``VLLM_CPU_KVCACHE_SPACE``)."""
    stream_batching_interval_ms: Annotated[float, Field(ge=0)] | None = None
    """Ray Serve LLM groups stream chunks for this long; ``None`` keeps Ray's default (50)."""
    price: PriceConfig = PriceConfig()
    slo: SloConfig = SloConfig()

    @model_validator(mode="after")
    def _priority_needs_a_queue_at_the_engine(self) -> ModelConfig:
        """Priority scheduling reorders the engine's own queue. If Serve hands a replica
        no more requests than the engine runs at once, that queue stays empty and the
        backlog waits in Serve's router, first come, first served."""
        slots, ongoing = self.engine.max_num_seqs, self.deployment.max_ongoing_requests
        priority = self.engine.extra.get("scheduling_policy") == "priority"
        if priority and slots is not None and ongoing is not None and ongoing <= slots:
            raise ValueError(
                f"deployment.max_ongoing_requests ({ongoing}) must exceed engine.max_num_seqs "
                f"({slots}) under scheduling_policy: priority, or the engine never queues"
            )
        return self
