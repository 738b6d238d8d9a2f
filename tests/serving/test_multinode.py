"""Many replicas on many nodes: a local two-node Ray cluster (a head and a worker, each a
raylet of its own on this machine), two gateway replicas pinned to different nodes, and
simulated engines. Checked by counting what was sent, not by the store's primary key.

These tests start their own Ray cluster, so they run in a session of their own:
``pytest -m multinode`` (``make test`` runs it after the real-stack session).
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import yaml

from loadtest.bench._cluster import (
    HEAD_PORT,
    NO_TOKEN,
    Stack,
    scratch_database,
    start_nodes,
    stop_nodes,
    store_outage,
)
from serving.gateway._windows import LEASE_TERM_S
from tests.conftest import require_postgres

pytestmark = pytest.mark.multinode

BASE = "http://127.0.0.1:8000"
BACKGROUND_CAP = 2
SWAP = {
    "production": "judge-model",
    "candidate": "judge-terse",
    "variant": {"model_id": "judge-terse", "base": "judge-model",
                "system_prompt": "Answer in one word.", "max_tokens": 2},
    "shadow_rate": 1.0,
    "canary_weight": 0.5,
}  # fmt: skip
"""A swap on the judge model's id (the other tests send app-model), its candidate a
degraded variant of the same engine."""
"""Judge and eval requests in flight per gateway replica (``gateway.priority``)."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A head and a worker node, and the stack deployed over them."""
    require_postgres()
    try:
        httpx.get(BASE + "/health", timeout=2)
        pytest.fail(f"something already serves {BASE}; these tests need their own stack")
    except httpx.HTTPError:
        pass
    import ray

    os.environ.update(NO_TOKEN)  # as the nodes run (a stray ~/.ray/auth_token changes nothing)
    with scratch_database("gavel_mn") as store_url:
        stack = Stack(tmp_path_factory.mktemp("multinode"), store_url)
        cfg = yaml.safe_load(stack.config.read_text())
        cfg["gateway"]["priority"] = {"max_in_flight": BACKGROUND_CAP, "max_wait_s": 20}
        cfg["swap"] = SWAP
        stack.config.write_text(yaml.safe_dump(cfg))
        start_nodes()
        try:
            stack.serve()
            ray.init(address=f"127.0.0.1:{HEAD_PORT}", logging_level="ERROR")
            yield stack
        finally:
            stack.gavel("down")
            ray.shutdown()
            stop_nodes()


def _ingress_nodes() -> dict[str, str]:
    """Actor name -> node id of each live gateway replica."""
    from ray.util.state import list_actors

    actors = list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
    return {a.name: a.node_id for a in actors if a.class_name.endswith("GavelIngress")}


async def _send(key: str, ids: list[str], *, concurrency: int = 16) -> dict[str, int]:
    """Send one request per id (half streamed); the status each got."""
    sem = asyncio.Semaphore(concurrency)
    out: dict[str, int] = {}

    async def one(c: httpx.AsyncClient, i: int, rid: str) -> None:
        body = {
            "model": "app-model",
            "messages": [{"role": "user", "content": rid}],
            "max_tokens": 16,
            "stream": i % 2 == 0,
        }
        async with sem:
            try:
                headers = {"Authorization": f"Bearer {key}", "X-Request-Id": rid}
                r = await c.post("/v1/chat/completions", json=body, headers=headers)
                out[rid] = r.status_code
            except httpx.HTTPError:
                out[rid] = 0

    async with httpx.AsyncClient(base_url=BASE, timeout=60) as c:
        await asyncio.gather(*(one(c, i, rid) for i, rid in enumerate(ids)))
    return out


def _requests_total(page: str) -> float:
    pattern = r"^gavel_requests_total\{([^}]*)\} (\S+)$"
    return sum(
        float(v)
        for labels, v in re.findall(pattern, page, re.M)
        if 'model="app-model"' in labels and 'source="production"' in labels
    )


def _scrape() -> str:
    r = httpx.get(BASE + "/metrics", timeout=10)
    assert r.status_code == 200, r.text
    return r.text


