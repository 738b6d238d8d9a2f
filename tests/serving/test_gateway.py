"""Gateway acceptance on the real stack with the official openai client.

Auth/scope/limit errors, exact metrics, capture of 50 concurrent requests into SQLite and
then PostgreSQL, the PostgreSQL server stopped and restarted during traffic, and a
graceful restart of the ingress replica during traffic.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from serving.store import Store
from tests.conftest import CONFIG, ROOT, SESSION_ON_POSTGRES, STORE_URL, run_gavel

pytestmark = pytest.mark.stack


def _client(stack: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack, api_key=key, max_retries=0, timeout=120)


def _create_key(*args: str, config: str = CONFIG) -> tuple[str, str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    proc = run_gavel("keys", "--config", config, "create", name, *args)
    assert proc.returncode == 0, proc.stderr
    return name, proc.stdout.strip().splitlines()[-1]


def _err(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"] and err["type"]
    return err  # type: ignore[no-any-return]


def _chat(stack: str, key: str | None, model: str = "app-model") -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    return httpx.post(f"{stack}/chat/completions", json=body, headers=headers, timeout=60)


def test_health_is_open(stack: str) -> None:
    assert httpx.get(stack.removesuffix("/v1") + "/health").json() == {"status": "ok"}


def test_missing_wrong_and_revoked_keys_get_401(stack: str, api_key: str) -> None:
    _err(_chat(stack, None), 401)
    _err(httpx.get(f"{stack}/models"), 401)
    assert _err(_chat(stack, "gvl_wrong"), 401)["code"] == "invalid_api_key"
    name, key = _create_key("--scopes", "infer")
    assert _chat(stack, key).status_code == 200
    assert run_gavel("keys", "revoke", name).returncode == 0
    revoked_at = time.monotonic()
    deadline = revoked_at + 10  # the ingress caches a key for 2 s
    while _chat(stack, key).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert time.monotonic() - revoked_at < 4.5  # cache TTL plus a request's time
    assert "revoked" in str(_err(_chat(stack, key), 401)["message"])
    with pytest.raises(openai.AuthenticationError):
        _client(stack, key).models.list()
    assert _chat(stack, api_key).status_code == 200  # still serving


def test_scope_is_needed_for_the_judge_model(stack: str) -> None:
    _, key = _create_key("--scopes", "infer")
    err = _err(_chat(stack, key, model="judge-model"), 403)
    assert "judge" in str(err["message"])
    with pytest.raises(openai.PermissionDeniedError):
        _client(stack, key).chat.completions.create(
            model="judge-model", messages=[{"role": "user", "content": "x"}], max_tokens=1
        )
    _, both = _create_key("--scopes", "infer,judge")
    assert _chat(stack, both, model="judge-model").status_code == 200


def test_over_the_limit_gets_429_with_retry_after(stack: str, api_key: str) -> None:
    _, key = _create_key("--scopes", "infer", "--rpm", "2")
    assert [_chat(stack, key).status_code for _ in range(2)] == [200, 200]
    r = _chat(stack, key)
    assert _err(r, 429)["code"] == "rate_limit_exceeded"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    with pytest.raises(openai.RateLimitError):
        _client(stack, key).chat.completions.create(
            model="app-model", messages=[{"role": "user", "content": "x"}], max_tokens=1
        )
    assert _chat(stack, api_key).status_code == 200


def _metric(stack: str, name: str, model: str) -> float:
    text = httpx.get(stack.removesuffix("/v1") + "/metrics").text
    pattern = rf'^{name}\{{(?=[^}}]*model="{model}")[^}}]*\}} ([0-9.e+]+)$'
    return sum(float(v) for v in re.findall(pattern, text, flags=re.M))


def test_metrics_move_by_exactly_the_requests_sent(stack: str, api_key: str) -> None:
    before = _metric(stack, "gavel_requests_total", "judge-model")
    tokens_before = _metric(stack, "gavel_output_tokens_total", "judge-model")
    client = _client(stack, api_key)
    sent = 0
    for _ in range(5):
        r = client.chat.completions.create(
            model="judge-model", messages=[{"role": "user", "content": "Hi"}], max_tokens=3
        )
        sent += r.usage.completion_tokens if r.usage else 0
    assert _metric(stack, "gavel_requests_total", "judge-model") - before == 5
    assert _metric(stack, "gavel_output_tokens_total", "judge-model") - tokens_before == sent
    text = httpx.get(stack.removesuffix("/v1") + "/metrics").text
    expected = [
        "gavel_ttft_seconds_bucket",
        "gavel_e2e_seconds_bucket",
        "gavel_output_length_tokens_bucket",
        "gavel_in_flight_requests",
        "gavel_capture_queue_depth",
        "gavel_capture_spool_records",
        "gavel_cost_usd",
    ]
    for name in expected:
        assert name in text
    assert api_key not in text and "Hi" not in text


async def _traffic(stack: str, key: str, n: int, *, concurrency: int = 50,
                   spacing_s: float = 0.0,
                   finished: list[float] | None = None) -> dict[str, str]:  # fmt: skip
    """Send n mixed streaming/non-streaming chats; return {response id: text} of completed
    ones (and append the monotonic time each completed to ``finished``)."""
    client = openai.AsyncOpenAI(base_url=stack, api_key=key, max_retries=0, timeout=180)
    sem = asyncio.Semaphore(concurrency)
    done: dict[str, str] = {}

    async def one(i: int) -> None:
        await asyncio.sleep(i * spacing_s)
        msgs = [{"role": "user", "content": f"Say a word about the number {i}."}]
        async with sem:
            try:
                if i % 2:
                    stream = await client.chat.completions.create(
                        model="app-model",
                        messages=msgs,
                        max_tokens=6,
                        stream=True,  # type: ignore[arg-type]
                    )
                    rid, text = "", ""
                    async for chunk in stream:
                        rid = chunk.id
                        if chunk.choices and chunk.choices[0].delta.content:
                            text += chunk.choices[0].delta.content
                else:
                    r = await client.chat.completions.create(
                        model="app-model",
                        messages=msgs,
                        max_tokens=6,  # type: ignore[arg-type]
                    )
                    rid, text = r.id, r.choices[0].message.content or ""
            except (openai.APIError, httpx.HTTPError):
                return  # not completed: not counted
            done[rid] = text
            if finished is not None:
                finished.append(time.monotonic())

    try:
        await asyncio.gather(*(one(i) for i in range(n)))
    finally:
        await client.close()
    return done


def _assert_captured(store_url: str, done: dict[str, str], *, timeout_s: float = 30) -> None:
    store = Store(store_url)
    deadline = time.monotonic() + timeout_s
    got = []
    while time.monotonic() < deadline:
        got = store.traffic_by_ids(done)
        if len(got) == len(done):
            break
        time.sleep(0.5)
    by_id = {r.request_id: r for r in got}
    missing = set(done) - set(by_id)
    assert not missing, f"{len(missing)} of {len(done)} completed requests not captured"
    for rid, text in done.items():
        rec = by_id[rid]
        assert rec.response_text == text
        assert rec.status == 200 and rec.key_name
        assert rec.prompt_tokens and rec.completion_tokens
        assert rec.e2e_ms and rec.e2e_ms > 0 and rec.cost_usd is not None
        if rec.stream:
            assert rec.ttft_ms is not None and 0 < rec.ttft_ms <= rec.e2e_ms
    store.close()


def test_50_concurrent_requests_are_captured_in_the_session_store(stack: str, api_key: str) -> None:
    """On the session's one store: PostgreSQL under CI's simulated-engine tier, the
    embedded SQLite in the real-engine tier's quickstart and OpenAI tests."""
    done = asyncio.run(_traffic(stack, api_key, 50))
    assert len(done) == 50
    _assert_captured(STORE_URL, done)


