"""Running a suite: generate through an OpenAI-compatible endpoint (cached, in
:mod:`evals._generate`), score every check (assertions here, judge criteria through the
judges' neutral API), summarise, store the run.

Judge verdicts are stored by an id derived from the answer, so a re-run judges only
what changed, and a killed run resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from evals._checks import ASSERTIONS
from evals._generate import Answer, Endpoint, answer_id, generate
from evals._judging import exchange_of, judge_once
from evals._result import CheckSummary, EpochResult, ItemResult, Outcome, RunResult
from evals._stats import clustered_wilson
from evals._suite import LoadedSuite
from evals._trust import judge_trust
from judges import JudgeItem, JudgingConfig
from serving import EXIT_USAGE, CliError, StackConfig
from serving.store import Store, tables

_cache = tables.eval_cache
_runs = tables.eval_runs


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def summarise(name: str, gating: bool, items: Sequence[ItemResult], check: str) -> CheckSummary:
    """A check's pass rate over every (item, epoch), with a 95% Wilson interval clustered
    by item (an item's epochs are not independent; see :func:`clustered_wilson`)."""
    per_item = [[e.outcomes.get(check) for e in it.epochs] for it in items]
    got = [o for outs in per_item for o in outs]
    passes, fails = got.count("pass"), got.count("fail")
    n = passes + fails
    lo, hi = clustered_wilson(
        [(outs.count("pass"), outs.count("pass") + outs.count("fail")) for outs in per_item]
    )
    return CheckSummary(
        name=name,
        gating=gating,
        passes=passes,
        n=n,
        rate=passes / n if n else None,
        ci_low=lo,
        ci_high=hi,
        skipped=got.count("skip"),
        errors=got.count("error"),
    )


def run_suite(
    loaded: LoadedSuite,
    ep: Endpoint,
    store: Store,
    *,
    stack: StackConfig,
    judging: JudgingConfig,
    judge_api_key: str,
    epochs: int | None = None,
    use_cache: bool = True,
    use_ray: bool = False,
    log: Callable[[str], None] = print,
) -> RunResult:
    """Generate, score every check, summarise, and store the run."""
    t0 = time.perf_counter()
    suite = loaded.suite
    k = epochs or suite.epochs
    todo = [(it, e) for it in loaded.items if it.response is None for e in range(k)]
    answers, calls = asyncio.run(
        generate(ep, todo, store, concurrency=suite.concurrency, use_cache=use_cache)
    )
    for it in loaded.items:
        if it.response is not None:
            for e in range(k):
                answers[(it.id, e)] = Answer(it.response, cached=True)
    log(
        f"{suite.name}: {len(loaded.items)} items x {k} epochs; {calls} model calls, "
        f"{sum(a.cached for a in answers.values())} cached or fixed answers"
    )
    outcomes = _assertions(loaded, answers, k)
    _judge(
        loaded,
        answers,
        outcomes,
        ep.model,
        k,
        store,
        stack,
        judging,
        judge_api_key,
        use_ray=use_ray,
        log=log,
    )
    items = [
        ItemResult(
            id=it.id,
            tags=it.tags,
            epochs=[
                EpochResult(
                    epoch=e,
                    response=answers[(it.id, e)].text,
                    error=answers[(it.id, e)].error,
                    outcomes=outcomes[(it.id, e)],
                    cached=answers[(it.id, e)].cached,
                    prompt_tokens=answers[(it.id, e)].prompt_tokens,
                    completion_tokens=answers[(it.id, e)].completion_tokens,
                )
                for e in range(k)
            ],
        )
        for it in loaded.items
    ]
    trust = judge_trust(store, judging, loaded.criteria)
    checks = [
        summarise(c.name, c.gating, items, c.name).model_copy(
            update={"judge_trusted": trust.get(c.name, (None, None))[0],
                    "trust_reason": trust.get(c.name, (None, None))[1]}
        )
        for c in suite.checks
    ]  # fmt: skip
    by_tag: dict[str, list[ItemResult]] = defaultdict(list)
    for item in items:
        for tag in item.tags:
            by_tag[tag].append(item)
    tags = {
        t: [summarise(c.name, c.gating, its, c.name) for c in suite.checks]
        for t, its in sorted(by_tag.items())
    }
    flaky = {
        c.name: [it.id for it in items if 0 < it.passes(c.name)[0] < it.passes(c.name)[1]]
        for c in suite.checks
    }
    result = RunResult(
        run_id=f"eval-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}",
        suite=suite.name,
        suite_hash=loaded.suite_hash,
        dataset_hash=loaded.dataset_hash,
        git_commit=_git_commit(),
        created_at=datetime.now(UTC),
        model=ep.model,
        base_url=ep.base_url,
        params=ep.params,
        system=ep.system,
        epochs=k,
        items=items,
        checks=checks,
        tags=tags,
        flaky={c: ids for c, ids in flaky.items() if ids},
        model_calls=calls,
        cached_answers=sum(a.cached for a in answers.values()),
        seconds=time.perf_counter() - t0,
    )
    save_run(store, result)
    return result


def _assertions(
    loaded: LoadedSuite, answers: dict[tuple[str, int], Answer], k: int
) -> dict[tuple[str, int], dict[str, Outcome]]:
    out: dict[tuple[str, int], dict[str, Outcome]] = {}
    for it in loaded.items:
        for e in range(k):
            ans = answers[(it.id, e)]
            got: dict[str, Outcome] = {}
            for c in loaded.suite.checks:
                if c.assertion is None:
                    continue
                if ans.text is None:
                    got[c.name] = "error"
                else:
                    got[c.name] = ASSERTIONS.run(c.assertion, ans.text, it.expected, c.args)  # type: ignore[assignment]
            out[(it.id, e)] = got
    return out


def _judge(
    loaded: LoadedSuite,
    answers: dict[tuple[str, int], Answer],
    outcomes: dict[tuple[str, int], dict[str, Outcome]],
    model: str,
    k: int,
    store: Store,
    stack: StackConfig,
    judging: JudgingConfig,
    api_key: str,
    *,
    use_ray: bool,
    log: Callable[[str], None],
) -> None:
    """Score the judge checks through the judges' API; only verdicts not stored are asked."""
    if not loaded.criteria:
        return
    wanted: dict[
        tuple[str, str], tuple[str, int, str]
    ] = {}  # (uid, criterion) -> item, epoch, check
    items: list[JudgeItem] = []
    for it in loaded.items:
        for e in range(k):
            ans = answers[(it.id, e)]
            for check, crit in loaded.criteria.items():
                if ans.text is None:
                    outcomes[(it.id, e)][check] = "error"
                    continue
                uid = answer_id(model, it, e, ans.text)
                wanted[(uid, crit.name)] = (it.id, e, check)
                if "expected" in crit.applies_to.metadata and it.expected is None:
                    outcomes[(it.id, e)][check] = "skip"
                    continue
                ex = exchange_of(it, uid, model, ans.text)
                items.append(JudgeItem(criterion=crit.name, exchanges=[ex]))
    crits = {c.name: c for c in loaded.criteria.values()}
    have = judge_once(
        items, list(crits.values()), store, stack, judging, api_key,
        run_id=f"eval-{loaded.suite_hash}", use_ray=use_ray, log=log,
    )  # fmt: skip
    for (uid, crit_name), (item_id, e, check) in wanted.items():
        v = have.get((uid, crit_name))
        if outcomes[(item_id, e)].get(check) == "skip":
            continue
        outcomes[(item_id, e)][check] = (
            v.verdict if v is not None and v.verdict in ("pass", "fail") else "error"  # type: ignore[assignment]
        )


def save_run(store: Store, result: RunResult) -> None:
    """Store a finished run (``gavel eval list`` shows it)."""
    store.insert_ignore(
        _runs,
        [
            {
                "run_id": result.run_id,
                "suite": result.suite,
                "suite_hash": result.suite_hash,
                "dataset_hash": result.dataset_hash,
                "model": result.model,
                "created_at": result.created_at,
                "result_json": result.model_dump_json(),
            }
        ],
    )


def list_runs(store: Store) -> list[dict[str, Any]]:
    """Stored runs, newest first (without their documents)."""
    cols = [c for c in _runs.c if c.name != "result_json"]
    return store.fetch(select(*cols).order_by(_runs.c.created_at.desc()))


def load_run(store: Store, ref: str) -> RunResult:
    """A run by id (from the store) or by path (a ``result.json``)."""
    from pathlib import Path

    p = Path(ref)
    if p.suffix == ".json" or p.exists():
        try:
            return RunResult.model_validate_json(p.read_text())
        except OSError as exc:
            raise CliError(f"{ref}: cannot read ({exc.strerror})", EXIT_USAGE) from None
        except ValueError as exc:
            raise CliError(f"{ref}: not a gavel eval result ({exc})", EXIT_USAGE) from None
    rows = store.fetch(select(_runs.c.result_json).where(_runs.c.run_id == ref))
    if not rows:
        raise CliError(f"no eval run {ref!r}; see `gavel eval list`", EXIT_USAGE)
    return RunResult.model_validate_json(rows[0]["result_json"])
