"""Config of what surrounds the models: the HTTP endpoint, the gateway (keys, limits,
CORS, capture, the store) and Ray. Pure models: no I/O."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from serving._base import GavelModel
from serving._model_config import DeploymentConfig
from serving.feedback._config import FeedbackConfig


class HttpConfig(GavelModel):
    """Where the OpenAI-compatible endpoint listens."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    public_url: Annotated[str, Field(pattern=r"^https?://[^\s]+/v1$")] | None = None
    """The OpenAI base URL Gavel's own jobs (judge, evals, load test) use when it is not
    the listen address, e.g. ``http://gavel-serve-svc:8000/v1`` in Kubernetes."""
    proxy_location: Literal["EveryNode", "HeadOnly"] = "EveryNode"
    """Where Ray Serve runs an HTTP proxy: on every node (Ray's default), or on the head
    only (several Ray nodes on one machine would otherwise contend for the port)."""
    proxy: Literal["ray", "haproxy", "direct"] = "ray"
    """Serve's own proxy (Ray's default), or HAProxy (Ray's fastest path, experimental in
    Ray 2.56+): HAProxy forwards each request straight to a gateway replica's own HTTP
    server, with no proxy actor between (``RAY_SERVE_ENABLE_HA_PROXY=1`` on the Ray
    cluster; a local Ray that ``gavel serve`` starts gets it). ``direct``: HAProxy with
    Ray's direct streaming, the gateway inside the app model's own replicas (no Serve hop
    between the client and that engine; the judge is reached through its handle; also
    ``RAY_SERVE_LLM_ENABLE_DIRECT_STREAMING=1``). Ray's HAProxy adds no
    ``X-Forwarded-For``, so every client reaches the gateway from HAProxy's address: the
    wrong-token backoff is then one for all clients (keys a replica has seen work are
    never held back by it)."""

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
    wrong_token_limit: Annotated[int, Field(ge=0)] = 20
    """Wrong tokens one client address may send per ``wrong_token_window_s`` before it
    gets 429 for any key the replica has not seen work (0: no backoff)."""
    wrong_token_window_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    trusted_proxies: list[str] = Field(default_factory=list)
    """Peer addresses (load balancers, proxies) whose ``X-Forwarded-For`` names the client
    for the wrong-token guard (``*``: every peer). From any other peer the header is
    ignored, as uvicorn's ``forwarded_allow_ips`` does."""
    outage_grace_s: Annotated[float, Field(ge=0, le=3600)] = 60.0
    """While the key store is down, a key validated less than this long ago keeps being
    served; after that the replica fails closed (503) until the store answers."""


class LimitsConfig(GavelModel):
    """What one request may ask for, and how admission behaves when the limiter is away."""

    max_body_bytes: Annotated[int, Field(ge=1024)] = 1_048_576
    """Larger request bodies get 413 before they are parsed."""
    max_json_depth: Annotated[int, Field(ge=8, le=256)] = 64
    """Bodies whose arrays and objects nest deeper get 400 (the engines, capture and the
    readers of captured traffic all handle this depth)."""
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
    """Relative to the config file's folder."""
    redact: bool = False
    """Mask emails, phone numbers, provider keys and PEM blocks before storage."""
    redact_max_chars: Annotated[int, Field(ge=1000)] = 200_000
    """With redaction on, text beyond this many characters is not stored (marked cut)."""
    client_request_id_max: Annotated[int, Field(ge=8, le=256)] = 128
    """A client's own request id (body ``request_id`` or ``X-Request-Id``) is kept, for
    correlation only, cut to this length; the capture key is always Gavel's."""


Days = Annotated[int, Field(ge=1, le=36500)]


class KeepFor(GavelModel):
    """How long one source's captured traffic is kept; ``null`` keeps it for ever."""

    text_days: Days | None = None
    """Days after which a record's text (request and response bodies) is blanked."""
    row_days: Days | None = None
    """Days after which the whole record is deleted (its numbers with it)."""

    @model_validator(mode="after")
    def _text_goes_first(self) -> KeepFor:
        if self.text_days and self.row_days and self.text_days > self.row_days:
            raise ValueError(
                f"text_days ({self.text_days}) is longer than row_days ({self.row_days}): "
                "a record's text cannot outlive the record"
            )
        return self


class RetentionConfig(GavelModel):
    """Retention per traffic source (``gavel store purge``). Labelled records and records
    promoted to a golden set keep their text and rows; verdicts and daily figures are
    never purged."""

    production: KeepFor = KeepFor()
    judge: KeepFor = KeepFor()
    eval: KeepFor = KeepFor()
    shadow: KeepFor = KeepFor()
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 1000
    """Records per purge transaction: capture's writes never wait on more than one batch."""


class StoreConfig(GavelModel):
    """Where keys, traffic and verdicts live: SQLite (one node) or PostgreSQL (several)."""

    url: Annotated[str, Field(pattern=r"^(sqlite|postgresql)(\+\w+)?://")] = (
        "sqlite:///.gavel/gavel.db"
    )
    """SQLAlchemy URL, e.g. ``postgresql+psycopg://gavel@db:5432/gavel``. A relative SQLite
    path is relative to the config file's folder."""
    retention: RetentionConfig = RetentionConfig()
    """How long captured traffic is kept (default: for ever)."""