def test_gateway_replicas_run_on_two_nodes(cluster: Stack) -> None:
    nodes = _ingress_nodes()
    assert len(nodes) == 2 and len(set(nodes.values())) == 2, nodes


def test_every_request_is_counted_once_whichever_replica_is_scraped(cluster: Stack) -> None:
    key = cluster.key()
    before = _requests_total(_scrape())
    prefix = f"mn-m-{uuid.uuid4().hex[:6]}-"
    ids = [f"{prefix}{i}" for i in range(60)]
    statuses = asyncio.run(_send(key, ids))
    assert set(statuses.values()) == {200}
    deadline = time.monotonic() + 15
    while _requests_total(_scrape()) - before < len(ids) and time.monotonic() < deadline:
        time.sleep(0.5)
    # Several scrapes land on both replicas: each page holds all of them, exactly.
    assert [_requests_total(_scrape()) - before for _ in range(8)] == [len(ids)] * 8
    deadline = time.monotonic() + 15
    while len(cluster.captured(prefix)) < len(ids) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cluster.captured(prefix) == dict.fromkeys(ids, 1)


def test_a_limit_holds_across_replicas(cluster: Stack) -> None:
    key = cluster.key("--rpm", "10")
    prefix = f"mn-l-{uuid.uuid4().hex[:6]}-"
    statuses = asyncio.run(_send(key, [f"{prefix}{i}" for i in range(30)]))
    assert sorted(statuses.values()).count(200) == 10
    assert sorted(statuses.values()).count(429) == 20


def test_spool_of_a_killed_replica_is_replayed_by_a_survivor(cluster: Stack) -> None:
    """Both replicas spool to one directory through a store outage; one is killed with its
    spool on disk; every request that got a 200 is in the store once afterwards."""
    import ray

    key = cluster.key()
    warm = asyncio.run(_send(key, [f"mn-w-{uuid.uuid4().hex}" for _ in range(20)]))
    assert set(warm.values()) == {200}  # the key is now cached by both replicas
    prefix = f"mn-s-{uuid.uuid4().hex[:6]}-"
    ids = [f"{prefix}{i}" for i in range(40)]
    store_outage(cluster.store_url, down=True)
    try:
        statuses = asyncio.run(_send(key, ids))
        time.sleep(6)  # every replica's flush has spooled its records
        spool = cluster.folder / "spool"
        owners = {p.name.removesuffix(".owner") for p in spool.glob("*.owner")}
        writers = {p.name.rsplit("-", 1)[0] for p in spool.glob("*-*.jsonl")}
        assert len(writers) == 2 and writers <= owners, (writers, owners)
        victim = next(iter(_ingress_nodes()))
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
    finally:
        store_outage(cluster.store_url, down=False)
    served = [rid for rid, status in statuses.items() if status == 200]
    assert len(served) == len(ids)
    deadline = time.monotonic() + 60
    while len(cluster.captured(prefix)) < len(served) and time.monotonic() < deadline:
        time.sleep(1)
    assert cluster.captured(prefix) == dict.fromkeys(served, 1)


def _kill_limiter() -> None:
    import ray
    from ray.util.state import list_actors

    (name,) = [
        a.name
        for a in list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
        if a.class_name.endswith("RateLimiter")
    ]
    ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)


def _admissions(page: str) -> dict[str, float]:
    pattern = r'^gavel_limiter_admissions_total\{path="(\w+)"\} (\S+)$'
    return {path: float(v) for path, v in re.findall(pattern, page, re.M)}


