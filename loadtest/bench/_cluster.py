"""A local two-node Ray cluster with Gavel on simulated engines, for the multi-node tests
and the chaos benchmark: a head and a worker (each its own raylet, with resources
``head`` and ``worker``), a PostgreSQL database of its own, two gateway replicas on
different nodes, and the proxy on the head spreading requests over both replicas."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).parent / "ray")
GAVEL = str(Path(sys.executable).parent / "gavel")
HEAD_PORT = 6391
WORKER_METRICS_PORT = 8082
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
NO_TOKEN = {"RAY_AUTH_MODE": "disabled"}
"""Token auth off, explicitly: with RAY_AUTH_MODE unset, ``ray start --head`` turns it on
whenever ``~/.ray/auth_token`` exists (any local ``ray.init()`` writes one), and the
worker node then cannot join."""
SPREAD = {**os.environ, "RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING": "0", **NO_TOKEN}
"""The one proxy (on the head) spreads requests over both gateway replicas instead of
preferring the one on its own node, as a load balancer over several nodes' proxies does."""


def stack_config(folder: Path, store_url: str) -> dict[str, Any]:
    """The stack: app (2 simulated H100 replicas) and judge (1 simulated L4), two gateway
    replicas at most one per node, the proxy on the head only."""

    def sim(role: str, model_id: str, profile: str, replicas: int) -> dict[str, Any]:
        return {
            "role": role,
            "model_id": model_id,
            "source": {"simulate": profile},
            "deployment": {"num_replicas": replicas, "max_ongoing_requests": 512},
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


def _ray(*args: str) -> None:
    proc = subprocess.run(
        [RAY, *args], capture_output=True, text=True, timeout=120, check=False, env=SPREAD
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ray {args[0]} failed: {proc.stderr[-2000:]}")


def start_nodes() -> None:
    """Start the head and the worker node on this machine."""
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


def stop_nodes() -> None:
    """Stop every Ray process on this machine."""
    subprocess.run([RAY, "stop", "--force"], capture_output=True, check=False)


def worker_raylet_pid() -> int | None:
    """The worker node's raylet (its command line carries the worker's metrics port)."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "raylet" in cmd.split(" ", 1)[0] and f"metrics-export-port={WORKER_METRICS_PORT}" in cmd:
            return int(d.name)
    return None


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A PostgreSQL database of its own (created, then dropped); yields its URL."""
    from sqlalchemy import create_engine, text

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_SERVER + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def store_outage(store_url: str, *, down: bool) -> None:
    """Refuse (or allow again) every connection to the store's database."""
    from sqlalchemy import create_engine, text

    name = store_url.rsplit("/", 1)[1]
    admin = create_engine(PG_SERVER + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        allow = "false" if down else "true"
        c.execute(text(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS {allow}"))
        if down:
            c.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
    admin.dispose()


def captured(store_url: str, prefix: str) -> dict[str, int]:
    """Client request id -> rows in the store, for ids starting with ``prefix``."""
    from sqlalchemy import create_engine, text

    engine = create_engine(store_url)
    try:
        with engine.connect() as c:
            query = "SELECT client_request_id, count(*) FROM gavel_traffic"
            rows = c.execute(
                text(query + " WHERE client_request_id LIKE :p GROUP BY 1"), {"p": prefix + "%"}
            ).all()
    finally:
        engine.dispose()
    return {str(r[0]): int(r[1]) for r in rows}


class Stack:
    """The stack deployed over the two nodes, and the ``gavel`` CLI pointed at it."""

    def __init__(self, folder: Path, store_url: str) -> None:
        self.folder = folder
        self.store_url = store_url
        self.config = folder / "stack.yaml"
        self.config.write_text(yaml.safe_dump(stack_config(folder, store_url)))
        self.env = {
            **os.environ,
            "GAVEL_CONFIG": str(self.config),
            "GAVEL_STATE_DIR": str(folder / "state"),
            **NO_TOKEN,
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

    def serve(self) -> None:
        """Deploy (``gavel serve --detach``) onto the running nodes."""
        proc = self.gavel("serve", "--detach", "--timeout", "300", timeout=400)
        if proc.returncode != 0:
            raise RuntimeError(proc.stdout[-3000:] + proc.stderr[-3000:])

    def key(self, *options: str) -> str:
        """A new key's plaintext."""
        proc = self.gavel("keys", "create", f"mn-{uuid.uuid4().hex[:8]}", *options)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr)
        return proc.stdout.strip().splitlines()[-1]

    def captured(self, prefix: str) -> dict[str, int]:
        """Client request id -> rows in this stack's store, for ids starting with ``prefix``."""
        return captured(self.store_url, prefix)
