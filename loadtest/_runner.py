"""Run a sweep headless with Locust's library API, one cell after another.

Before any load, a preflight checks the endpoint, the key and the model, so that a
bad target stops the run at once with a clear message instead of a table of zeros.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from loadtest._models import CellSummary, RequestRecord, SweepSpec
from loadtest.metrics import summarize_cell

_WORDS = [
    "river",
    "stone",
    "cloud",
    "window",
    "garden",
    "letter",
    "market",
    "silver",
    "engine",
    "forest",
    "harbor",
    "candle",
    "orbit",
    "meadow",
    "signal",
    "copper",
    "lantern",
    "valley",
    "thunder",
    "canvas",
]


class LoadTestError(Exception):
    """The run cannot go on; the message says what to do."""


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _error_message(r: httpx.Response) -> str:
    try:
        return str(r.json()["error"]["message"])[:200]
    except (ValueError, KeyError, TypeError):
        return r.text[:200]


def _prompt(words: int) -> str:
    return " ".join(_WORDS[i % len(_WORDS)] for i in range(words))


def preflight(spec: SweepSpec, api_key: str | None) -> str:
    """Check endpoint, key and model; return a prompt of about ``spec.prompt_tokens`` tokens."""
    base = spec.base_url.rstrip("/")
    try:
        r = httpx.get(f"{base}/v1/models", headers=_headers(api_key), timeout=10)
    except httpx.HTTPError as exc:
        raise LoadTestError(
            f"cannot reach {base} ({type(exc).__name__}); start the stack with "
            "`gavel serve --detach` or pass --base-url"
        ) from None
    if r.status_code in (401, 403):
        raise LoadTestError(
            f"{base} refused the API key (HTTP {r.status_code}: {_error_message(r)}); "
            "pass a valid key with --api-key or GAVEL_API_KEY"
        )
    if r.status_code != 200:
        raise LoadTestError(f"{base}/v1/models answered HTTP {r.status_code}: {_error_message(r)}")
    served = [m["id"] for m in r.json().get("data", [])]
    if spec.model not in served:
        raise LoadTestError(
            f"model {spec.model!r} is not served at {base}; served: {', '.join(served)}"
        )
    # Calibrate the prompt length with the server's own token count.
    words = spec.prompt_tokens
    for _ in range(3):
        prompt = _prompt(words)
        r = httpx.post(
            f"{base}/v1/chat/completions",
            headers=_headers(api_key),
            json={"model": spec.model, "messages": [{"role": "user", "content": prompt}],
                  "max_tokens": 1},
            timeout=60,
        )  # fmt: skip
        if r.status_code != 200:
            raise LoadTestError(f"a test request failed: HTTP {r.status_code}: {_error_message(r)}")
        got = int(r.json()["usage"]["prompt_tokens"])
        if got == spec.prompt_tokens:
            break
        words = max(1, words + spec.prompt_tokens - got)
    return _prompt(words)


def run_cell(
    spec: SweepSpec,
    *,
    prompt: str,
    output_len: int,
    concurrency: int,
    api_key: str | None,
    request_id_prefix: str | None = None,
) -> tuple[list[RequestRecord], float]:
    """Run one cell with Locust; returns its records and wall time. With
    ``request_id_prefix``, request ``i`` sends ``X-Request-Id: PREFIX<i>``."""
    import gevent
    from locust.env import Environment

    from loadtest.locustfile import CellPlan, ChatStreamUser, PoissonDispatchUser

    n = spec.requests_for(concurrency)
    plan = CellPlan(
        model=spec.model,
        prompt=prompt,
        output_len=output_len,
        concurrency=concurrency,
        budget=n,
        api_key=api_key,
        timeout_s=spec.request_timeout_s,
        rate_rps=spec.rate_rps,
        request_id_prefix=request_id_prefix,
    )
    base_cls = PoissonDispatchUser if spec.mode == "poisson" else ChatStreamUser
    user_cls = type(
        f"Cell{output_len}x{concurrency}",
        (base_cls,),
        {"plan": plan, "abstract": False, "host": spec.base_url.rstrip("/")},
    )
    env = Environment(user_classes=[user_cls], host=spec.base_url.rstrip("/"))
    runner = env.create_local_runner()
    users = 1 if spec.mode == "poisson" else concurrency
    plan.t0 = time.perf_counter()
    # Every user starts at once (closed loop at full concurrency from the first request).
    runner.start(users, spawn_rate=100, wait=False)
    deadline = time.monotonic() + spec.request_timeout_s * (n / max(concurrency, 1) + 2)
    try:
        while len(plan.sink) < n:
            if time.monotonic() > deadline:
                raise LoadTestError(f"cell out={output_len} c={concurrency} timed out")
            first = plan.sink[: max(concurrency, 1)]
            if len(first) >= min(n, max(concurrency, 1)) and not any(r.ok for r in first):
                raise LoadTestError(
                    f"every request of cell out={output_len} c={concurrency} failed: "
                    f"{first[0].error}"
                )
            gevent.sleep(0.05)
    finally:
        runner.quit()
    duration = time.perf_counter() - plan.t0
    return list(plan.sink), duration


def run_sweep(
    spec: SweepSpec,
    *,
    api_key: str | None = None,
    log: Callable[[str], None] = print,
) -> tuple[list[CellSummary], list[RequestRecord]]:
    """Preflight, then every (output length, concurrency) cell; returns summaries and records."""
    prompt = preflight(spec, api_key)
    cells: list[CellSummary] = []
    records: list[RequestRecord] = []
    for concurrency in spec.concurrency:
        for output_len in spec.output_lens:
            recs, duration = run_cell(
                spec,
                prompt=prompt,
                output_len=output_len,
                concurrency=concurrency,
                api_key=api_key,
            )
            cell = summarize_cell(
                recs,
                output_len=output_len,
                concurrency=concurrency,
                duration_s=duration,
                mode=spec.mode,
                rate_rps=spec.rate_rps,
                slo=spec.slo,
                node_hour_usd=spec.node_hour_usd,
            )
            log(
                f"out={output_len:<5} c={concurrency:<3} n={cell.count:<3} err={cell.errors} "
                f"TTFT p50={_fmt(cell.ttft_ms.p50)} TPOT p50={_fmt(cell.tpot_ms.p50)} "
                f"E2E p50={_fmt(cell.e2e_ms.p50)} ms  {cell.output_tok_s:.1f} tok/s"
            )
            cells.append(cell)
            records.extend(recs)
    return cells, records


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"