def test_a_dead_limiter_fails_closed_for_limited_keys_only(cluster: Stack) -> None:
    """The fail-closed path against the real limiter deployment, not a fake handle. The
    key's rpm is too near its use for a lease, so each request asks the limiter."""
    limited, free = cluster.key("--rpm", "20"), cluster.key()
    body = {"model": "app-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}

    def post(key: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.post(BASE + "/v1/chat/completions", json=body, headers=headers, timeout=30)

    assert post(limited).status_code == 200 and post(free).status_code == 200
    _kill_limiter()
    refused = post(limited)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["type"] == "server_error"
    assert post(free).status_code == 200  # a key without limits never waits on the limiter
    deadline = time.monotonic() + 90
    while post(limited).status_code != 200:
        assert time.monotonic() < deadline, "the limiter never came back"
        time.sleep(1)


def test_leases_admit_far_below_the_limit_without_round_trips_and_stay_exact(
    cluster: Stack,
) -> None:
    """A key far below its rpm is admitted by the replicas from their leases; a burst over
    its rpm gets no more than the rpm, and once the leases are back, exactly the rpm."""
    far = cluster.key("--rpm", "2000")
    before = _admissions(_scrape())
    statuses = asyncio.run(_send(far, [f"mn-f-{uuid.uuid4().hex}" for _ in range(80)]))
    assert set(statuses.values()) == {200}
    time.sleep(2)  # the replicas' next reports
    after = _admissions(_scrape())
    trips = after.get("limiter", 0) - before.get("limiter", 0)
    leased = after.get("lease", 0) - before.get("lease", 0)
    assert trips + leased == 80 and trips <= 8, (trips, leased)

    key = cluster.key("--rpm", "64")
    prefix = f"mn-x-{uuid.uuid4().hex[:6]}-"
    burst = asyncio.run(_send(key, [f"{prefix}a{i}" for i in range(120)], concurrency=32))
    assert 40 <= list(burst.values()).count(200) <= 64, burst
    time.sleep(8)  # every lease's term is over and it was returned
    rest = asyncio.run(_send(key, [f"{prefix}b{i}" for i in range(60)], concurrency=32))
    assert list(burst.values()).count(200) + list(rest.values()).count(200) == 64


def _spent(store_url: str, prefix: str) -> float:
    from sqlalchemy import create_engine, text

    engine = create_engine(store_url)
    try:
        with engine.connect() as c:
            query = "SELECT coalesce(sum(cost_usd), 0) FROM gavel_traffic"
            where = " WHERE client_request_id LIKE :p AND source = 'production'"
            return float(c.execute(text(query + where), {"p": prefix + "%"}).scalar_one())
    finally:
        engine.dispose()


def _worst_usd(stack: Stack, rid: str) -> float:
    """The most one of :func:`_send`'s requests may cost: the reservation of its budget."""
    from serving._model_config import PriceConfig
    from serving.gateway._body import token_reserve

    cfg = yaml.safe_load(stack.config.read_text())
    (app,) = [m for m in cfg["models"] if m["role"] == "app"]
    body = {"model": "app-model", "messages": [{"role": "user", "content": rid}], "max_tokens": 16}
    prompt, reserve = token_reserve(body, default_completion=16)
    return PriceConfig.model_validate(app["price"]).cost(prompt, reserve - prompt)


def test_a_budgeted_key_far_below_its_budget_asks_once_per_replica_per_lease_term(
    cluster: Stack,
) -> None:
    """Budgets are leased like rpm and tpm: a key far below its budget makes at most one
    round trip to the limiter per gateway replica per lease term, however many requests
    it sends; the rest are admitted from the replicas' leases."""
    far = cluster.key("--budget-usd-day", "1000")
    before = _admissions(_scrape())
    started = time.monotonic()
    ids = [f"mn-b-{uuid.uuid4().hex}" for _ in range(160)]
    statuses = asyncio.run(_send(far, ids, concurrency=24))
    elapsed = time.monotonic() - started
    assert set(statuses.values()) == {200}
    time.sleep(2)  # the replicas' next reports
    after = _admissions(_scrape())
    trips = after.get("limiter", 0) - before.get("limiter", 0)
    leased = after.get("lease", 0) - before.get("lease", 0)
    terms = math.ceil(elapsed / LEASE_TERM_S) + 1
    assert trips + leased == 160, (trips, leased)
    assert trips <= len(_ingress_nodes()) * terms, (trips, elapsed)


def test_replicas_leasing_a_budget_never_spend_more_than_it(cluster: Stack) -> None:
    """A budget of 40 worst cases, asked for by 120 requests over both replicas with
    leases: what the served requests really cost (captured) stays within the budget, and
    the key is refused with 429 once it is spent."""
    prefix = f"mn-s-{uuid.uuid4().hex[:6]}-"
    ids = [f"{prefix}{i:03d}" for i in range(120)]
    budget = 40 * max(_worst_usd(cluster, rid) for rid in ids)
    key = cluster.key("--budget-usd-day", f"{budget:.10f}")
    statuses = asyncio.run(_send(key, ids, concurrency=24))
    served = [rid for rid, code in statuses.items() if code == 200]
    assert set(statuses.values()) == {200, 429} and len(served) >= 40, statuses
    deadline = time.monotonic() + 60
    while len(cluster.captured(prefix)) < len(served) and time.monotonic() < deadline:
        time.sleep(1)
    spent = _spent(cluster.store_url, prefix)
    assert 0 < spent <= budget, (spent, budget)


def test_a_killed_limiter_keeps_its_windows(cluster: Stack) -> None:
    """Its replacement replays the journal: keys on both paths (every request asks, and
    leases) get no more than their rpm after the kill."""
    asks, leases = cluster.key("--rpm", "24"), cluster.key("--rpm", "400")
    first = asyncio.run(_send(asks, [f"mn-k-{uuid.uuid4().hex}" for _ in range(24)]))
    leased = asyncio.run(_send(leases, [f"mn-k-{uuid.uuid4().hex}" for _ in range(300)]))
    assert set(first.values()) == {200} and set(leased.values()) == {200}
    _kill_limiter()
    probe = cluster.key("--rpm", "20")
    deadline = time.monotonic() + 90
    headers = {"Authorization": f"Bearer {probe}"}
    body = {"model": "app-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    url = BASE + "/v1/chat/completions"
    while httpx.post(url, json=body, headers=headers, timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "the limiter never came back"
        time.sleep(1)
    again = asyncio.run(_send(asks, [f"mn-k-{uuid.uuid4().hex}" for _ in range(10)]))
    assert set(again.values()) == {429}, again
    more = asyncio.run(_send(leases, [f"mn-k-{uuid.uuid4().hex}" for _ in range(200)]))
    assert list(more.values()).count(200) <= 100, more


def _in_flight(page: str) -> float:
    return sum(
        float(v) for v in re.findall(r"^gavel_in_flight_requests\{[^}]*\} (\S+)$", page, re.M)
    )


def test_a_client_gone_at_any_point_is_settled_and_captured(cluster: Stack) -> None:
    """Before the first token (streamed or not) and mid-stream: each request is captured
    with 499, and nothing stays in flight."""
    key = cluster.key("--tpm", "10000000")
    prefix = f"mn-d-{uuid.uuid4().hex[:6]}-"
    long_prompt = "word " * 6000  # ~7,500 tokens: 0.3 s of simulated prefill
    headers = {"Authorization": f"Bearer {key}"}

    def body(stream: bool, prompt: str = "hi") -> dict[str, object]:
        return {
            "model": "app-model",
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 500,
            "ignore_eos": True,
            "stream": stream,
        }

    for i, stream in enumerate((False, True)):  # gone during the prefill
        with pytest.raises(httpx.TimeoutException):
            httpx.post(
                BASE + "/v1/chat/completions",
                json=body(stream, long_prompt),
                headers={**headers, "X-Request-Id": f"{prefix}early{i}"},
                timeout=0.1,
            )
    with httpx.stream(
        "POST",
        BASE + "/v1/chat/completions",
        json=body(True),
        headers={**headers, "X-Request-Id": f"{prefix}mid"},
        timeout=30,
    ) as r:
        for n, _ in enumerate(r.iter_lines()):
            if n >= 10:
                break  # gone mid-stream
    ids = [f"{prefix}early0", f"{prefix}early1", f"{prefix}mid"]
    deadline = time.monotonic() + 30
    while len(cluster.captured(prefix)) < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cluster.captured(prefix) == dict.fromkeys(ids, 1)
    from serving.store import Store

    store = Store(cluster.store_url)
    try:
        today = datetime.now(UTC).date()
        rows = {
            r.client_request_id: r
            for r in store.traffic_for_day(today)
            if r.client_request_id in ids
        }
    finally:
        store.close()
    assert {rid: rows[rid].status for rid in ids} == dict.fromkeys(ids, 499)
    assert (rows[f"{prefix}mid"].completion_tokens or 0) >= 5  # charged what was streamed
    deadline = time.monotonic() + 15
    while _in_flight(_scrape()) != 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _in_flight(_scrape()) == 0


def _waiting(page: str) -> float:
    found = re.findall(r"^gavel_background_waiting_requests (\S+)$", page, re.M)
    return float(found[0]) if found else 0.0


def test_judge_traffic_waits_behind_its_cap_and_gives_its_slots_back(cluster: Stack) -> None:
    """Three bursts of judge-sourced requests, each larger than the two replicas' slots:
    some wait (the gauge shows it), and every one is served, so every slot came back
    (a slot kept would leave the later ones waiting out ``max_wait_s`` into 429)."""
    key = cluster.key("--scopes", "judge,infer")
    headers = {"Authorization": f"Bearer {key}", "X-Gavel-Source": "judge"}
    body = {"model": "judge-model", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 20, "ignore_eos": True}  # fmt: skip

    async def burst(n: int) -> tuple[list[int], float]:
        async with httpx.AsyncClient(base_url=BASE, timeout=60) as c:
            sends = [
                asyncio.create_task(c.post("/v1/chat/completions", json=body, headers=headers))
                for _ in range(n)
            ]
            peak = 0.0
            while not all(t.done() for t in sends):
                peak = max(peak, _waiting((await c.get("/metrics")).text))
                await asyncio.sleep(0.2)
            bad = [t.result().text for t in sends if t.result().status_code != 200]
            assert not bad, bad[:2]
            return [t.result().status_code for t in sends], peak

    peaks = []
    for _ in range(3):
        statuses, peak = asyncio.run(burst(6 * BACKGROUND_CAP))
        assert statuses == [200] * (6 * BACKGROUND_CAP)
        peaks.append(peak)
    assert max(peaks) > 0, peaks
    assert _waiting(_scrape()) == 0


def _dropped(page: str) -> float:
    found = re.findall(r"^gavel_shadow_dropped_requests_total\{[^}]*\} (\S+)$", page, re.M)
    return sum(float(v) for v in found)


def test_a_swap_canaries_and_shadows_without_touching_clients_or_their_limits(
    cluster: Stack,
) -> None:
    """A key at rpm 12 sends 12 requests for the production id. Each is answered on one
    arm (the header says which; the candidate's answers are the variant's, at most 2
    tokens) and captured once with its arm. Every request answered on production's arm
    was sent to the candidate as a shadow or counted as dropped; each shadow is captured
    with its twin's id and never counted against the key (else the key would get 429)."""
    key = cluster.key("--rpm", "12", "--scopes", "judge,infer")
    prefix = f"mn-s-{uuid.uuid4().hex[:6]}-"
    dropped_before = _dropped(_scrape())
    arms: dict[str, str] = {}
    tokens: dict[str, int] = {}
    with httpx.Client(base_url=BASE, timeout=60) as c:
        for i in range(12):
            rid = f"{prefix}{i}"
            r = c.post(
                "/v1/chat/completions",
                json={
                    "model": "judge-model",
                    "max_tokens": 6,
                    "ignore_eos": True,
                    "messages": [{"role": "user", "content": rid}],
                },
                headers={"Authorization": f"Bearer {key}", "X-Request-Id": rid},
            )
            assert r.status_code == 200, r.text
            assert r.json()["model"] == "judge-model"  # the client sees the id it asked for
            arms[rid] = r.headers["x-gavel-arm"]
            tokens[rid] = r.json()["usage"]["completion_tokens"]
    assert {tokens[r] for r in arms if arms[r] == "candidate"} <= {1, 2}
    assert {tokens[r] for r in arms if arms[r] == "production"} <= {6}
    assert set(arms.values()) == {"production", "candidate"}, arms  # 2**-11 to fail by chance
    from serving.store import Store

    store = Store(cluster.store_url)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            day = store.traffic_for_day(datetime.now(UTC).date())
            mine = {
                r.client_request_id: r
                for r in day
                if (r.client_request_id or "").startswith(prefix)
            }
            twins = {r.request_id: r for r in mine.values() if r.arm == "production"}
            shadows = [r for r in day if r.twin_id in twins]
            dropped = _dropped(_scrape()) - dropped_before
            if len(mine) == 12 and len(shadows) + dropped == len(twins):
                break
            time.sleep(0.5)
    finally:
        store.close()
    assert cluster.captured(prefix) == dict.fromkeys(arms, 1)
    assert {rid: r.arm for rid, r in mine.items()} == arms
    assert {r.model for r in mine.values() if r.arm == "candidate"} == {"judge-terse"}
    assert len(shadows) + dropped == len(twins) and shadows, (len(shadows), dropped, len(twins))
    for s in shadows:
        twin = twins[s.twin_id]  # type: ignore[index]
        assert (s.source, s.arm, s.model, s.key_name) == (
            "shadow",
            "candidate",
            "judge-terse",
            twin.key_name,  # a shadow carries its twin's key (never charged to it)
        )
        assert s.request["messages"] == twin.request["messages"]
        assert (s.completion_tokens or 0) <= 2 and s.status == 200


def test_swap_promote_and_rollback_under_traffic_drop_nothing(cluster: Stack) -> None:
    """Requests for the production id flow at concurrency 8 while ``gavel swap promote``
    and then ``gavel swap rollback`` run: every request gets 200 and is captured once;
    once a change is applied, every answer comes from its arm (the header says which)."""
    key = cluster.key("--scopes", "judge,infer")
    prefix = f"mn-p-{uuid.uuid4().hex[:6]}-"
    seen: list[tuple[float, str, int, str]] = []  # (sent at, id, status, arm)
    marks: dict[str, float] = {}

    async def traffic(stop: asyncio.Event) -> None:
        n = 0

        async def one(c: httpx.AsyncClient, rid: str) -> None:
            t = time.monotonic()
            r = await c.post(
                "/v1/chat/completions",
                json={
                    "model": "judge-model",
                    "max_tokens": 3,
                    "messages": [{"role": "user", "content": rid}],
                },
                headers={"Authorization": f"Bearer {key}", "X-Request-Id": rid},
            )
            seen.append((t, rid, r.status_code, r.headers.get("x-gavel-arm", "")))

        async with httpx.AsyncClient(base_url=BASE, timeout=60) as c:
            running: set[asyncio.Task[None]] = set()
            while not stop.is_set():
                while len(running) < 8:
                    task = asyncio.create_task(one(c, f"{prefix}{n}"))
                    running.add(task)
                    task.add_done_callback(running.discard)
                    n += 1
                await asyncio.sleep(0.02)
            await asyncio.gather(*running)

    async def scenario() -> None:
        stop = asyncio.Event()
        load = asyncio.create_task(traffic(stop))
        await asyncio.sleep(3)
        for action in ("promote", "rollback"):
            marks[f"{action} asked"] = time.monotonic()
            done = await asyncio.to_thread(cluster.gavel, "swap", action, "--by", "ci")
            assert done.returncode == 0 and "applied by every" in done.stdout, done
            marks[action] = time.monotonic()
            await asyncio.sleep(4)
        stop.set()
        await load

    asyncio.run(scenario())
    assert seen and {s for _, _, s, _ in seen} == {200}, [x for x in seen if x[2] != 200][:3]
    # Applied between asking and the command's return: the window in between is either.
    promoted = {a for t, _, _, a in seen if marks["promote"] < t < marks["rollback asked"]}
    rolled_back = {a for t, _, _, a in seen if t > marks["rollback"]}
    assert promoted == {"candidate"} and rolled_back == {"production"}, (promoted, rolled_back)
    ids = [rid for _, rid, _, _ in seen]
    deadline = time.monotonic() + 30
    while len(cluster.captured(prefix)) < len(ids) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cluster.captured(prefix) == dict.fromkeys(ids, 1)
    status = cluster.gavel("swap", "status").stdout
    assert "promote  by ci" in status and "rollback by ci" in status, status
