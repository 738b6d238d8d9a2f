"""Model swap on the real stack (issue 20): the session's degraded candidate (the app
model cut to one token per answer, ``tests.conftest.SESSION_SWAP``) on shadow and canary,
the report's decision, and a promote under the load test's traffic.

Each test turns the swap on with ``gavel swap set`` and leaves it off (rolled back)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from loadtest._models import RequestRecord
from serving.store import Store
from tests.conftest import ENGINE, ROOT, STORE_URL, run_gavel

pytestmark = pytest.mark.stack
N = 24
N_LOAD = 160
"""Requests of the promote test's load: enough to outlast the promote (asked after 2 s)."""


@pytest.fixture
def swap_off(stack: str) -> Iterator[None]:
    """The swap is rolled back (no shadow, no canary) after the test, whatever happened."""
    yield
    done = run_gavel("swap", "rollback", "--by", "tests", "--wait", "30")
    assert done.returncode == 0, done.stdout + done.stderr


def _dropped(base: str) -> float:
    page = httpx.get(base.removesuffix("/v1") + "/metrics", timeout=10).text
    found = re.findall(r"^gavel_shadow_dropped_requests_total\{[^}]*\} (\S+)$", page, re.M)
    return sum(float(v) for v in found)


def _today(prefix: str | None = None) -> list:  # type: ignore[type-arg]
    store = Store(STORE_URL)
    try:
        rows = store.traffic_for_day(datetime.now(UTC).date())
    finally:
        store.close()
    return [r for r in rows if prefix is None or (r.client_request_id or "").startswith(prefix)]


def test_a_degraded_candidate_on_shadow_and_canary_is_rolled_back(
    stack: str, api_key: str, swap_off: None, tmp_path: Path
) -> None:
    """A key at rpm 24 sends 24 requests for app-model with shadow 1 and canary 0.25: all
    are served (a shadow counted against the key would make the last ones 429); the
    candidate's arm answers in one token; each production-arm request has its shadow
    captured with its twin's id (or was counted as dropped); the report decides
    ``rollback`` on the deterministic check, with the pairwise judge withheld."""
    key = run_gavel("keys", "create", f"swap-{uuid.uuid4().hex[:6]}", "--rpm", str(N))
    assert key.returncode == 0, key.stderr
    secret = key.stdout.strip().splitlines()[-1]
    on = run_gavel("swap", "set", "--shadow", "1", "--canary", "0.25", "--by", "tests")
    assert on.returncode == 0 and "applied by every" in on.stdout, on.stdout + on.stderr
    dropped_before = _dropped(stack)
    prefix = f"swap-{uuid.uuid4().hex[:6]}-"
    arms: dict[str, str] = {}
    with httpx.Client(base_url=stack, timeout=120) as c:
        for i in range(N):
            rid = f"{prefix}{i}"
            r = c.post(
                "/chat/completions",
                json={
                    "model": "app-model",
                    "max_tokens": 16,
                    "temperature": 0,
                    "messages": [
                        {"role": "user", "content": f"Describe the sea in a sentence ({i})."}
                    ],
                },
                headers={"Authorization": f"Bearer {secret}", "X-Request-Id": rid},
            )
            assert r.status_code == 200, r.text
            arms[rid] = r.headers["x-gavel-arm"]
            if arms[rid] == "candidate":
                assert r.json()["usage"]["completion_tokens"] == 1
    assert set(arms.values()) == {"production", "candidate"}, arms  # 1 in 1,000 to fail by chance
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        mine = {r.client_request_id: r for r in _today(prefix)}
        twins = {r.request_id: r for r in mine.values() if r.arm == "production"}
        shadows = [r for r in _today() if r.twin_id in twins]
        dropped = _dropped(stack) - dropped_before
        if len(mine) == N and len(shadows) + dropped == len(twins):
            break
        time.sleep(1)
    assert {rid: r.arm for rid, r in mine.items()} == arms
    assert len(shadows) + dropped == len(twins) and shadows, (len(shadows), dropped, len(twins))
    for s in shadows:
        twin = twins[s.twin_id]  # type: ignore[index]
        assert (s.source, s.model, s.key_name, s.completion_tokens) == (
            "shadow",
            "app-terse",
            twin.key_name,
            1,
        )  # fmt: skip  (a shadow carries its twin's key: metadata-only and erasure hold)
        assert s.request["messages"] == twin.request["messages"]
        assert s.response_text != twin.response_text  # the client got production's answer
    t0 = time.perf_counter()
    report = run_gavel("swap", "report", "--api-key", api_key, "--out", str(tmp_path / "r"),
                       timeout=900)  # fmt: skip
    seconds = time.perf_counter() - t0
    assert report.returncode == 0, report.stdout + report.stderr
    doc = json.loads((tmp_path / "r/report.json").read_text())
    print(f"swap report for one day: {seconds:.1f} s, {doc['shadow_pairs']} pairs judged")
    assert doc["verdict"]["decision"] == "rollback", doc["verdict"]
    assert "three_words" in doc["verdict"]["reason"]
    assert doc["pairwise"] is not None and doc["pairwise"]["decision"] is None  # not trusted
    judged = [c for c in doc["checks"] if c["kind"] == "judge"]
    assert {c["on"] for c in judged} == {"shadow", "canary"}, judged  # concise on both arms
    assert all(c["check"] == "concise" and c["judge_trusted"] is False and c["n_candidate"] > 0
               for c in judged), judged  # fmt: skip
    assert doc["sequence"] and doc["sequence"][-1]["pairs"] == doc["shadow_pairs"]
    _console_shows_the_decision(tmp_path)