class GatewayDeployment(DeploymentConfig):
    """How many ingress (gateway) replicas run: a fixed count or autoscaling. Unset, Ray
    Serve LLM's default applies (autoscaling up to one replica per ``target``)."""

    max_replicas_per_node: Annotated[int, Field(ge=1)] | None = None
    """At most this many ingress replicas on one Ray node (1 spreads them over nodes)."""

    def to_ingress_options(self, defaults: dict[str, Any]) -> dict[str, Any]:
        """Ray's ingress deployment options with these settings in place of its defaults."""
        out = {k: v for k, v in defaults.items() if k != "autoscaling_config"}
        out.update(self.to_serve_config())
        if self.max_replicas_per_node is not None:
            out["max_replicas_per_node"] = self.max_replicas_per_node
        return out


class EnginePriority(GavelModel):
    """vLLM's per-request ``priority`` by the request's source (lower runs first, and
    preempts a higher value when the engine is full). Sent only to engines whose
    ``engine.extra.scheduling_policy`` is ``priority``; a client's own ``priority`` is
    never passed on."""

    production: Annotated[int, Field(ge=-1000, le=1000)] = 0
    shadow: Annotated[int, Field(ge=-1000, le=1000)] = 1
    """A shadow never runs ahead of the request it copies (it takes the larger value)."""
    judge: Annotated[int, Field(ge=-1000, le=1000)] = 2
    eval: Annotated[int, Field(ge=-1000, le=1000)] = 2

    def of(self, source: str) -> int:
        """The priority of a request of this source (production's for an unknown one)."""
        return int(getattr(self, source, self.production))


class PriorityConfig(GavelModel):
    """Production before Gavel's own traffic: the judge's and evals' calls (by their
    ``X-Gavel-Source``) are capped per ingress replica; production never waits. Inside
    the engine, background requests yield through vLLM's priority scheduling
    (``engine``)."""

    background_sources: tuple[Literal["judge", "eval"], ...] = ("judge", "eval")
    max_in_flight: Annotated[int, Field(ge=1)] | None = 16
    """Background requests one ingress replica runs at once (``null``: no cap). The
    others wait for a slot, in order."""
    max_wait_s: Annotated[float, Field(gt=0, le=600)] = 120.0
    """A background request that waits longer for a slot gets 429 (the judge retries)."""
    engine: EnginePriority = EnginePriority()
    """Each source's priority at engines that schedule by priority."""


class TracingConfig(GavelModel):
    """``gateway.tracing``: OpenTelemetry spans of every request, exported over OTLP/HTTP.

    Off by default (no hook runs, nothing is imported). On, the gateway continues the
    client's W3C ``traceparent`` (or starts a trace), passes it to the engine, and emits
    a span per lifecycle hook, the engine call (first token as an event), the tap and
    capture, with the GenAI semantic conventions' attributes (never prompt or response
    text); the captured record keeps the trace id."""

    enabled: bool = False
    endpoint: str | None = None
    """The collector's OTLP/HTTP traces URL, e.g. ``http://otel-collector:4318/v1/traces``."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Headers of every export (a collector's auth)."""
    sample_ratio: Annotated[float, Field(ge=0, le=1)] = 1.0
    """Share of new traces kept; a client's sampled ``traceparent`` is always followed."""
    service_name: Annotated[str, Field(min_length=1, max_length=128)] = "gavel-gateway"

    @model_validator(mode="after")
    def _endpoint(self) -> TracingConfig:
        if self.enabled and not self.endpoint:
            raise ValueError("tracing.endpoint is required when tracing is enabled")
        if self.endpoint and not self.endpoint.startswith(("http://", "https://")):
            raise ValueError("tracing.endpoint must be an http(s) URL (OTLP/HTTP)")
        return self


class GatewayConfig(GavelModel):
    """The gateway built into the ingress: keys, limits, capture, the store."""

    deployment: GatewayDeployment | None = None
    """Ingress replicas (every replica is the whole gateway; limits, capture and metrics
    stay exact across them)."""

    auth: AuthConfig = AuthConfig()
    limits: LimitsConfig = LimitsConfig()
    cors: CorsConfig = CorsConfig()
    capture: CaptureConfig = CaptureConfig()
    store: StoreConfig = StoreConfig()
    priority: PriorityConfig = PriorityConfig()
    """Production first: a cap on the judge's and evals' requests in flight."""
    tracing: TracingConfig = TracingConfig()
    """OpenTelemetry traces of the request path (off by default)."""
    feedback: FeedbackConfig = FeedbackConfig()
    """End users' feedback on answers (``POST /v1/feedback``)."""
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
    Ray's own default. 0 was measured (docs/benchmarks) and did not help here."""
    metrics_export_port: Annotated[int, Field(ge=1, le=65535)] = 8080
    """Where each Ray node serves Prometheus metrics (vLLM's engine metrics, ``ray_vllm_*``).
    ``gavel serve`` passes it to the Ray it starts; a cluster joined must use the same."""
