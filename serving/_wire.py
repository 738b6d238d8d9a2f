"""Wire formats of the gateway: API keys and captured traffic records."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from serving._config import GavelModel

Scope = Literal["infer", "judge", "eval", "label", "feedback", "view", "admin"]
"""``infer`` calls the app model, ``judge`` the judge model, ``eval`` may mark its calls
as an eval's (``X-Gavel-Source: eval``; with ``infer`` to call the app model), ``label``
opens the labelling page (``gavel label``), ``feedback`` sends end users' feedback on any
key's requests (an application's backend; a key may always send it on its own),
``admin`` everything."""

ROLE_SCOPE: dict[str, Scope] = {"app": "infer", "judge": "judge"}

Source = Literal["production", "judge", "eval", "shadow"]
"""Who sent a request: a client, Gavel's judge or evals, or the gateway's shadow of a
production request (a model swap)."""
HeaderSource = Literal["production", "judge", "eval"]
"""The sources a client may name in ``X-Gavel-Source`` (``shadow`` is the gateway's own)."""
"""Who sent a request: applications (``production``), the judging job, or an eval run.
Only production traffic is sampled for judging and counted as production cost."""

SOURCE_HEADER = "x-gavel-source"
"""Request header that tags Gavel's own calls (``judge`` or ``eval``)."""


MAX_LIMIT = 2**31 - 1
"""The largest rpm or tpm a key can have (the store's integer column; PostgreSQL's is 32-bit)."""


class ApiKey(GavelModel):
    """A stored API key: only its SHA-256 hash, never the plaintext."""

    name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")]
    key_hash: Annotated[str, Field(min_length=64, max_length=64)]
    scopes: Annotated[list[Scope], Field(min_length=1)]
    rpm: Annotated[int, Field(ge=1, le=MAX_LIMIT)] | None = None
    tpm: Annotated[int, Field(ge=1, le=MAX_LIMIT)] | None = None
    metadata_only: bool = False
    """Store request metadata (tokens, timings, cost) but not prompt or response text."""
    created_at: datetime
    revoked_at: datetime | None = None
    expires_at: datetime | None = None
    """After this instant the key gets 401 (``keys create --expires``)."""
    last_used_at: datetime | None = None
    """The last authenticated request (written at most once a minute per gateway replica)."""
    previous_key_hash: Annotated[str, Field(min_length=64, max_length=64)] | None = None
    """The secret before the last ``keys rotate``; it works until ``previous_valid_until``."""
    previous_valid_until: datetime | None = None
    budget_usd_day: Annotated[float, Field(gt=0)] | None = None
    """USD this key may spend per UTC day (reserved at admission, settled at the end)."""
    budget_usd_month: Annotated[float, Field(gt=0)] | None = None
    """USD this key may spend per UTC month."""

    def allows(self, scope: Scope) -> bool:
        """True if the key carries ``scope`` (or ``admin``)."""
        return scope in self.scopes or "admin" in self.scopes

    @property
    def budgeted(self) -> bool:
        """True if the key has a day or month budget."""
        return self.budget_usd_day is not None or self.budget_usd_month is not None

    @property
    def metered(self) -> bool:
        """True if the limiter counts this key's tokens (a tpm or a budget)."""
        return self.tpm is not None or self.budgeted

    def refusal(self, key_hash: str, now: datetime) -> str | None:
        """Why a request that presented ``key_hash`` is refused (``revoked``, ``expired``,
        ``rotated``), or ``None`` if the secret is valid at ``now``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        if key_hash != self.key_hash and (
            key_hash != self.previous_key_hash
            or self.previous_valid_until is None
            or now >= self.previous_valid_until
        ):
            return "rotated"
        return None


class TrafficRecord(GavelModel):
    """One request that reached a model, as captured by the gateway."""

    request_id: str
    ts: datetime
    key_name: str | None
    model: str
    role: str | None = None
    endpoint: Literal["chat", "completions"]
    stream: bool
    request: dict[str, Any]
    """The request body (messages/prompt and parameters), after redaction."""
    response_text: str | None = None
    finish_reason: str | None = None
    status: int
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_ms: float | None = None
    e2e_ms: float | None = None
    cost_usd: float | None = None
    metadata_only: bool = False
    metadata: dict[str, str] = Field(default_factory=dict)
    """Request metadata from the ``X-Gavel-Metadata`` header (JSON object of strings)."""
    source: Source = "production"
    """``judge`` or ``eval`` for Gavel's own calls (``X-Gavel-Source``), else ``production``."""
    client_request_id: Annotated[str, Field(max_length=256)] | None = None
    """The client's own id (body ``request_id`` or ``X-Request-Id``), for correlation only."""
    text_removed: Literal["retention", "erased"] | None = None
    """Why the text is gone: ``gavel store purge`` (``retention``) or ``gavel store erase``."""
    kept: Literal["golden"] | None = None
    """Why retention keeps the text: the record was promoted to a golden set."""
    arm: Literal["production", "candidate"] | None = None
    """Under a model swap, the arm that answered (``None``: no swap concerned it)."""
    twin_id: Annotated[str, Field(max_length=64)] | None = None
    """A shadow request's production twin (that record's ``request_id``)."""
    trace_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")] | None = None
    """The request's W3C trace id, with ``gateway.tracing`` on."""


FigureJob = Literal["judge", "judge_status", "judge_online", "loadtest", "store", "swap"]
"""Which job published a set of figures; each job's set replaces its previous one."""


class Figure(GavelModel):
    """One gauge value a batch job publishes for Prometheus (a daily pass rate, a load-test
    p50, the judge job's last success). The gateway's ``/metrics`` serves the latest set of
    every job from the store, so a Prometheus that scrapes the stack sees them."""

    name: Annotated[str, Field(pattern=r"^gavel_[a-z0-9_]+$", max_length=128)]
    help: Annotated[str, Field(max_length=256)]
    labels: dict[str, str] = Field(default_factory=dict)
    value: float
