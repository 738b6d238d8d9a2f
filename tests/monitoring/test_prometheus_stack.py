"""Every panel's every query, run by a real Prometheus scraping the real stack.

A Prometheus (Debian's package) on a free port with its own storage scrapes the
gateway's ``/metrics`` and Ray's metrics export port (vLLM's engine metrics) every
second, with Gavel's rules loaded. A short load test and a small judging run go
through the stack; then each query of each dashboard panel goes through Prometheus's
HTTP API and must neither error nor come back empty. The ``ray_vllm_*`` panels are
checked on the real engine (``engine`` tier), every other panel on the simulated one.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
import yaml

from judges import Criterion, Label, LabelStore, VerdictStore, load_criteria
from serving import load_config
from serving.monitoring import expand, panel_queries
from serving.monitoring._prometheus import LocalPrometheus, find_prometheus, scrape_targets
from serving.store import Store
from tests.conftest import CONFIG, ROOT, SESSION_DIR, STORE_URL, run_gavel

ENGINE_METRICS = "ray_vllm_"
"""The real vLLM engine's metrics (through Ray): their panels are checked on the real
engine; every other panel on the simulated one, which exports none of them."""

pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(
        find_prometheus() is None and os.environ.get("CI") != "true",
        reason="no `prometheus` binary (Debian's package; `make prometheus` installs it)",
    ),
]


@pytest.fixture(scope="module")
def prometheus(stack: str, tmp_path_factory: pytest.TempPathFactory) -> LocalPrometheus:
    targets = scrape_targets(load_config(CONFIG))
    prom = LocalPrometheus(
        targets, workdir=tmp_path_factory.mktemp("prometheus"), interval_s=1,
        rule_files=[ROOT / "k8s/monitoring/rules.yaml"],
    )  # fmt: skip
    prom.wait_ready()
    yield prom  # type: ignore[misc]
    prom.stop()


def _criterion() -> Criterion:
    """The shipped ``answers_question``, judged with one constrained token
    (``verdict_only``): SmolLM's reasoning can run past max_tokens and leave "error"."""
    shipped = load_criteria(ROOT / "judges/criteria")
    (crit,) = [c for c in shipped if c.name == "answers_question"]
    return crit.model_copy(update={"verdict_format": "verdict_only"})


def _judging_file(tmp: Path, criterion: Criterion) -> Path:
    (tmp / "criteria").mkdir()
    (tmp / "criteria/c.yaml").write_text(
        yaml.safe_dump({"criteria": [criterion.model_dump(mode="json", exclude_defaults=True)]})
    )
    path = tmp / "judging.yaml"
    path.write_text(yaml.safe_dump({
        "criteria_dir": str(tmp / "criteria"), "sampling": {"rate": 1.0, "max_per_stratum": 3},
        "concurrency": 3, "max_tokens": 120, "report_dir": str(tmp / "reports"),
        "feedback": {criterion.name: "thumbs"},
        "online": [{"name": "test-live", "sample_rate": 1.0, "criteria": [criterion.name],
                    "max_per_hour": 5}],
        "online_loop": {"settle_s": 0},
    }))  # fmt: skip
    return path


def _label_judged(day: date, criterion: Criterion) -> None:
    """People label this run's verdicts of ``criterion``, alternating pass and fail.

    Only this criterion's verdicts: other tests judge other criteria the same day, and
    alternating over all of them could give this one a single class (kappa undefined).
    Labels carry the rubric's version (``label_version``), which the verdict format does
    not change.
    """
    store = Store(STORE_URL)
    verdicts = [
        v
        for v in VerdictStore(store).for_days(day, day)
        if v.criterion == criterion.name
        and v.criterion_version == criterion.version
        and v.verdict in ("pass", "fail")
    ]
    assert len(verdicts) >= 2, f"the judging run judged {len(verdicts)} item(s), a kappa needs 2"
    LabelStore(store).upsert(
        Label(item_id=v.item_id, criterion=criterion.name,
              criterion_version=criterion.label_version,
              label="pass" if i % 2 == 0 else "fail", labeller="monitoring-test",
              labelled_at=datetime.now(UTC))
        for i, v in enumerate(verdicts)
    )  # fmt: skip


