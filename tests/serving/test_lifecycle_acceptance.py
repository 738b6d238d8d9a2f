"""Issue 30's acceptance on the real stack, where the gateway's features meet: a budget
without tpm is settled, a metadata-only key's shadows keep no text, an erasure leaves a
marker nowhere (a restore included), an infer key cannot pass as the judge, and every
refusal is counted by its reason."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from serving.store import Store
from serving.store import tables as t
from tests.conftest import SESSION_DIR, STORE_URL, run_gavel
from tests.serving.test_hostile import _post

pytestmark = pytest.mark.stack

# config/cpu.yaml prices the app model at USD 0.10 per hour at 40 output tokens/s.
USD_PER_OUTPUT_TOKEN = 0.10 / (40 * 3600)


def _key(*args: str) -> tuple[str, str]:
    name = f"acc-{uuid.uuid4().hex[:8]}"
    made = run_gavel("keys", "create", name, *args)
    assert made.returncode == 0, made.stderr
    return name, made.stdout.strip().splitlines()[-1]


def _everything() -> str:
    """Every row of every Gavel table, as text."""
    store = Store(STORE_URL)
    try:
        return " ".join(
            str(dict(r)) for table in t.metadata.sorted_tables for r in store.fetch(select(table))
        )
    finally:
        store.close()


def _spooled() -> str:
    return " ".join(p.read_text() for p in (SESSION_DIR / "spool").rglob("*.jsonl"))


def _of_key(name: str, n: int, timeout_s: float = 90) -> list[dict[str, object]]:
    """The key's captured records, once there are ``n`` of them."""
    store = Store(STORE_URL)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            rows = store.fetch(select(t.traffic).where(t.traffic.c.key_name == name))
            if len(rows) >= n or time.monotonic() > deadline:
                return [dict(r) for r in rows]
            time.sleep(0.5)
    finally:
        store.close()


def _metric(stack: str, name: str, **labels: str) -> float:
    page = httpx.get(stack.removesuffix("/v1") + "/metrics", timeout=10).text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    found = re.findall(rf"^{name}\{{{want}\}} (\S+)$", page, re.M)
    return sum(float(v) for v in found)


def _metric_at_least(stack: str, name: str, value: float, **labels: str) -> float:
    """The metric once it reaches ``value`` (the hub sums the replicas every second)."""
    deadline = time.monotonic() + 15
    while (got := _metric(stack, name, **labels)) < value and time.monotonic() < deadline:
        time.sleep(0.5)
    return got


@pytest.fixture
def shadow_all(stack: str) -> Iterator[None]:
    """The session's swap shadows every production request; rolled back after."""
    on = run_gavel("swap", "set", "--shadow", "1", "--canary", "0", "--by", "tests")
    assert on.returncode == 0, on.stdout + on.stderr
    yield
    off = run_gavel("swap", "rollback", "--by", "tests", "--wait", "30")
    assert off.returncode == 0, off.stdout + off.stderr


def test_a_budget_without_tpm_is_served_until_its_real_spend_nears_it(stack: str) -> None:
    """Short answers with ``max_tokens: 600`` under a budget of 3.5 worst cases: every
    request is settled at its real cost, so 8 are served (before: the 4th got 429)."""
    worst = 600 * USD_PER_OUTPUT_TOKEN
    name, key = _key("--scopes", "infer", "--budget-usd-day", f"{3.5 * worst:.10f}")
    body = {"model": "app-model", "max_tokens": 600, "stop": [" ", "\n"],
            "messages": [{"role": "user", "content": "Say OK."}]}  # fmt: skip
    statuses = [_post(stack, key, body).status_code for _ in range(8)]
    assert statuses == [200] * 8, statuses
    rows = _of_key(name, 8)
    spent = sum(float(r["cost_usd"] or 0) for r in rows)  # type: ignore[arg-type]
    assert spent < worst  # what the key really spent
    used = _metric_at_least(
        stack, "gavel_key_budget_used_ratio", 1e-12, key_name=name, period="day"
    )
    assert 0 < used < 0.5, used  # the gauge shows the spend, not 8 worst cases


