"""A real Prometheus for the running stack: its scrape targets, its config, and a local
server (Debian's ``prometheus`` package) for `make dashboards` and the integration test."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from serving._config import GavelModel, StackConfig


class ScrapeTarget(GavelModel):
    """One thing Prometheus scrapes."""

    job: str
    address: str
    """``host:port``"""
    path: str = "/metrics"

    @property
    def url(self) -> str:
        """The full URL of the target."""
        return f"http://{self.address}{self.path}"


def scrape_targets(config: StackConfig) -> list[ScrapeTarget]:
    """The gateway's ``/metrics`` and Ray's metrics export port (vLLM's engine metrics)
    of a stack on this machine. On a cluster, every Ray node serves the latter."""
    host = "127.0.0.1" if config.http.host in ("0.0.0.0", "::") else config.http.host
    return [
        ScrapeTarget(job="gavel-gateway", address=f"{host}:{config.http.port}"),
        ScrapeTarget(job="ray", address=f"127.0.0.1:{config.ray.metrics_export_port}"),
    ]


def prometheus_config(
    targets: list[ScrapeTarget],
    *,
    interval_s: float = 15,
    rule_files: list[Path] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    """A ``prometheus.yml`` that scrapes ``targets`` and loads ``rule_files``."""
    return {
        "global": {
            "scrape_interval": f"{interval_s:g}s",
            "evaluation_interval": f"{interval_s:g}s",
        },
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {
                "job_name": t.job,
                "metrics_path": t.path,
                "static_configs": [{"targets": [t.address]}],
            }
            for t in targets
        ],
    }


def find_prometheus() -> str | None:
    """The ``prometheus`` binary (Debian's package), or ``None``."""
    return shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalPrometheus:
    """A Prometheus process with its own config and storage in ``workdir``."""

    def __init__(
        self,
        targets: list[ScrapeTarget],
        *,
        workdir: Path,
        port: int | None = None,
        interval_s: float = 15,
        rule_files: list[Path] = (),  # type: ignore[assignment]
    ) -> None:
        binary = find_prometheus()
        if binary is None:
            raise FileNotFoundError(
                "no `prometheus` binary; install Debian's package: apt-get install prometheus"
            )
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        cfg = workdir / "prometheus.yml"
        rules = [p.resolve() for p in rule_files]
        cfg.write_text(
            yaml.safe_dump(prometheus_config(targets, interval_s=interval_s, rule_files=rules))
        )
        self._log = (workdir / "prometheus.log").open("w")
        self._proc = subprocess.Popen(
            [binary, f"--config.file={cfg}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle"],
            stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def wait_ready(self, timeout_s: float = 60) -> None:
        """Wait until ``/-/ready`` answers; raises ``RuntimeError`` with the log's tail."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self._log.flush()
        tail = Path(self._log.name).read_text().splitlines()[-5:]
        raise RuntimeError(f"Prometheus did not become ready: {' | '.join(tail)}")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Run an instant query; returns the result vector, raises ``ValueError`` on error."""
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=30)
        body = r.json()
        if body.get("status") != "success":
            raise ValueError(f"{body.get('errorType')}: {body.get('error')}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def targets_up(self) -> dict[str, bool]:
        """Each scrape job's health (``True`` when its last scrape succeeded)."""
        r = httpx.get(f"{self.url}/api/v1/targets", timeout=10).json()
        return {t["labels"]["job"]: t["health"] == "up" for t in r["data"]["activeTargets"]}

    def stop(self) -> None:
        """Stop the server."""
        self._proc.terminate()
        try:
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        self._log.close()

    def wait(self) -> int:
        """Block until the server exits (Ctrl-C stops it); returns its exit code."""
        try:
            return self._proc.wait()
        except KeyboardInterrupt:
            self.stop()
            return 0
