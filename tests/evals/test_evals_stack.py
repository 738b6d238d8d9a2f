"""Offline evals on the real stack: a suite end to end, the cache (counted in the
gateway's captured traffic), resume after a kill, the compare gate on identical and on
degraded runs, A/B of the app model against itself, and the judge against labels."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from evals import RunResult
from serving.store import Store, tables
from tests.conftest import CONFIG, ENGINE, ROOT, STORE_URL, run_gavel

pytestmark = pytest.mark.stack

SUITE = """name: small_qa
dataset: data.jsonl
target: {{role: app, params: {{temperature: 0, max_tokens: 16, seed: {seed}}}}}
concurrency: {concurrency}
checks:
  - {{name: correct, assert: contains_expected}}
  - {{name: no_refusal, assert: no_refusal}}
  - {{name: matches_reference, criterion: matches_reference, gating: false}}
"""


def _suite(tmp: Path, *, n: int = 8, seed: int = 0, concurrency: int = 8) -> Path:
    lines = (ROOT / "evals/suites/data/reference_qa.jsonl").read_text().splitlines()[:n]
    (tmp / "data.jsonl").write_text("\n".join(lines) + "\n")
    path = tmp / f"small-{seed}.yaml"
    path.write_text(SUITE.format(seed=seed, concurrency=concurrency))
    return path


def _eval_calls() -> int:
    store = Store(STORE_URL)
    t = tables.traffic
    from sqlalchemy import func, select

    return int(store.scalar(select(func.count()).select_from(t).where(t.c.source == "eval")))


def _run(suite: Path, key: str, out: Path, *extra: str) -> RunResult:
    proc = run_gavel(
        "eval", "run", str(suite), "--api-key", key, "--out", str(out), *extra, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "correct" in proc.stdout
    return RunResult.model_validate_json((out / "result.json").read_text())


@pytest.fixture(scope="module")
def runs(stack: str, api_key: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("evals")
    suite = _suite(tmp)
    before = _eval_calls()
    first = _run(suite, api_key, tmp / "r1")
    after_first = _eval_calls()
    cached = fresh = None
    after_cached = after_first
    if ENGINE == "sim":  # the cache's tests run on the simulated engine only
        cached = _run(suite, api_key, tmp / "r2")
        after_cached = _eval_calls()
        fresh = _run(suite, api_key, tmp / "r3", "--no-cache")
    degraded = _run(suite, api_key, tmp / "r4", "--params", '{"max_tokens": 2}')
    return {
        "tmp": tmp,
        "suite": suite,
        "first": first,
        "cached": cached,
        "fresh": fresh,
        "degraded": degraded,
        "calls": (before, after_first, after_cached),
    }


@pytest.mark.engine  # counts right answers: the real model's
def test_a_suite_runs_end_to_end(runs: dict[str, object]) -> None:
    first: RunResult = runs["first"]  # type: ignore[assignment]
    assert first.model == "app-model" and first.model_calls == 8 and len(first.items) == 8
    correct = first.check("correct")
    assert (
        correct.n == 8 and correct.passes >= 4 and correct.ci_low <= correct.rate <= correct.ci_high
    )  # type: ignore[operator]
    judged = first.check("matches_reference")
    assert judged.n + judged.errors == 8  # the judge role scored every answer
    # Its pass rate carries its trust: no one labelled matches_reference in this session.
    assert judged.judge_trusted is False and "too few labels" in (judged.trust_reason or "")
    assert correct.judge_trusted is None  # a deterministic check has no judge
    assert first.git_commit and first.suite_hash and first.dataset_hash
    out = Path(str(runs["tmp"])) / "r1"
    assert (out / "report.html").exists() and (out / "pass_rates.png").read_bytes()[
        :4
    ] == b"\x89PNG"
    listed = run_gavel("eval", "list")
    assert first.run_id in listed.stdout


def test_a_second_run_is_served_from_the_cache(runs: dict[str, object]) -> None:
    before, after_first, after_cached = runs["calls"]  # type: ignore[misc]
    cached: RunResult = runs["cached"]  # type: ignore[assignment]
    assert after_first - before == 8  # the gateway captured the 8 generations, tagged eval
    assert after_cached == after_first and cached.model_calls == 0 and cached.cached_answers == 8
    first: RunResult = runs["first"]  # type: ignore[assignment]
    assert [i.epochs[0].outcomes for i in cached.items] == [
        i.epochs[0].outcomes for i in first.items
    ]


def test_identical_systems_are_not_declared_different(runs: dict[str, object]) -> None:
    tmp = Path(str(runs["tmp"]))
    proc = run_gavel("eval", "compare", str(tmp / "r1/result.json"), str(tmp / "r3/result.json"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "gate: pass" in proc.stdout


@pytest.mark.engine  # needs right answers to lose: the real model's
def test_a_degraded_run_fails_the_gate_and_names_the_flipped_items(runs: dict[str, object]) -> None:
    first: RunResult = runs["first"]  # type: ignore[assignment]
    degraded: RunResult = runs["degraded"]  # type: ignore[assignment]
    proc = run_gavel("eval", "compare", first.run_id, degraded.run_id)  # by id, from the store
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "gate: FAIL" in proc.stdout and "pass -> fail:" in proc.stdout
    after = {d.id: d.epochs[0].outcomes["correct"] for d in degraded.items}
    flipped = [
        i.id
        for i in first.items
        if i.epochs[0].outcomes["correct"] == "pass" and after[i.id] == "fail"
    ]
    assert flipped and all(i in proc.stdout for i in flipped)


def test_runs_of_different_suites_are_refused(runs: dict[str, object], tmp_path: Path) -> None:
    tmp = Path(str(runs["tmp"]))
    other = json.loads((tmp / "r1/result.json").read_text())
    other["suite_hash"] = "different"
    (tmp_path / "o.json").write_text(json.dumps(other))
    proc = run_gavel("eval", "compare", str(tmp / "r1/result.json"), str(tmp_path / "o.json"))
    assert proc.returncode == 2 and "different suites or datasets" in proc.stderr


def test_ab_of_the_app_model_against_itself(runs: dict[str, object], api_key: str) -> None:
    suite = runs["suite"]
    tmp = Path(str(runs["tmp"]))
    proc = run_gavel(
        "eval",
        "ab",
        str(suite),
        "--a",
        "app-model",
        "--b",
        "app-model",
        "--api-key",
        api_key,
        "--out",
        str(tmp / "ab"),
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "decision: no significant difference" in proc.stdout


@pytest.mark.engine  # needs right answers to lose: the real model's
def test_ab_of_a_degraded_variant_fails(runs: dict[str, object], api_key: str) -> None:
    """B is the session's swap candidate: the app model cut to one token per answer. Its
    answers lose the reference (``correct``, a gating check): exit 1."""
    proc = run_gavel(
        "eval", "ab", str(runs["suite"]), "--a", "app-model", "--b", "app-terse",
        "--api-key", api_key, "--out", str(Path(str(runs["tmp"])) / "ab-terse"), timeout=900,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "gate: FAIL" in proc.stdout


def test_the_judge_against_labels(stack: str, api_key: str) -> None:
    proc = run_gavel(
        "eval",
        "judge",
        str(ROOT / "evals/suites/judge_eval.yaml"),
        "--api-key",
        api_key,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = next(line for line in proc.stdout.splitlines() if line.startswith("matches_reference"))
    assert " 24 " in row or "  24" in row  # n: every labelled answer judged


def test_a_killed_run_resumes_where_it_stopped(stack: str, api_key: str, tmp_path: Path) -> None:
    suite = _suite(tmp_path, seed=7, concurrency=1)  # one call at a time: surely midway
    gavel = str(Path(sys.executable).parent / "gavel")
    start = datetime.now(UTC)
    proc = subprocess.Popen(
        [gavel, "eval", "run", str(suite), "--api-key", api_key, "--out", str(tmp_path / "k")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, "GAVEL_CONFIG": CONFIG},
    )
    store = Store(STORE_URL)
    c = tables.eval_cache
    from sqlalchemy import func, select

    def cached() -> int:
        stmt = select(func.count()).select_from(c).where(c.c.created_at >= start)
        return int(store.scalar(stmt))

    deadline = time.monotonic() + 300
    while cached() < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = cached()
    assert 3 <= done < 8
    resumed = _run(suite, api_key, tmp_path / "k2")
    assert resumed.model_calls == 8 - done and resumed.cached_answers == done


def test_a_wrong_key_is_one_line_exit_2(stack: str, tmp_path: Path) -> None:
    proc = run_gavel("eval", "run", str(_suite(tmp_path)), "--api-key", "gvl_wrong")
    assert proc.returncode == 2 and "refused the key (HTTP 401)" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_align_chooses_on_one_part_and_reports_the_other(
    stack: str, api_key: str, tmp_path: Path
) -> None:
    import yaml

    lines = (ROOT / "evals/suites/data/judge_labels.jsonl").read_text().splitlines()[:12]
    (tmp_path / "data.jsonl").write_text("\n".join(lines) + "\n")
    suite = yaml.safe_load((ROOT / "evals/suites/judge_eval.yaml").read_text())
    suite["dataset"] = "data.jsonl"
    cands = suite["checks"][0]["candidates"]
    suite["checks"][0]["candidates"] = [c for c in cands if c["name"] in ("strict", "contains")]
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(suite))
    out = tmp_path / "chosen.yaml"
    proc = run_gavel(
        "eval",
        "align",
        str(tmp_path / "s.yaml"),
        "--criterion",
        "matches_reference",
        "--api-key",
        api_key,
        "--write",
        str(out),
        timeout=900,
    )
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    text = proc.stdout
    assert "6 items to choose on, 6 held out" in text and "held out (the result): n=" in text
    chosen = next(line for line in text.splitlines() if line.startswith("chosen: "))
    if "chosen: strict" in chosen:
        assert proc.returncode == 0 and "matches_reference" in out.read_text()
    else:  # an assertion won: nothing to write back, said in one line
        assert proc.returncode == 1 and "is an assertion" in proc.stderr
