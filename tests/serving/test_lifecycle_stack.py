"""The data's lifecycle on the real stack, on the session's one store (PostgreSQL under CI):
key rotation with a grace period, budgets under concurrency and across a restart of the
limiter, and every reader over hostile records that the gateway accepted."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from serving.store import Store
from tests.conftest import CONFIG, STORE_URL
from tests.conftest import run_gavel as _run_gavel
from tests.serving.test_hostile import _burst, _post

pytestmark = pytest.mark.stack

HI = [{"role": "user", "content": "Hi"}]
# config/cpu.yaml prices the app model at USD 0.10 per hour at 40 output tokens/s.
USD_PER_OUTPUT_TOKEN = 0.10 / (40 * 3600)


@dataclass(frozen=True)
class Deployed:
    """The running stack, its store and its config."""

    url: str
    store_url: str
    config: str

    def gavel(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``gavel`` with this deployment's config."""
        return _run_gavel(*args, "--config", self.config)

    def captured(self, ids: list[str], timeout_s: float = 60) -> int:
        """How many of ``ids`` are in the store, waiting up to ``timeout_s`` for all."""
        store = Store(self.store_url)
        deadline = time.monotonic() + timeout_s
        while (n := store.count_traffic(ids)) < len(ids) and time.monotonic() < deadline:
            time.sleep(0.2)
        return n


@pytest.fixture(scope="module")
def deployed(stack: str) -> Deployed:
    """The session stack on its one store (PostgreSQL under CI's simulated-engine tier)."""
    return Deployed(stack, STORE_URL, CONFIG)


def _new_key(d: Deployed, *args: str) -> tuple[str, str]:
    name = f"life-{uuid.uuid4().hex[:8]}"
    proc = d.gavel("keys", "create", name, *args)
    assert proc.returncode == 0, proc.stderr
    return name, proc.stdout.strip().splitlines()[-1]


def test_rotation_keeps_the_old_secret_until_the_grace_ends(deployed: Deployed) -> None:
    d, stack = deployed, deployed.url
    name, old = _new_key(d, "--scopes", "infer")
    body = {"model": "app-model", "messages": HI, "max_tokens": 1}
    assert _post(stack, old, body).status_code == 200
    rotated = d.gavel("keys", "rotate", name, "--grace", "6s")
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.strip().splitlines()[-1]
    assert _post(stack, new, body).status_code == 200
    assert _post(stack, old, body).status_code == 200  # within the grace
    time.sleep(6.5)
    late = _post(stack, old, body)
    assert late.status_code == 401 and late.json()["error"]["message"] == "The API key is rotated."
    assert _post(stack, new, body).status_code == 200
    listed = json.loads(d.gavel("keys", "list", "--json").stdout)
    mine = next(k for k in listed if k["name"] == name)
    assert mine["last_used_at"] is not None and mine["state"] == "active"


KILL_LIMITER = """
import ray
from ray.util.state import list_actors
ray.init(address="auto", logging_level="ERROR", log_to_driver=False)
alive = list_actors(filters=[("state", "=", "ALIVE")], limit=10000)
found = [a for a in alive if "RateLimiter" in (a.class_name or "")]
for a in found:
    ray.kill(ray.get_actor(a.name, namespace=a.ray_namespace), no_restart=False)
print(len(found))
"""


def test_a_budget_holds_under_8_concurrent_requests_and_a_limiter_restart(
    deployed: Deployed,
) -> None:
    d, stack = deployed, deployed.url
    worst = 60 * USD_PER_OUTPUT_TOKEN  # max_tokens 60, ignore_eos: every request's real cost
    budget = 2.5 * worst
    _, key = _new_key(d, "--scopes", "infer", "--budget-usd-day", f"{budget:.10f}")
    body = {"model": "app-model", "messages": HI, "max_tokens": 60, "ignore_eos": True}

    answers = _burst(stack, key, body, n=8)
    ok = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code == 429]
    assert ok and refused and len(ok) + len(refused) == 8
    spent = sum(r.json()["usage"]["completion_tokens"] for r in ok) * USD_PER_OUTPUT_TOKEN
    assert spent <= budget + worst, f"USD {spent} spent under a USD {budget} budget"
    err = refused[0].json()["error"]
    assert err["code"] == "budget_exceeded" and "per day" in err["message"]
    assert "resets at" in err["message"] and int(refused[0].headers["retry-after"]) >= 1
    assert d.captured([r.json()["id"] for r in ok]) == len(ok)  # the spend is in the store

    killed = subprocess.run([sys.executable, "-c", KILL_LIMITER], capture_output=True,
                            text=True, timeout=120, check=False)  # fmt: skip
    assert killed.returncode == 0 and killed.stdout.strip().splitlines()[-1] == "1", killed.stderr
    deadline = time.monotonic() + 120
    after = _post(stack, key, body)
    while after.status_code == 503 and time.monotonic() < deadline:  # the limiter restarts
        time.sleep(1)
        after = _post(stack, key, body)
    assert after.status_code == 429, after.text  # the new limiter read the spend back
    assert after.json()["error"]["code"] == "budget_exceeded"


