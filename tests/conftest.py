"""Session fixtures: the real stack (Ray Serve and the gateway), started once per session.

**Two engines, two tiers.** ``GAVEL_TEST_ENGINE=sim`` (the default) serves both models
with the simulated engine (``serving.sim``: GPU token rates, deterministic text, valid
structured outputs), so that every test of what sits above the engine (the gateway,
limits, capture, outages, metrics, swap mechanics, the lifecycle, evals and judging
mechanics) runs at GPU speed on a real Ray Serve stack. ``GAVEL_TEST_ENGINE=vllm``
serves the real SmolLM2 on vLLM's CPU build, for the tests marked ``engine``, which need
the real engine (OpenAI compatibility, the README quickstart, one real daily judge run,
the ``ray_vllm_*`` panels, Ray Data's own vLLM). In a sim session, ``engine`` tests are
skipped, saying so; ``make test`` runs both sessions.

Set ``GAVEL_TEST_REUSE_STACK=1`` to run against a stack that is already up (it is
then left running); otherwise the session starts one with ``gavel serve --detach``
and stops it with ``gavel down`` at the end.

Each test session works in a temporary folder of its own, never in the working tree's
``.gavel/``: its stack config (``config/cpu.yaml`` with the store and the spool moved
there) is ``$GAVEL_CONFIG`` and its stack state is under ``$GAVEL_STATE_DIR``, which
the ``gavel`` subprocesses inherit. The session's stack keeps one store for the whole
session (``GAVEL_TEST_STORE``: a PostgreSQL database of its own, created and dropped by
the session, or SQLite in the session folder): no test switches the store.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.otlp_receiver import OtlpReceiver

ROOT = Path(__file__).resolve().parents[1]
GAVEL = str(Path(sys.executable).parent / "gavel")
BASE_URL = "http://127.0.0.1:8000/v1"


def _session_dir() -> Path:
    """The session's folder, made once per process (xdist-free, so once per session)."""
    existing = os.environ.get("GAVEL_TEST_DIR")
    if existing:
        return Path(existing)
    made = Path(tempfile.mkdtemp(prefix="gavel-test-"))
    os.environ["GAVEL_TEST_DIR"] = str(made)
    return made


SESSION_DIR = _session_dir()
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


def postgres_available() -> str | None:
    """``None`` if the PostgreSQL test server answers, else why not."""
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            return None
    except OSError as exc:
        return f"no PostgreSQL at 127.0.0.1:5432 ({exc.strerror or exc})"


def _session_store() -> str:
    """The session stack's one store (no store-switch redeploys): ``GAVEL_TEST_STORE``
    (``postgresql`` or ``sqlite``); by default PostgreSQL under CI or where a server
    answers, else the embedded SQLite."""
    kind = os.environ.get("GAVEL_TEST_STORE") or (
        "postgresql" if os.environ.get("CI") == "true" or postgres_available() is None else "sqlite"
    )
    if kind == "sqlite":
        return f"sqlite:///{SESSION_DIR / 'gavel.db'}"
    if kind != "postgresql":
        raise pytest.UsageError(f"GAVEL_TEST_STORE={kind!r}: use postgresql or sqlite")
    suffix = "".join(c for c in SESSION_DIR.name.lower() if c.isalnum())[-12:]
    return f"{PG_SERVER}/gavel_session_{suffix}"


STORE_URL = _session_store()
"""The session's store: the stack under test captures into it (one store per session)."""
SESSION_ON_POSTGRES = STORE_URL.startswith("postgresql")
CONFIG = str(SESSION_DIR / "stack.yaml")
LOG = SESSION_DIR / "test-serve.log"


SESSION_SWAP = {
    "production": "app-model",
    "candidate": "app-terse",
    "variant": {"model_id": "app-terse", "base": "app-model", "max_tokens": 1},
    "shadow_rate": 0.0,
    "canary_weight": 0.0,
    "checks": [{"name": "three_words", "assertion": "min_words", "min": 3}],
    "criteria": ["concise"],
    "judge_sample": 6,
    "min_pairs": 10,
}
"""A degraded candidate beside the app model (the same engine, one token per answer),
off until a test turns it on (``gavel swap set``)."""