def test_traffic_export(stack: str, api_key: str, tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    day = time.strftime("%Y-%m-%d", time.gmtime())
    proc = run_gavel("traffic", "export", "--date", day, "--format", "jsonl", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().count("\n") >= 50
    pq = tmp_path / "t.parquet"
    proc = run_gavel("traffic", "export", "--date", day, "--format", "parquet", "--out", str(pq))
    assert proc.returncode == 0 and pq.read_bytes()[:4] == b"PAR1"


def test_metadata_only_key_stores_no_text(stack: str) -> None:
    _, key = _create_key("--scopes", "infer", "--metadata-only")
    r = _client(stack, key).chat.completions.create(
        model="app-model", messages=[{"role": "user", "content": "my secret plan"}], max_tokens=3
    )
    store = Store(STORE_URL)
    deadline = time.monotonic() + 10
    recs = []
    while time.monotonic() < deadline and not recs:
        recs = store.traffic_by_ids([r.id])
        time.sleep(0.3)
    (rec,) = recs
    assert rec.metadata_only and rec.response_text is None
    assert "messages" not in rec.request and "my secret plan" not in rec.model_dump_json()
    assert rec.completion_tokens and rec.cost_usd is not None


# --- PostgreSQL as the store, then restarts ---------------------------------------


def _new_ingress_version(flush_s: float) -> None:
    """Give the session's config another capture flush interval, so that ``gavel serve``
    makes a new ingress version and Serve replaces the ingress replicas (the store and
    the spool unchanged). The session's stack stays at its config file."""
    data = yaml.safe_load((ROOT / CONFIG).read_text())
    data["gateway"].setdefault("capture", {})["flush_interval_s"] = flush_s
    (ROOT / CONFIG).write_text(yaml.safe_dump(data))


def _deploy(config: Path | str) -> None:
    proc = run_gavel("serve", "--detach", "--config", str(config), timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]


def _pg(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    cmd = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action]
    if action == "stop":
        cmd += ["-m", "fast"]
    subprocess.run(cmd, check=True, timeout=60)


@pytest.fixture
def pg_stack(stack: str, api_key: str, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """The session stack when its store is PostgreSQL (always under CI's simulated-engine
    tier): no store-switch redeploy."""
    if not SESSION_ON_POSTGRES:
        pytest.skip("the session's store is SQLite; GAVEL_TEST_STORE=postgresql runs this")
    yield stack, api_key, tmp_path


def test_postgresql_stopped_during_traffic_loses_nothing(pg_stack: tuple[str, str, Path]) -> None:
    if not Path("/usr/bin/pg_ctlcluster").exists() or os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true needs pg_ctlcluster (as root) to stop PostgreSQL")
        pytest.skip("cannot stop PostgreSQL here (needs pg_ctlcluster as root)")
    stack, key, _ = pg_stack
    assert _chat(stack, key).status_code == 200  # the key is cached by the ingress

    window: list[float] = []
    finished: list[float] = []

    def outage() -> None:
        time.sleep(2)
        _pg("stop")
        window.append(time.monotonic())
        time.sleep(6)
        window.append(time.monotonic())
        _pg("start")

    t = threading.Thread(target=outage)
    t.start()
    try:
        done = asyncio.run(
            _traffic(stack, key, 40, concurrency=4, spacing_s=0.25, finished=finished)
        )
    finally:
        t.join()
    assert len(done) == 40
    # The outage overlapped the traffic: requests were answered while the store was down.
    assert sum(window[0] < f < window[1] for f in finished) >= 5, (window, finished)
    _assert_captured(STORE_URL, done, timeout_s=60)
    rows = Store(STORE_URL).traffic_by_ids(done)  # replayed whole from the spool
    assert all(r.status == 200 and r.response_text and r.completion_tokens for r in rows)


def test_ingress_restart_during_traffic_loses_no_completed_request(
    stack: str, api_key: str
) -> None:
    """The redeploy is what is tested: a new ingress version during traffic (the session
    goes on with it; no second redeploy to put it back)."""
    key = api_key
    _new_ingress_version(flush_s=0.75)

    window: list[float] = []
    finished: list[float] = []

    def redeploy() -> None:
        time.sleep(3)
        window.append(time.monotonic())
        _deploy(CONFIG)
        window.append(time.monotonic())

    t = threading.Thread(target=redeploy)
    t.start()
    try:
        done = asyncio.run(
            _traffic(stack, key, 60, concurrency=4, spacing_s=0.5, finished=finished)
        )
    finally:
        t.join()
    assert len(done) >= 10
    # The restart overlapped the traffic: answers came before it and while it ran.
    assert min(finished) < window[0], (window, finished)
    assert any(window[0] < f < window[1] for f in finished), (window, finished)
    _assert_captured(STORE_URL, done, timeout_s=60)