def test_every_reader_survives_hostile_records_the_gateway_accepted(
    deployed: Deployed, tmp_path: Path
) -> None:
    d, stack = deployed, deployed.url
    name, key = _new_key(d, "--scopes", "infer")
    deep: object = "bottom"
    for _ in range(63):  # with the body itself, the deepest the gateway accepts (64)
        deep = [deep]
    too_deep = _post(stack, key, {"model": "app-model", "messages": HI, "x": [deep]})
    assert too_deep.status_code == 400 and "deeper than 64 levels" in too_deep.text
    odd = "‮RTL‬ zero​width e\u0301 👩‍👩‍👧 \U0010fffd 𝔊 \ufeff"
    bodies = [
        {"model": "app-model", "messages": HI, "max_tokens": 2, "x_deep": deep},
        {"model": "app-model", "messages": [{"role": "user", "content": odd}], "max_tokens": 2},
        # The largest body the gateway accepts (1 MiB), in two-byte characters.
        json.dumps(
            {"model": "app-model", "messages": HI, "max_tokens": 2, "x_pad": "é" * 524_000},
            ensure_ascii=False,
        ).encode(),
    ]
    assert 1_040_000 < len(bodies[2]) <= 1_048_576  # type: ignore[arg-type]
    ids = []
    for body in bodies:
        r = _post(stack, key, body)
        assert r.status_code == 200, r.text[:300]
        ids.append(r.json()["id"])
    assert d.captured(ids) == 3
    today = datetime.now(UTC).date()

    out = tmp_path / "day.jsonl"
    export = d.gavel("traffic", "export", "--date", "today", "--out", str(out))
    assert export.returncode == 0 and "Traceback" not in export.stderr, export.stderr
    exported = {json.loads(line)["request_id"] for line in out.read_text().splitlines()}
    assert set(ids[1:]) <= exported  # the deep one may be skipped, and then it is named
    assert ids[0] in exported or f"{ids[0]} (" in export.stderr

    from judges import JudgingConfig
    from judges._items import to_exchange
    from judges._sampling import sample

    store = Store(d.store_url)
    day = store.traffic_for_day(today, production_only=True)
    assert set(ids) <= {r.request_id for r in day}
    picked = sample(day, JudgingConfig().sampling, seed="hostile")
    assert sum(len(v) for v in picked.values()) >= 1
    for rec in (r for r in day if r.request_id in ids):
        to_exchange(rec)  # what the daily job and the label queue show

    _promote_hostile(d, store, ids, today, tmp_path)

    for argv in (["store", "purge", "--dry-run"], ["store", "backup", str(tmp_path / "b.db")],
                 ["store", "erase", "--key", name, "--dry-run"]):  # fmt: skip
        proc = d.gavel(*argv)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, (argv, proc.stderr)
    erased = d.gavel("store", "erase", "--key", name)
    assert erased.returncode == 0 and "erased the text of 3 record(s)" in erased.stdout
    assert all(r.response_text is None for r in store.traffic_by_ids(ids))
    assert httpx.get(f"{stack.removesuffix('/v1')}/health", timeout=10).status_code == 200


def _promote_hostile(
    d: Deployed, store: Store, ids: list[str], today: object, tmp_path: Path
) -> None:
    """``gavel eval promote`` over the hostile records, once judged and labelled."""
    from judges import (
        JudgingConfig,
        Label,
        LabelStore,
        Verdict,
        VerdictStore,
        default_kinds,
        load_criteria,
    )

    judging = JudgingConfig()
    kinds = default_kinds()
    crit = kinds.pass_fail(load_criteria(Path(judging.criteria_dir), kinds))[0]
    now = datetime.now(UTC)
    VerdictStore(store).insert(
        Verdict(item_id=i, criterion=crit.name, criterion_version=crit.version, kind=crit.kind,
                judge="test", judge_version="1", judge_model="judge-model", judge_args={},
                model="app-model", day=str(today), verdict="pass", created_at=now)
        for i in ids
    )  # fmt: skip
    LabelStore(store).upsert(
        Label(item_id=i, criterion=crit.name, criterion_version=crit.label_version,
              label="pass", labeller="hostile-test", labelled_at=now)
        for i in ids
    )  # fmt: skip
    out = tmp_path / "golden.jsonl"
    promoted = d.gavel("eval", "promote", "--date", "today", "--out", str(out))
    assert promoted.returncode == 0 and "Traceback" not in promoted.stderr, promoted.stderr
    lines = {json.loads(line)["id"] for line in out.read_text().splitlines()}
    assert set(ids) <= lines
    assert {r.kept for r in store.traffic_by_ids(ids)} == {"golden"}
