"""The request lifecycle where the gateway's features meet (issue 30): the real hook
chain, limiter logic and SQLite store in-process, a fake engine at Ray's handler.

Each test names the defect it guards; each failed on the hand-wired request path.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from serving._keys import new_key
from serving._wire import ApiKey
from serving.gateway._auth import KeyCache, authenticate, client_address
from serving.gateway._body import Refusal
from serving.gateway._gateway import Gateway
from tests.serving.gateway_harness import FakeEngine, gateway, http_request, read

ASK = {"model": "app-model", "messages": [{"role": "user", "content": "What is 2+2?"}]}


def _key(store: Any, name: str, scopes: list[str] | None = None, **kw: Any) -> tuple[str, ApiKey]:
    plain, rec = new_key(name, scopes or ["infer"])  # type: ignore[arg-type]
    rec = rec.model_copy(update=kw)
    store.add_key(rec)
    return plain, rec


def _rejected(gw: Gateway, reason: str) -> float:
    reg = gw.parts.metrics.registry
    return reg.get_sample_value("gavel_rejected_requests_total", {"reason": reason}) or 0.0


async def _rows(gw: Gateway, store: Any) -> list[dict[str, Any]]:
    await gw.close()  # drains the shadows, flushes capture
    return [dict(r) for r in store.fetch(text("select * from gavel_traffic"))]


async def test_a_budget_without_tpm_is_settled_with_the_real_cost(tmp_path: Path) -> None:
    """Defect 1: a budgeted key without tpm stayed charged at every request's worst case."""
    gw, store, handle = gateway(tmp_path)
    worst = (60 + 600) * 0.001  # prompt estimate (high) and max_tokens at USD 0.001 a token
    token, _ = _key(store, "budgeted", budget_usd_day=3.5 * worst)
    engine = FakeEngine(words=8)
    statuses = []
    for _ in range(8):
        resp = await gw.serve(http_request({**ASK, "max_tokens": 600}, token=token), "chat", engine)
        statuses.append(resp.status_code)
    assert statuses == [200] * 8  # real spend is far below the budget
    await asyncio.sleep(0.05)  # the last settlement reaches the limiter
    spent = handle.limiter._budgets.spent
    day = next(v for (k, p), v in spent.items() if k == "budgeted" and len(p) == 10)
    assert day < 0.5 * worst  # each request settled at its real cost
    assert handle.limiter._budgets.open_reservations() == 0


async def test_a_shadow_of_a_metadata_only_key_keeps_no_text_and_is_erasable(
    tmp_path: Path,
) -> None:
    """Defects 2 and 10: a shadow stored the prompt of a metadata-only key, had no key
    name, and was not capped as its production twin was."""
    swap = {"production": "app-model", "candidate": "app-cand", "shadow_rate": 1.0}
    gw, store, _ = gateway(tmp_path, swap=swap)
    gw.parts.swap.release()
    token, _ = _key(store, "private", metadata_only=True, tpm=100_000)
    engine = FakeEngine()
    body = {"model": "app-model", "messages": [{"role": "user", "content": "MARKER-7 plan"}]}
    resp = await gw.serve(http_request(body, token=token), "chat", engine)
    assert resp.status_code == 200
    rows = await _rows(gw, store)
    assert sorted(r["source"] for r in rows) == ["production", "shadow"]
    assert all(r["key_name"] == "private" for r in rows)
    assert not any("MARKER-7" in str(v) for r in rows for v in r.values())
    production, shadow = engine.seen
    assert shadow["model"] == "app-cand" and shadow["max_tokens"] == production["max_tokens"]


