"""Stack configuration: pydantic models for the YAML file that describes a Gavel stack.

The models do no I/O. :func:`load_config` is the one edge that reads a file; it
turns every failure into a :class:`ConfigError` naming the file, the field and the
bad value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Role = Literal["app", "judge"]
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10, 30, 60,
                   120, 300)  # fmt: skip
"""Bucket bounds (seconds) of the gateway's TTFT, TPOT and end-to-end histograms."""
"""Models are referred to by role, never by id, everywhere outside the config."""


class GavelModel(BaseModel):
    """Base of every Gavel config and wire format: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfigError(Exception):
    """A config file is invalid. ``str(err)`` is a one-line message for users."""

    def __init__(self, file: str, field: str, message: str, value: object = None) -> None:
        self.file = file
        self.field = field
        self.value = value
        self.message = message
        where = f"{file}: {field}" if field else file
        shown = "" if value is _MISSING or value is None else f" = {value!r}"
        super().__init__(f"{where}{shown}: {message}")


_MISSING = object()


class ModelSource(GavelModel):
    """Where a model's weights come from: a local folder or a hub id (exactly one)."""

    path: str | None = None
    """Local Hugging Face checkpoint folder; relative paths are relative to the working dir."""
    hub: str | None = None
    """Hugging Face hub id (GPU clusters with hub access)."""

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelSource:
        if (self.path is None) == (self.hub is None):
            raise ValueError("give exactly one of 'path' or 'hub'")
        return self

    @property
    def uri(self) -> str:
        """The string handed to vLLM as ``model``."""
        return self.path if self.path is not None else str(self.hub)


class EngineConfig(GavelModel):
    """vLLM engine arguments Gavel knows about (typed, so typos are caught)."""

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

    def to_engine_kwargs(self) -> dict[str, Any]:
        """The non-default fields, as vLLM ``AsyncEngineArgs`` keyword arguments."""
        kwargs = self.model_dump(exclude_none=True)
        if kwargs.get("tensor_parallel_size") == 1:
            kwargs.pop("tensor_parallel_size")
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


class HttpConfig(GavelModel):
    """Where the OpenAI-compatible endpoint listens."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    public_url: Annotated[str, Field(pattern=r"^https?://[^\s]+/v1$")] | None = None
    """The OpenAI base URL Gavel's own jobs (judge, evals, load test) use when it is not
    the listen address, e.g. ``http://gavel-serve-svc:8000/v1`` in Kubernetes."""

    @property
    def base_url(self) -> str:
        """The OpenAI base URL clients use."""
        if self.public_url is not None:
            return self.public_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}/v1"


class AuthConfig(GavelModel):
    """API-key auth on every ``/v1/*`` route. Turning it off must be explicit."""

    enabled: bool = True
    key_cache_ttl_s: Annotated[float, Field(ge=0, le=60)] = 2.0
    """A revoked key stops working within this long."""
    key_cache_size: Annotated[int, Field(ge=1)] = 4096
    """Valid keys cached per ingress replica (least recently used go first)."""


class LimitsConfig(GavelModel):
    """What one request may ask for, and how admission behaves when the limiter is away."""

    max_body_bytes: Annotated[int, Field(ge=1024)] = 1_048_576
    """Larger request bodies get 413 before they are parsed."""
    max_n: Annotated[int, Field(ge=1)] = 8
    """Most choices (``n``) one request may ask for; more is 400."""
    max_prompts: Annotated[int, Field(ge=1)] = 8
    """Most prompts in one completions request; more is 400."""
    default_completion_reserve: Annotated[int, Field(ge=1)] = 256
    """Tokens reserved against a key's tpm for a request that sets no ``max_tokens``."""
    limiter_timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    """The shared limiter is never awaited longer than this."""
    on_limiter_unavailable: Literal["reject", "allow"] = "reject"
    """``reject`` (fail closed, 503) or ``allow`` (fail open) when the limiter does not answer."""


class CorsConfig(GavelModel):
    """Cross-origin access from browsers: off unless origins are listed."""

    allow_origins: list[str] = Field(default_factory=list)
    """Exact origins (``https://app.example.com``); ``*`` is refused (it would expose keys)."""

    @model_validator(mode="after")
    def _no_wildcard(self) -> CorsConfig:
        if "*" in self.allow_origins:
            raise ValueError("list exact origins; '*' with credentials is not allowed")
        return self


class CaptureConfig(GavelModel):
    """Traffic capture: batched off the request path, spooled to disk when the store is down."""

    enabled: bool = True
    flush_interval_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    """A ``kill -9`` of an ingress replica can lose at most this much of captured traffic."""
    batch_size: Annotated[int, Field(ge=1)] = 256
    queue_max: Annotated[int, Field(ge=1)] = 2000
    """Records held in memory; beyond this they go straight to the disk spool."""
    spool_dir: str = ".gavel/spool"
    redact: bool = False
    """Mask emails, phone numbers, provider keys and PEM blocks before storage."""
    redact_max_chars: Annotated[int, Field(ge=1000)] = 200_000
    """With redaction on, text beyond this many characters is not stored (marked cut)."""
    client_request_id_max: Annotated[int, Field(ge=8, le=256)] = 128
    """A client's own request id (body ``request_id`` or ``X-Request-Id``) is kept, for
    correlation only, cut to this length; the capture key is always Gavel's."""