ENGINE = os.environ.get("GAVEL_TEST_ENGINE", "sim")
"""The session stack's engine: ``sim`` (the default) or ``vllm``."""
OTLP_PORT = 14318
"""The simulated-engine session's stack exports its traces here (``otlp`` fixture)."""
_RECEIVERS: dict[str, OtlpReceiver] = {}

PROXY = os.environ.get("GAVEL_TEST_PROXY", "ray")
"""The session stack's ``http.proxy``: ``ray`` (the default), ``haproxy`` or ``direct``."""

SIM_PROFILES = {"app": "llama-3.1-8b-h100", "judge": "llama-3.1-8b-l4"}


def _write_session_config() -> None:
    """config/cpu.yaml moved to the session folder: its paths into the checkout made
    absolute (they are relative to the config file's folder), the store and spool apart;
    on the simulated engine unless ``GAVEL_TEST_ENGINE=vllm`` (same ids, prices and SLOs)."""
    data = yaml.safe_load((ROOT / "config/cpu.yaml").read_text())
    for model in data["models"]:
        model["source"]["path"] = str((ROOT / "config" / model["source"]["path"]).resolve())
        if ENGINE == "sim":
            model["source"] = {"simulate": SIM_PROFILES[model["role"]]}
            model["engine"] = {"max_model_len": model["engine"].get("max_model_len", 2048)}
            model.pop("env", None)
    data["judging"] = str(ROOT / "config" / data.get("judging", "judging.yaml"))
    data["state_dir"] = str(SESSION_DIR / "state")
    gateway = data.setdefault("gateway", {})
    gateway["store"] = {"url": STORE_URL}
    if ENGINE == "sim":  # traced, to the session's OTLP receiver (the `otlp` fixture)
        gateway["tracing"] = {
            "enabled": True,
            "endpoint": f"http://127.0.0.1:{OTLP_PORT}/v1/traces",
        }
    gateway.setdefault("capture", {})["spool_dir"] = str(SESSION_DIR / "spool")
    data["swap"] = SESSION_SWAP
    if PROXY != "ray":  # the gateway's other paths, for a whole tier on them
        data.setdefault("http", {})["proxy"] = PROXY
        if PROXY == "direct":
            gateway.pop("deployment", None)
    Path(CONFIG).write_text(yaml.safe_dump(data))


_write_session_config()
os.environ["GAVEL_CONFIG"] = CONFIG
os.environ["GAVEL_STATE_DIR"] = str(SESSION_DIR / "state")