@pytest.mark.parametrize("priority_engines", [True, False])
async def test_the_engine_priority_follows_the_source_never_the_client(
    tmp_path: Path, priority_engines: bool
) -> None:
    """Issue 32: production 0, its shadow 1, the judge 2 at engines that schedule by
    priority (an eval's shadow 2, as its twin); a client's own ``priority`` (here -100,
    to jump the queue) is never passed on, and engines on first come, first served get
    no priority at all."""
    swap = {"production": "app-model", "candidate": "app-cand", "shadow_rate": 1.0}
    gw, store, _ = gateway(tmp_path, swap=swap, priority_engines=priority_engines)
    gw.parts.swap.release()
    app, _ = _key(store, "app")
    judge, _ = _key(store, "judge", ["judge"])
    engine = FakeEngine()
    greedy = {**ASK, "priority": -100}
    assert (await gw.serve(http_request(greedy, token=app), "chat", engine)).status_code == 200
    await asyncio.sleep(0.05)  # the shadow is sent in the background
    background = {"x-gavel-source": "judge"}
    ask_judge = {**greedy, "model": "judge-model"}
    resp = await gw.serve(http_request(ask_judge, token=judge, headers=background), "chat", engine)
    assert resp.status_code == 200
    # An eval of the app model: its shadow never runs ahead of it (2, not the shadow's 1).
    evals, _ = _key(store, "evals", ["infer", "eval"])
    ask_app = http_request(greedy, token=evals, headers={"x-gavel-source": "eval"})
    assert (await gw.serve(ask_app, "chat", engine)).status_code == 200
    await asyncio.sleep(0.05)
    await gw.close()
    got = {(s["model"], s.get("priority")) for s in engine.seen}
    if priority_engines:
        assert got == {("app-model", 0), ("app-cand", 1), ("judge-model", 2),
                       ("app-model", 2), ("app-cand", 2)}  # fmt: skip
    else:
        assert {p for _, p in got} == {None}


async def test_only_judge_and_eval_keys_may_name_a_background_source(tmp_path: Path) -> None:
    """Defect 4: any key's ``X-Gavel-Source: judge`` took the judge's slots and left the
    daily sample."""
    gw, store, _ = gateway(tmp_path, config={"priority": {"max_in_flight": 1, "max_wait_s": 30}})
    infer, _ = _key(store, "app")
    assert await gw.parts.gate.enter("judge")  # the judge holds the replica's one slot
    headers = {"x-gavel-source": "judge"}
    t0 = time.monotonic()
    resp = await gw.serve(http_request(ASK, token=infer, headers=headers), "chat", FakeEngine())
    assert resp.status_code == 200 and time.monotonic() - t0 < 5  # it did not wait
    (row,) = await _rows(gw, store)
    assert row["source"] == "production"


async def test_a_lease_granted_to_a_timed_out_admission_is_released(tmp_path: Path) -> None:
    """Defect 5: the limiter's late answer left its lease held (charged in full)."""
    gw, store, handle = gateway(tmp_path, config={"limits": {"limiter_timeout_s": 0.1}})
    token, _ = _key(store, "busy", rpm=2000)
    handle.delay_s = 0.3
    resp = await gw.serve(http_request(ASK, token=token), "chat", FakeEngine())
    assert resp.status_code == 503 and _rejected(gw, "limiter_unavailable") == 1
    await asyncio.sleep(0.8)  # the late admission, then the release, reach the limiter
    window = handle.limiter._windows.windows["busy"]
    assert window.held_requests == 0 and not window.holds


async def test_a_client_gone_during_admission_returns_its_lease(tmp_path: Path) -> None:
    """Defect 5: a cancelled admission released nothing."""
    gw, store, handle = gateway(tmp_path)
    token, _ = _key(store, "gone", rpm=2000)
    handle.delay_s = 0.3
    task = asyncio.ensure_future(gw.serve(http_request(ASK, token=token), "chat", FakeEngine()))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.8)
    window = handle.limiter._windows.windows["gone"]
    assert window.held_requests == 0 and not window.holds
    assert _rejected(gw, "client_gone") == 1