class StoreConfig(GavelModel):
    """Where keys, traffic and verdicts live: SQLite (one node) or PostgreSQL (several)."""

    url: Annotated[str, Field(pattern=r"^(sqlite|postgresql)(\+\w+)?://")] = (
        "sqlite:///.gavel/gavel.db"
    )
    """SQLAlchemy URL, e.g. ``postgresql+psycopg://gavel@db:5432/gavel``."""


class GatewayConfig(GavelModel):
    """The gateway built into the ingress: keys, limits, capture, the store."""

    auth: AuthConfig = AuthConfig()
    limits: LimitsConfig = LimitsConfig()
    cors: CorsConfig = CorsConfig()
    capture: CaptureConfig = CaptureConfig()
    store: StoreConfig = StoreConfig()
    steering_metadata: tuple[str, ...] = ("expected", "pair")
    """``X-Gavel-Metadata`` keys that steer judging (reference answers, pairing); only
    ``admin`` keys may send them."""


class RayConfig(GavelModel):
    """How Gavel reaches Ray: an existing cluster, or a local one it starts."""

    address: str | None = None
    """Cluster address (``auto``, ``ray://...``); ``None`` joins a running one or starts one."""
    num_cpus: Annotated[int, Field(ge=1)] | None = None
    """Logical CPUs for a locally started Ray (the CPU stack needs more than it has cores)."""
    env: dict[str, str] = Field(default_factory=dict)
    """Environment of a locally started Ray (every Ray process inherits it): Ray and Ray
    Serve knobs such as ``RAY_SERVE_THROUGHPUT_OPTIMIZED``. Ignored when joining a cluster
    (set them where that cluster starts)."""
    worker_niceness: Annotated[int, Field(ge=0, le=19)] = 15
    """Niceness of a locally started Ray's workers (the engines, proxy and ingress); 15 is
    Ray's own default. 0 was measured (README, Benchmarks) and did not help here."""
    metrics_export_port: Annotated[int, Field(ge=1, le=65535)] = 8080
    """Where each Ray node serves Prometheus metrics (vLLM's engine metrics, ``ray_vllm_*``).
    ``gavel serve`` passes it to the Ray it starts; a cluster joined must use the same."""


class StackConfig(GavelModel):
    """The whole stack: HTTP endpoint, Ray, and the served models (one per role)."""

    http: HttpConfig = HttpConfig()
    ray: RayConfig = RayConfig()
    app_name: Annotated[str, Field(min_length=1)] = "gavel"
    gateway: GatewayConfig = GatewayConfig()
    models: Annotated[list[ModelConfig], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique(self) -> StackConfig:
        roles: list[str] = [m.role for m in self.models]
        ids = [m.model_id for m in self.models]
        for label, values in (("role", roles), ("model_id", ids)):
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"duplicate {label}: {', '.join(dupes)}")
        if "app" not in roles:
            raise ValueError("a model with role 'app' is required")
        return self

    def model(self, role: Role) -> ModelConfig:
        """The model that plays ``role``; raises ``KeyError`` if none does."""
        for m in self.models:
            if m.role == role:
                return m
        raise KeyError(f"no model with role {role!r} in the config")


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _value_at(data: Any, loc: tuple[int | str, ...]) -> object:
    cur = data
    for part in loc:
        try:
            cur = cur[part]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return cur


M = TypeVar("M", bound=BaseModel)


def parse_model(data: object, cls: type[M], *, source: str) -> M:
    """Validate already-loaded YAML/JSON data as ``cls``; errors name source, field and value."""
    if not isinstance(data, dict):
        raise ConfigError(source, "", "the top level must be a mapping")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            raise ConfigError(source, _field_path(loc), "unknown field") from None
        # Errors raised inside a validator of a nested model have no value of their own.
        value = _value_at(data, loc) if loc else _MISSING
        if err["type"] == "value_error":
            value = _MISSING
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(source, _field_path(loc), msg, value) from None


def load_model(path: str | Path, cls: type[M]) -> M:
    """Read a YAML file and validate it as ``cls``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(p), "", "file not found") from None
    except OSError as exc:
        raise ConfigError(str(p), "", f"cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(str(p), line, "not valid YAML") from None
    return parse_model(data, cls, source=str(p))


def parse_config(data: object, *, source: str = "<config>") -> StackConfig:
    """Validate already-loaded YAML/JSON data as a stack config."""
    return parse_model(data, StackConfig, source=source)


def load_config(path: str | Path) -> StackConfig:
    """Read and validate a stack config file."""
    return load_model(path, StackConfig)
