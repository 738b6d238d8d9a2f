"""Many replicas on many nodes: a local two-node Ray cluster (a head and a worker, each a
raylet of its own on this machine), two gateway replicas pinned to different nodes, and
simulated engines. Checked by counting what was sent, not by the store's primary key.

These tests start their own Ray cluster, so they run in a session of their own:
``pytest -m multinode`` (``make test`` runs it after the real-stack session).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, text

from tests.conftest import GAVEL, PG_URL, ROOT, require_postgres

pytestmark = pytest.mark.multinode

HEAD_PORT = 6391
BASE = "http://127.0.0.1:8000"
RAY = str(Path(sys.executable).parent / "ray")


SPREAD = {**os.environ, "RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING": "0"}
"""The one proxy (on the head) spreads requests over both gateway replicas instead of
preferring the one on its own node, as a load balancer over several nodes' proxies does."""


def _ray(*args: str) -> None:
    proc = subprocess.run(
        [RAY, *args], capture_output=True, text=True, timeout=120, check=False, env=SPREAD
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


class Cluster:
    """The running two-node stack: its config, store and environment for ``gavel``."""

    def __init__(self, folder: Path, store_url: str) -> None:
        self.folder = folder
        self.store_url = store_url
        self.config = folder / "stack.yaml"
        self.env = {
            **os.environ,
            "GAVEL_CONFIG": str(self.config),
            "GAVEL_STATE_DIR": str(folder / "state"),
        }

    def gavel(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run the ``gavel`` CLI against this stack."""
        return subprocess.run(
            [GAVEL, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def key(self, *options: str) -> str:
        """A new key's plaintext."""
        proc = self.gavel("keys", "create", f"mn-{uuid.uuid4().hex[:8]}", *options)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip().splitlines()[-1]

    def captured(self, prefix: str) -> dict[str, int]:
        """Client request id -> rows in the store, for ids starting with ``prefix``."""
        engine = create_engine(self.store_url)
        try:
            with engine.connect() as c:
                rows = c.execute(
                    text(
                        "SELECT client_request_id, count(*) FROM gavel_traffic "
                        "WHERE client_request_id LIKE :p GROUP BY 1"
                    ),
                    {"p": prefix + "%"},
                ).all()
        finally:
            engine.dispose()
        return {str(r[0]): int(r[1]) for r in rows}


def _config(folder: Path, store_url: str) -> dict[str, object]:
    def sim(role: str, model_id: str, profile: str, replicas: int) -> dict[str, object]:
        return {
            "role": role,
            "model_id": model_id,
            "source": {"simulate": profile},
            "deployment": {"num_replicas": replicas},
            "resources": {"cpus": 0.25},
            "stream_batching_interval_ms": 0,
            "price": {"input_per_mtok": 0.1, "output_per_mtok": 0.4},
        }

    return {
        "app_name": "gavel",
        "judging": str(ROOT / "config" / "judging.yaml"),
        "state_dir": str(folder / "state"),
        "http": {"host": "127.0.0.1", "port": 8000, "proxy_location": "HeadOnly"},
        "ray": {"address": f"127.0.0.1:{HEAD_PORT}", "metrics_export_port": 8081},
        "gateway": {
            "deployment": {"num_replicas": 2, "max_replicas_per_node": 1},
            "store": {"url": store_url},
            "capture": {"spool_dir": str(folder / "spool")},
        },
        "models": [
            sim("app", "app-model", "llama-3.1-8b-h100", 2),
            sim("judge", "judge-model", "llama-3.1-8b-l4", 1),
        ],
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A head and a worker node, and the stack deployed over them."""
    require_postgres()
    try:
        httpx.get(BASE + "/health", timeout=2)
        pytest.fail(f"something already serves {BASE}; these tests need their own stack")
    except httpx.HTTPError:
        pass
    folder = tmp_path_factory.mktemp("multinode")
    name = f"gavel_mn_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    store_url = PG_URL.rsplit("/", 1)[0] + "/" + name
    (folder / "stack.yaml").write_text(yaml.safe_dump(_config(folder, store_url)))
    common = ["--node-ip-address=127.0.0.1", "--disable-usage-stats", "--num-cpus=6"]
    _ray(
        "start",
        "--head",
        f"--port={HEAD_PORT}",
        "--metrics-export-port=8081",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        '--resources={"head": 1}',
        *common,
    )
    _ray(
        "start",
        f"--address=127.0.0.1:{HEAD_PORT}",
        "--metrics-export-port=8082",
        '--resources={"worker": 1}',
        *common,
    )
    up = Cluster(folder, store_url)
    try:
        served = up.gavel("serve", "--detach", "--timeout", "300", timeout=400)
        assert served.returncode == 0, served.stdout[-3000:] + served.stderr[-3000:]
        import ray

        ray.init(address=f"127.0.0.1:{HEAD_PORT}", logging_level="ERROR")
        yield up
    finally:
        up.gavel("down")
        import ray

        ray.shutdown()
        subprocess.run([RAY, "stop", "--force"], capture_output=True, check=False)
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


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


def test_gateway_replicas_run_on_two_nodes(cluster: Cluster) -> None:
    nodes = _ingress_nodes()
    assert len(nodes) == 2 and len(set(nodes.values())) == 2, nodes


def test_every_request_is_counted_once_whichever_replica_is_scraped(cluster: Cluster) -> None:
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


def test_a_limit_holds_across_replicas(cluster: Cluster) -> None:
    key = cluster.key("--rpm", "10")
    prefix = f"mn-l-{uuid.uuid4().hex[:6]}-"
    statuses = asyncio.run(_send(key, [f"{prefix}{i}" for i in range(30)]))
    assert sorted(statuses.values()).count(200) == 10
    assert sorted(statuses.values()).count(429) == 20


def _store_outage(store_url: str, *, down: bool) -> None:
    name = store_url.rsplit("/", 1)[1]
    admin = create_engine(PG_URL.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(
            text(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS {'false' if down else 'true'}")
        )
        if down:
            c.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
    admin.dispose()


def test_spool_of_a_killed_replica_is_replayed_by_a_survivor(cluster: Cluster) -> None:
    """Both replicas spool to one directory through a store outage; one is killed with its
    spool on disk; every request that got a 200 is in the store once afterwards."""
    import ray

    key = cluster.key()
    warm = asyncio.run(_send(key, [f"mn-w-{uuid.uuid4().hex}" for _ in range(20)]))
    assert set(warm.values()) == {200}  # the key is now cached by both replicas
    prefix = f"mn-s-{uuid.uuid4().hex[:6]}-"
    ids = [f"{prefix}{i}" for i in range(40)]
    _store_outage(cluster.store_url, down=True)
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
        _store_outage(cluster.store_url, down=False)
    served = [rid for rid, status in statuses.items() if status == 200]
    assert len(served) == len(ids)
    deadline = time.monotonic() + 60
    while len(cluster.captured(prefix)) < len(served) and time.monotonic() < deadline:
        time.sleep(1)
    assert cluster.captured(prefix) == dict.fromkeys(served, 1)
