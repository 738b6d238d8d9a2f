"""Locust users that stream chat completions and record per-request timings.

This module only makes load: each request becomes a :class:`RequestRecord` appended
to the cell's sink. ``loadtest.metrics`` computes from the records. It imports Locust
(and with it gevent's monkey-patching), so only the load-test runner imports it.

Usable standalone too: ``locust -f loadtest/locustfile.py --host http://127.0.0.1:8000``
runs :class:`StandaloneChatUser` with settings from ``GAVEL_LT_*`` environment variables.
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import gevent
from locust import HttpUser, constant, task
from locust.exception import StopUser
from openai.types.chat import ChatCompletionChunk
from pydantic import ValidationError

from loadtest._models import RequestRecord


@dataclass
class CellPlan:
    """What one cell sends, and where its records go (shared by the cell's users)."""

    model: str
    prompt: str
    output_len: int
    concurrency: int
    budget: int
    api_key: str | None = None
    timeout_s: float = 300
    rate_rps: float | None = None
    request_id_prefix: str | None = None
    """When set, each request sends ``X-Request-Id: PREFIX<index>`` (to find its capture)."""
    sink: list[RequestRecord] = field(default_factory=list)
    t0: float = field(default_factory=time.perf_counter)
    _taken: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> int | None:
        """Claim one request of the budget: its index, or ``None`` once it is spent."""
        with self._lock:
            if self._taken >= self.budget:
                return None
            self._taken += 1
            return self._taken

    def prompt_for(self, index: int) -> str:
        """The prompt's words in an order of this request's own.

        Same words, so about the same token count; a different prefix, so the engine's
        prefix cache cannot turn every prefill after the first into a cache hit.
        """
        words = self.prompt.split()
        random.Random(f"{self.output_len}:{self.concurrency}:{index}").shuffle(words)
        return " ".join(words)

    def body(self, index: int = 0) -> dict[str, object]:
        """The request body: exact output length via ``max_tokens`` + ``ignore_eos``."""
        return {
            "model": self.model,
            "messages": [{"role": "user", "content": self.prompt_for(index)}],
            "max_tokens": self.output_len,
            "min_tokens": self.output_len,
            "ignore_eos": True,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }

    def headers(self, index: int = 0) -> dict[str, str]:
        """Request headers (the gateway's bearer key when one is set, the request's id)."""
        out = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        if self.request_id_prefix is not None:
            out["X-Request-Id"] = f"{self.request_id_prefix}{index}"
        return out


def _error_text(resp: object) -> str:
    status = getattr(resp, "status_code", None)
    try:
        msg = resp.json()["error"]["message"]  # type: ignore[attr-defined]
    except Exception:
        msg = (getattr(resp, "text", "") or "")[:200]
    return f"HTTP {status}: {msg}"


def stream_once(user: HttpUser, plan: CellPlan, index: int = 0) -> RequestRecord:
    """Send one streamed chat completion and measure it."""
    start = time.perf_counter()
    base: dict[str, Any] = {
        "index": index,
        "output_len": plan.output_len,
        "concurrency": plan.concurrency,
        "start_s": start - plan.t0,
    }
    ttft: float | None = None
    last = 0.0
    gaps: list[float] = []
    tokens: int | None = None
    with user.client.post(
        "/v1/chat/completions",
        json=plan.body(index),
        headers=plan.headers(index),
        stream=True,
        catch_response=True,
        timeout=plan.timeout_s,
        name=f"chat out={plan.output_len}",
    ) as resp:
        if resp.status_code != 200:
            err = _error_text(resp)
            resp.failure(err)
            return RequestRecord(**base, ok=False, error=err)
        try:
            for line in resp.iter_lines():
                if not line.startswith(b"data: "):
                    continue
                payload = line[6:]
                if payload.strip() == b"[DONE]":
                    break
                chunk = ChatCompletionChunk.model_validate_json(payload)
                now = time.perf_counter()
                if chunk.choices and chunk.choices[0].delta.content:
                    if ttft is None:
                        ttft = now - start
                    else:
                        gaps.append(now - last)
                    last = now
                if chunk.usage is not None:
                    tokens = chunk.usage.completion_tokens
        except (ValidationError, OSError, ValueError) as exc:
            err = f"bad stream: {type(exc).__name__}: {str(exc)[:200]}"
            resp.failure(err)
            return RequestRecord(**base, ok=False, error=err)
        e2e = time.perf_counter() - start
        if ttft is None or tokens is None:
            err = "stream ended without content or usage"
            resp.failure(err)
            return RequestRecord(**base, ok=False, error=err, e2e_s=e2e)
        resp.success()
    return RequestRecord(**base, ok=True, ttft_s=ttft, e2e_s=e2e, output_tokens=tokens, gaps_s=gaps)


class ChatStreamUser(HttpUser):
    """Closed loop: each user sends its next request as soon as the last one ends."""

    abstract = True
    wait_time = constant(0)
    plan: CellPlan

    @task
    def chat(self) -> None:
        """One request of the cell's budget."""
        index = self.plan.take()
        if index is None:
            raise StopUser()
        self.plan.sink.append(stream_once(self, self.plan, index))


class PoissonDispatchUser(HttpUser):
    """Open loop: one dispatcher starts requests at Poisson arrivals, never waiting for them."""

    abstract = True
    wait_time = constant(0)
    plan: CellPlan

    @task
    def dispatch(self) -> None:
        """Sleep an exponential inter-arrival time, then start a request in its own greenlet."""
        assert self.plan.rate_rps is not None
        gevent.sleep(random.expovariate(self.plan.rate_rps))
        index = self.plan.take()
        if index is None:
            raise StopUser()
        gevent.spawn(lambda: self.plan.sink.append(stream_once(self, self.plan, index)))


class StandaloneChatUser(ChatStreamUser):
    """For the ``locust`` command line: settings from ``GAVEL_LT_*`` environment variables."""

    abstract = False
    plan = CellPlan(
        model=os.environ.get("GAVEL_LT_MODEL", "app-model"),
        prompt=os.environ.get("GAVEL_LT_PROMPT", "Tell me about the sea. " * 16),
        output_len=int(os.environ.get("GAVEL_LT_OUTPUT_LEN", "64")),
        concurrency=int(os.environ.get("GAVEL_LT_CONCURRENCY", "1")),
        budget=int(os.environ.get("GAVEL_LT_REQUESTS", "1000000")),
        api_key=os.environ.get("GAVEL_API_KEY"),
    )