async def test_wrong_tokens_behind_a_trusted_proxy_back_off_only_their_sender(
    tmp_path: Path,
) -> None:
    """Defect 6: the guard keyed on the proxy's address throttled every client behind it."""
    config = {"auth": {"trusted_proxies": ["10.9.9.9"], "wrong_token_limit": 5}}
    gw, store, _ = gateway(tmp_path, config=config)
    via = {"client": "10.9.9.9"}
    for _ in range(10):
        forwarded = {"x-forwarded-for": "6.6.6.6"}
        bad = http_request(ASK, token="gavel-" + "x" * 43, headers=forwarded, **via)
        assert (await gw.serve(bad, "chat", FakeEngine())).status_code in (401, 429)
    fresh, _ = _key(store, "fresh")
    ok = http_request(ASK, token=fresh, headers={"x-forwarded-for": "7.7.7.7"}, **via)
    assert (await gw.serve(ok, "chat", FakeEngine())).status_code == 200
    assert client_address("10.9.9.9", "1.1.1.1, 6.6.6.6", frozenset({"10.9.9.9"})) == "6.6.6.6"
    assert client_address("8.8.8.8", "6.6.6.6", frozenset({"10.9.9.9"})) == "8.8.8.8"  # untrusted


async def test_expired_secrets_are_not_wrong_tokens(tmp_path: Path) -> None:
    """Defect 6: rotated-out and expired secrets counted towards the backoff."""
    from datetime import UTC, datetime, timedelta

    gw, store, _ = gateway(tmp_path, config={"auth": {"wrong_token_limit": 3}})
    old, _ = _key(store, "old", expires_at=datetime.now(UTC) - timedelta(days=1))
    for _ in range(6):
        assert (
            await gw.serve(http_request(ASK, token=old), "chat", FakeEngine())
        ).status_code == 401
    fresh, _ = _key(store, "new")
    assert (await gw.serve(http_request(ASK, token=fresh), "chat", FakeEngine())).status_code == 200


async def test_a_new_replica_holds_production_until_it_reads_the_swap_state(
    tmp_path: Path,
) -> None:
    """Defect 7: a new replica served the config's canary share before its first read."""
    from serving.swap import record_swap

    swap = {"production": "app-model", "candidate": "app-cand", "canary_weight": 1.0}
    _, store, _ = gateway(tmp_path, swap=swap)
    record_swap(store, production="app-model", candidate="app-cand", action="rollback",
                by="ops", shadow_rate=0.0, canary_weight=0.0, promoted=False)  # fmt: skip
    gw, store, _ = gateway(tmp_path, swap=swap)  # a replica that starts after the rollback
    router = gw.parts.swap
    assert router.arm("app-model", None) == "production"  # before its first read: held
    assert not router.wants_shadow("production")
    gw.swap_state._store = None  # type: ignore[assignment]  # the store is down
    with pytest.raises(AttributeError):  # what the watcher's loop logs and retries
        await gw.swap_state.refresh()
    assert router.arm("app-model", None) == "production"  # still held, not the config's
    gw.swap_state._store = store
    await gw.swap_state.refresh()  # the rollback is read: production still
    assert router.arm("app-model", None) == "production" and not router.held
    token, _ = _key(store, "app")
    engine = FakeEngine()
    await gw.serve(http_request(ASK, token=token), "chat", engine)
    assert [s["model"] for s in engine.seen] == ["app-model"]