def _console_shows_the_decision(tmp_path: Path) -> None:
    """The console's swap view, in real Chromium: this trial's decision, what was withheld,
    and the win rate's confidence sequence plotted."""
    from tests.evals.console_browser import browser_page, console_server, sign_in

    made = run_gavel("keys", "create", f"swapview-{uuid.uuid4().hex[:6]}", "--scopes", "view")
    viewer = made.stdout.strip().splitlines()[-1]
    with console_server(tmp_path / "console.log") as base, browser_page() as (page, errors):
        sign_in(page, base, viewer)
        page.goto(base + "/swap")
        assert "rollback" in page.inner_text("p.decision")
        assert page.locator("figure.sequence svg").count() == 1
        assert "app-terse" in page.content() and not errors, errors


def test_promote_under_the_load_test_s_traffic_drops_nothing(stack: str, api_key: str,
                                                             swap_off: None) -> None:  # fmt: skip
    """Locust streams requests for app-model while ``gavel swap promote`` runs: every
    request gets a 2xx and is captured once, and every request that arrives after the
    promote was applied is answered by the candidate."""
    prefix = f"promote-{uuid.uuid4().hex[:6]}-"
    load = subprocess.run(
        [sys.executable, "-m", "tests.evals.promote_load", stack.removesuffix("/v1"), api_key,
         prefix, str(N_LOAD), "8" if ENGINE == "vllm" else "96"],  # outlasts the promote
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert load.returncode == 0, load.stdout[-2000:] + load.stderr[-3000:]
    result = json.loads(load.stdout.strip().splitlines()[-1])
    promoted = result["promote"]
    assert promoted.get("code") == 0 and "applied by every" in promoted["output"], promoted
    applied = [datetime.fromisoformat(promoted["at"])]
    records = [RequestRecord.model_validate(r) for r in result["records"]]
    # A one-token answer may carry no text: Locust counts it not ok, but it was served
    # (a 2xx, checked on its captured status below).
    empty = "stream ended without content or usage"
    failed = [r.error for r in records if not r.ok and r.error != empty]
    assert len(records) == N_LOAD and not failed, failed[:3]
    ids = {f"{prefix}{r.index}" for r in records}
    deadline = time.monotonic() + 30
    while len(_today(prefix)) < len(ids) and time.monotonic() < deadline:
        time.sleep(0.5)
    rows = _today(prefix)
    assert sorted(r.client_request_id or "" for r in rows) == sorted(ids)  # each once
    assert {r.status for r in rows} == {200}
    after = [r for r in rows if r.ts > applied[0]]
    before = [r for r in rows if r.ts <= applied[0]]
    assert after and {r.arm for r in after} == {"candidate"}, [r.arm for r in after]
    assert {r.arm for r in before} >= {"production"}


def test_an_identical_candidate_is_never_rolled_back(
    stack: str, api_key: str, swap_off: None, tmp_path: Path
) -> None:
    """An A/A swap on the real stack: the requests ask for one token, so the candidate
    (the same engine capped at one token) answers exactly as production does. With shadow
    1 and canary 0.25, the report of this trial (from its ``swap set``: the degraded
    test's traffic of today is left out) decides ``continue``: no check shows the
    candidate worse, identical pairs are ties without asking the judge."""
    key = run_gavel("keys", "create", f"same-{uuid.uuid4().hex[:6]}", "--rpm", str(N))
    assert key.returncode == 0, key.stderr
    secret = key.stdout.strip().splitlines()[-1]
    on = run_gavel("swap", "set", "--shadow", "1", "--canary", "0.25", "--by", "tests")
    assert on.returncode == 0 and "applied by every" in on.stdout, on.stdout + on.stderr
    prefix = f"same-{uuid.uuid4().hex[:6]}-"
    with httpx.Client(base_url=stack, timeout=120) as c:
        for i in range(N):
            r = c.post(
                "/chat/completions",
                json={"model": "app-model", "max_tokens": 1, "temperature": 0,
                      "messages": [{"role": "user", "content": f"Name a colour ({i})."}]},
                headers={"Authorization": f"Bearer {secret}", "X-Request-Id": f"{prefix}{i}"},
            )  # fmt: skip
            assert r.status_code == 200, r.text
    deadline = time.monotonic() + 60
    while len(_today(prefix)) < N and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(3)  # the last shadows
    report = run_gavel("swap", "report", "--api-key", api_key, "--out", str(tmp_path / "r"),
                       timeout=900)  # fmt: skip
    assert report.returncode == 0, report.stdout + report.stderr
    doc = json.loads((tmp_path / "r/report.json").read_text())
    mine = {r.request_id for r in _today(prefix)}
    assert doc["production_arm"] + doc["candidate_arm"] == N, doc  # this trial's traffic only
    assert doc["shadow_pairs"] > 0 and len(mine) == N
    assert doc["verdict"]["decision"] == "continue", doc["verdict"]
    assert not any(c["worse"] for c in doc["checks"]), doc["checks"]
    pw = doc["pairwise"]
    assert pw["losses_b"] == 0 or pw["decision"] != "A better", pw