def _wait_for(prom: LocalPrometheus, expr: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if prom.query(expr):
            return
        time.sleep(1)
    raise AssertionError(f"{expr}: no series after {timeout_s:.0f} s")


def test_every_panel_query_returns_series(
    prometheus: LocalPrometheus, api_key: str, stack: str, tmp_path: Path
) -> None:
    assert prometheus.targets_up() == {"gavel-gateway": True, "ray": True} or _wait_up(prometheus)
    # A refused request (no key), then a short load test: production traffic, cost, the
    # load test's figures in the store.
    assert httpx.get(f"{stack}/models", timeout=10).status_code == 401
    sweep = run_gavel(
        "loadtest", "sweep", "--output-lens", "4,32", "--concurrency", "1,2",
        "--requests-per-cell", "3", "--prompt-tokens", "32", "--api-key", api_key,
        "--out-dir", str(tmp_path / "lt"), timeout=600,
    )  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    _thumbs_up(stack, api_key)  # a user's feedback: the day's feedback figures
    # A small judging run of today's traffic: the judge's figures and status in the store.
    today = datetime.now(UTC).date().isoformat()
    criterion = _criterion()
    judging = str(_judging_file(tmp_path, criterion))
    daily = run_gavel("judge", "daily", "--date", today, "--judging", judging,
                      "--api-key", api_key, "--no-ray", timeout=600)  # fmt: skip
    assert daily.returncode == 0, daily.stderr[-2000:]
    # People label what was judged (mixed pass/fail), and the job runs again: nothing is
    # judged twice, and the criterion's calibration (kappa) is published.
    _label_judged(datetime.now(UTC).date(), criterion)
    again = run_gavel(*daily.args[1:], timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    # The gateway re-reads the figures every 10 s; Prometheus scrapes every second. Wait
    # for the kappa, which only the second run publishes: the pass rate is there already
    # from the first run, so waiting for it would not wait for the re-read.
    # One pass of online judging over the last hour: its hourly figures and lag.
    online = run_gavel("judge", "online", "--once", "--judging", judging,
                       "--api-key", api_key, timeout=600)  # fmt: skip
    assert online.returncode == 0 and "test-live:" in online.stdout, online.stderr[-2000:]
    _swap_figures(stack, api_key, tmp_path)
    _wait_for(prometheus, "gavel_judge_kappa")
    _wait_for(prometheus, "gavel_judge_online_pass_rate")
    _wait_for(prometheus, "gavel_feedback_positive_share")
    _wait_for(prometheus, "gavel_swap_win_rate")
    _wait_for(prometheus, "gavel_loadtest_output_tokens_per_second")
    time.sleep(3)  # a few more scrapes, so every rate() has two samples after the load
    failures, counts = _query_panels(prometheus, engine=False)
    (SESSION_DIR / "panel_series.json").write_text(json.dumps(counts, indent=2))
    print(json.dumps(counts, indent=2))
    assert not failures, "\n".join(failures)
    # The rules load and evaluate against the real series.
    rules = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    assert {g["name"] for g in rules} == {"gavel.recording", "gavel.alerts"}
    assert all(r["health"] == "ok" for g in rules for r in g["rules"]), rules


@pytest.mark.engine  # the ray_vllm_* panels need the real vLLM engine's metrics
def test_the_engine_panels_return_series(
    prometheus: LocalPrometheus, api_key: str, stack: str
) -> None:
    assert prometheus.targets_up() == {"gavel-gateway": True, "ray": True} or _wait_up(prometheus)
    for i in range(3):
        r = httpx.post(
            f"{stack}/chat/completions",
            json={"model": "app-model", "max_tokens": 8, "stream": i == 0,
                  "messages": [{"role": "user", "content": f"Count to {i + 3}."}]},
            headers={"Authorization": f"Bearer {api_key}"}, timeout=120,
        )  # fmt: skip
        assert r.status_code == 200, r.text
    _wait_for(prometheus, "ray_vllm_kv_cache_usage_perc")
    time.sleep(3)  # a few more scrapes, so every rate() has two samples after the load
    failures, counts = _query_panels(prometheus, engine=True)
    assert counts, "no panel queries the engine's metrics"
    assert not failures, "\n".join(failures)


def _query_panels(prom: LocalPrometheus, *, engine: bool) -> tuple[list[str], dict[str, int]]:
    """Run every panel query on the engine's metrics (``engine``) or every other one;
    returns the failures (an error, or no series) and the series count per query."""
    counts: dict[str, int] = {}
    failures = []
    for uid, panel, q in panel_queries():
        if (ENGINE_METRICS in q.expr) != engine:
            continue
        expr = expand(q.expr, rate_interval="5m")
        try:
            n = len(prom.query(expr))
        except ValueError as exc:
            failures.append(f"{uid} / {panel}: {expr}: {exc}")
            continue
        counts[f"{uid} / {panel} / {q.legend}"] = n
        if n == 0:
            failures.append(f"{uid} / {panel}: {expr}: no series")
    return failures, counts


def _thumbs_up(stack: str, api_key: str) -> None:
    """A chat, and its user's thumbs up (``POST /v1/feedback``)."""
    h = {"Authorization": f"Bearer {api_key}"}
    chat = httpx.post(f"{stack}/chat/completions", headers=h, timeout=60, json={
        "model": "app-model", "max_tokens": 8,
        "messages": [{"role": "user", "content": "What is the capital of France?"}]})  # fmt: skip
    assert chat.status_code == 200, chat.text
    fb = httpx.post(f"{stack}/feedback", headers=h, timeout=30,
                    json={"id": chat.json()["id"], "name": "thumbs", "value": True})  # fmt: skip
    assert fb.status_code == 200, fb.text


def _swap_figures(stack: str, api_key: str, tmp: Path) -> None:
    """The session's swap shadows a few requests, and its report judges the pairs: the
    swap's decision and win-rate figures in the store. The swap is rolled back after."""
    assert run_gavel("swap", "set", "--shadow", "1", "--by", "tests").returncode == 0
    try:
        for i in range(3):
            r = httpx.post(
                f"{stack}/chat/completions",
                json={"model": "app-model", "max_tokens": 12,
                      "messages": [{"role": "user", "content": f"Name a colour ({i})."}]},
                headers={"Authorization": f"Bearer {api_key}"}, timeout=120,
            )  # fmt: skip
            assert r.status_code == 200, r.text
        time.sleep(3)  # the shadows are answered and captured in the background
        report = run_gavel("swap", "report", "--api-key", api_key, "--out", str(tmp / "swap"),
                           timeout=600)  # fmt: skip
        assert report.returncode == 0, report.stdout + report.stderr
    finally:
        run_gavel("swap", "rollback", "--by", "tests")


def _wait_up(prom: LocalPrometheus, timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if prom.targets_up() == {"gavel-gateway": True, "ray": True}:
            return True
        time.sleep(1)
    raise AssertionError(f"scrape targets not up: {prom.targets_up()}")