async def test_auth_during_a_blackholed_store_fails_closed_after_its_grace() -> None:
    """Defect 8: with the store hanging, every request waited out the connect timeout,
    and a revoked key kept working for the whole outage."""
    plain, rec = new_key("k", ["infer"])

    class Store:
        hang = False
        lookups = 0

        def key_by_hash(self, h: str) -> ApiKey | None:
            self.lookups += 1
            if self.hang:  # a blackhole: no answer, no refusal
                time.sleep(3)
            return rec

        def touch_key(self, name: str, at: object) -> None:
            pass

    store = Store()
    cache = KeyCache(store, ttl_s=0.0, outage_grace_s=1.0, lookup_timeout_s=0.2)  # type: ignore[arg-type]
    auth = f"Bearer {plain}"
    assert (await authenticate(auth, cache)).name == "k"
    store.hang = True
    t0 = time.monotonic()
    for _ in range(20):  # served from the cache within the grace, at most one waiting lookup
        assert (await authenticate(auth, cache)).name == "k"
    assert time.monotonic() - t0 < 1.0 and store.lookups <= 3
    await asyncio.sleep(1.1)
    with pytest.raises(Refusal) as refused:  # the grace is over: closed
        await authenticate(auth, cache)
    assert refused.value.status == 503


async def test_min_tokens_above_the_cap_gavel_set_is_lowered_to_it(tmp_path: Path) -> None:
    """Defect 9 (the min_tokens edge): the cap Gavel sets left min_tokens above it."""
    gw, store, _ = gateway(tmp_path)
    token, _ = _key(store, "metered", tpm=100_000)
    resp = await gw.serve(
        http_request({**ASK, "min_tokens": 300}, token=token), "chat", FakeEngine()
    )
    assert resp.status_code == 200 and resp.headers["x-gavel-max-tokens"] == "256"


async def test_every_refusal_is_counted_by_its_reason(tmp_path: Path) -> None:
    """Defect 14: body, header, model and scope refusals were counted nowhere."""
    gw, store, _ = gateway(tmp_path, config={"limits": {"max_body_bytes": 2048}})
    token, _ = _key(store, "app")
    engine = FakeEngine()
    cases = [
        (http_request(b"{nope", token=token), 400, "body"),
        (http_request(b"x" * 4096, token=token), 413, "too_large"),
        (http_request({**ASK, "model": "nope"}, token=token), 404, "model"),
        (http_request({**ASK, "model": "judge-model"}, token=token), 403, "scope"),
        (http_request(ASK, token=token, headers={"x-gavel-metadata": "[1]"}), 400, "header"),
        (http_request(ASK), 401, "missing_key"),
    ]
    for req, status, reason in cases:
        resp = await gw.serve(req, "chat", engine)
        assert resp.status_code == status and _rejected(gw, reason) == 1, reason
    assert not engine.seen


async def test_a_stream_cut_by_its_client_is_settled_and_captured_once(tmp_path: Path) -> None:
    gw, store, handle = gateway(tmp_path)
    token, _ = _key(store, "streamer", tpm=100_000)
    resp = await gw.serve(
        http_request({**ASK, "stream": True}, token=token), "chat", FakeEngine(words=50)
    )
    it = resp.body_iterator  # type: ignore[attr-defined]
    await it.__anext__()
    await it.aclose()  # the client hangs up after the first chunk
    (row,) = await _rows(gw, store)
    assert row["status"] == 499 and row["completion_tokens"] == 1
    assert handle.limiter._windows.open_reservations(time.monotonic()) == 0
    body = await read(await gw.serve(http_request(ASK, token=token), "chat", FakeEngine()))
    assert b"tok" in body


async def test_a_variants_system_prompt_is_reserved(tmp_path: Path) -> None:
    """Defect 9: the prompt estimate left out a variant's system prompt, so tpm and
    budgets were overshot on every candidate request."""
    variant = {"model_id": "app-long", "base": "app-model", "system_prompt": "x" * 3000}
    swap = {"production": "app-model", "candidate": "app-long", "canary_weight": 1.0,
            "variant": variant}  # fmt: skip
    gw, store, _ = gateway(tmp_path, swap=swap)
    gw.parts.swap.release()
    token, _ = _key(store, "tight", tpm=600)
    engine = FakeEngine()
    resp = await gw.serve(http_request({**ASK, "max_tokens": 10}, token=token), "chat", engine)
    assert resp.status_code == 400 and _rejected(gw, "reserve_above_tpm") == 1
    assert not engine.seen