def test_a_metadata_only_key_s_shadowed_requests_store_no_text(
    stack: str, shadow_all: None
) -> None:
    name, key = _key("--scopes", "infer", "--metadata-only")
    marker = f"MARK{uuid.uuid4().hex[:10]}"
    for i in range(3):
        body = {"model": "app-model", "max_tokens": 8,
                "messages": [{"role": "user", "content": f"{marker} question {i}"}]}  # fmt: skip
        assert _post(stack, key, body, x_request_id=f"{marker}-{i}").status_code == 200
    rows = _of_key(name, 6)  # each request and its shadow, both under the key's name
    assert sorted(r["source"] for r in rows) == ["production"] * 3 + ["shadow"] * 3
    assert marker not in _everything() and marker not in _spooled()


def test_erase_leaves_a_marker_nowhere_even_after_restoring_an_earlier_backup(
    stack: str, tmp_path: Path
) -> None:
    name, key = _key("--scopes", "infer")
    marker = f"MARK{uuid.uuid4().hex[:10]}"
    for i in range(2):
        body = {"model": "app-model", "max_tokens": 8,
                "messages": [{"role": "user", "content": f"{marker} plan {i}"}]}  # fmt: skip
        assert _post(stack, key, body, x_gavel_metadata=f'{{"m": "{marker}"}}').status_code == 200
    assert len(_of_key(name, 2)) == 2 and marker in _everything()
    backup = tmp_path / "earlier.db"
    assert run_gavel("store", "backup", str(backup)).returncode == 0

    erased = run_gavel("store", "erase", "--key", name, "--by", "tests")
    assert erased.returncode == 0 and "erased the text of 2 record(s)" in erased.stdout
    assert marker not in _everything() and marker not in _spooled()

    refused = run_gavel("store", "restore", str(backup))  # the stack serves: refused
    assert refused.returncode != 0 and "stop it first" in refused.stderr
    restored = run_gavel("store", "restore", str(backup), "--force")
    assert restored.returncode == 0 and "re-applied" in restored.stdout, restored.stderr
    assert marker not in _everything() and marker not in _spooled()


def test_an_infer_key_naming_the_judge_source_is_production(stack: str) -> None:
    name, key = _key("--scopes", "infer")
    body = {"model": "app-model", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]}
    t0 = time.monotonic()
    r = _post(stack, key, body, x_gavel_source="judge")
    assert r.status_code == 200 and time.monotonic() - t0 < 60
    (row,) = _of_key(name, 1)
    assert row["source"] == "production"
    store = Store(STORE_URL)
    try:  # so it stays in the daily sample's population
        day = store.traffic_for_day(datetime.now(UTC).date(), production_only=True)
    finally:
        store.close()
    assert r.json()["id"] in {rec.request_id for rec in day}


def test_body_header_and_scope_refusals_are_counted(stack: str) -> None:
    _, key = _key("--scopes", "infer")
    before = {k: _metric(stack, "gavel_rejected_requests_total", reason=k)
              for k in ("body", "header", "scope", "model")}  # fmt: skip
    hi = [{"role": "user", "content": "Hi"}]
    assert _post(stack, key, b"{not json").status_code == 400
    assert _post(stack, key, {"model": "app-model", "messages": hi},
                 x_gavel_metadata="[1]").status_code == 400  # fmt: skip
    assert _post(stack, key, {"model": "judge-model", "messages": hi}).status_code == 403
    assert _post(stack, key, {"model": "nope", "messages": hi}).status_code == 404
    for reason, n in before.items():
        got = _metric_at_least(stack, "gavel_rejected_requests_total", n + 1, reason=reason)
        assert got == n + 1, reason