def run_gavel(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the ``gavel`` CLI from the repo root and capture its output."""
    return subprocess.run(
        [GAVEL, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def gavel_main(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run ``gavel`` in this process (``serving.cli.main``), as ``run_gavel`` does in a
    subprocess: the same exit code, stdout and stderr, without importing the CLI again.
    Unit tests use it; one subprocess test per command group keeps the console script
    itself covered."""
    import contextlib
    import io

    from serving.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse: --help, bad usage
            code = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess(["gavel", *args], code, out.getvalue(), err.getvalue())


def _serving() -> bool:
    try:
        # /health: open without a key (/v1/models needs one, so it never says 200 here).
        return httpx.get(BASE_URL.removesuffix("/v1") + "/health", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def stack() -> Iterator[str]:
    """Base URL of a running stack serving ``app-model`` and ``judge-model``."""
    if os.environ.get("GAVEL_TEST_REUSE_STACK") == "1" and _serving():
        yield BASE_URL
        return
    if _serving():
        pytest.fail(
            f"something already serves {BASE_URL}; stop it with `gavel down` "
            "or set GAVEL_TEST_REUSE_STACK=1 to test it"
        )
    if ENGINE == "vllm":  # the simulated engine has no weights to prepare
        prep = run_gavel("model", "prepare", "--config", str(ROOT / "config/cpu.yaml"), timeout=600)
        assert prep.returncode == 0, prep.stderr
    if SESSION_ON_POSTGRES:
        require_postgres()
        _database(STORE_URL, create=True)
    if ENGINE == "sim":
        _RECEIVERS["otlp"] = OtlpReceiver(OTLP_PORT)
    with LOG.open("w") as log:
        proc = subprocess.run(
            [GAVEL, "serve", "--config", CONFIG, "--detach", "--timeout", "900"],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=1200,
            check=False,
        )
    if proc.returncode != 0:
        run_gavel("down")
        pytest.fail(
            f"gavel serve failed (exit {proc.returncode}); see {LOG}:\n" + LOG.read_text()[-3000:]
        )
    try:
        yield BASE_URL
    finally:
        down = run_gavel("down", timeout=300)
        print(down.stdout, down.stderr)
        if SESSION_ON_POSTGRES:
            _database(STORE_URL, create=False)
        if "otlp" in _RECEIVERS:
            _RECEIVERS.pop("otlp").stop()


@pytest.fixture(scope="session")
def otlp(stack: str) -> OtlpReceiver:
    """The OTLP/HTTP receiver the session's traced stack exports to (the simulated-engine
    session only: the real-engine one runs untraced, as `make serve` does)."""
    if "otlp" not in _RECEIVERS:
        pytest.skip("the stack of this session is not traced (only the simulated one is)")
    return _RECEIVERS["otlp"]


def _database(url: str, *, create: bool) -> None:
    """Create (if missing) or drop the PostgreSQL database that ``url`` names."""
    from sqlalchemy import create_engine, text

    name = url.rsplit("/", 1)[1]
    admin = create_engine(PG_SERVER + "/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            if not create:
                c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            elif (
                c.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
                is None
            ):
                c.execute(text(f"CREATE DATABASE {name}"))
    finally:
        admin.dispose()


def require_postgres() -> None:
    """Fail when PostgreSQL is not running: ``make test`` (and CI) must run the
    PostgreSQL tests. Only the fast tier (``make test-fast``, which sets
    ``GAVEL_TEST_TIER=fast``) skips them, saying why."""
    why = postgres_available()
    if why is None:
        return
    if os.environ.get("GAVEL_TEST_TIER") == "fast" and os.environ.get("CI") != "true":
        pytest.skip(f"PostgreSQL tests skipped in the fast tier: {why}")
    pytest.fail(f"the PostgreSQL tests need a server at 127.0.0.1:5432: {why}")


@pytest.fixture(scope="session")
def worker_pg_url() -> Iterator[str]:
    """The PostgreSQL test database of this pytest process (of each xdist worker): one
    of its own, created here and dropped after, so that no two processes share one and no
    test sees what an earlier run (or another Gavel's schema) left in the shared
    ``test`` database."""
    require_postgres()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    url = f"{PG_SERVER}/gavel_unit_{worker}_{os.getpid()}"
    _database(url, create=True)
    try:
        yield url
    finally:
        _database(url, create=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A real store of each kind: a fresh SQLite file, or this process's PostgreSQL test
    database (``worker_pg_url``)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gavel.db'}"
    require_postgres()
    return str(request.getfixturevalue("worker_pg_url"))


@pytest.fixture(params=["sqlite", "postgresql"])
def scratch_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store of each kind that no other test touches: a SQLite file, or a PostgreSQL
    database of its own (created here, dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'scratch.db'}"
        return
    require_postgres()
    import uuid

    url = f"{PG_SERVER}/gavel_scratch_{uuid.uuid4().hex[:10]}"
    _database(url, create=True)
    try:
        yield url
    finally:
        _database(url, create=False)


@pytest.fixture(scope="session")
def api_key(stack: str) -> str:
    """An admin key in the stack's store (created through the CLI, shown once)."""
    import uuid

    proc = run_gavel("keys", "create", f"test-{uuid.uuid4().hex[:8]}", "--scopes", "admin")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The multi-node tests start their own Ray cluster and stack on port 8000: they run in
    a session of their own (``pytest -m multinode``), never beside the real-stack tests.
    Tests of the real engine (``engine``) are skipped in a simulated-engine session."""
    real = pytest.mark.skip(
        reason="needs the real vLLM engine: GAVEL_TEST_ENGINE=vllm pytest -m engine "
        "(make test runs that tier too)"
    )
    for item in items:
        if ENGINE == "sim" and "engine" in item.keywords:
            item.add_marker(real)
    if "multinode" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="multi-node tests run in their own session: pytest -m multinode")
    for item in items:
        if "multinode" in item.keywords:
            item.add_marker(skip)
