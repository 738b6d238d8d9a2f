"""Running a suite: generate through an OpenAI-compatible endpoint (cached), score every
check (assertions here, judge criteria through the judges' neutral API), summarise.

Answers are cached in the store by (base URL, model, parameters, messages, epoch) as
each one arrives, and judge verdicts are stored by an id derived from the answer, so a
re-run generates and judges only what changed, and a killed run resumes where it stopped.
Gavel's own calls carry ``X-Gavel-Source: eval``, so the gateway keeps them out of
production judging and prices them apart.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from evals._checks import ASSERTIONS
from evals._judging import exchange_of, judge_once
from evals._result import CheckSummary, EpochResult, ItemResult, Outcome, RunResult
from evals._suite import Item, LoadedSuite, Params
from judges import JudgeItem, JudgingConfig, wilson
from serving import EXIT_USAGE, SOURCE_HEADER, CliError, StackConfig
from serving.store import Store, tables

_cache = tables.eval_cache
_runs = tables.eval_runs


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom answers are asked for."""

    base_url: str
    api_key: str
    model: str
    params: Params
    system: str | None = None


@dataclass(frozen=True)
class Answer:
    """One generated (or fixed, or cached) answer."""

    text: str | None
    error: str | None = None
    cached: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0


def _hash(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def messages_of(item: Item, system: str | None) -> list[dict[str, Any]] | None:
    """The chat messages sent for an item (the suite's system prompt first)."""
    if item.messages is None:
        return None
    return ([{"role": "system", "content": system}] if system else []) + list(item.messages)


def cache_key(ep: Endpoint, item: Item, epoch: int) -> str:
    """What an answer is cached by: base URL, model, parameters, messages or prompt, epoch."""
    return _hash(
        ep.base_url,
        ep.model,
        ep.params.model_dump(),
        messages_of(item, ep.system),
        item.prompt,
        epoch,
    )[:64]


def check_endpoint(ep: Endpoint) -> None:
    """Fail early, in one line (exit 2), when the endpoint, the key or the model is wrong."""
    import httpx

    try:
        r = httpx.get(
            f"{ep.base_url.rstrip('/')}/models",
            headers={"Authorization": f"Bearer {ep.api_key}"},
            timeout=10,
        )
    except httpx.HTTPError as exc:
        raise CliError(
            f"cannot reach {ep.base_url} ({type(exc).__name__}); start the stack with "
            "`gavel serve --detach` or pass --base-url",
            EXIT_USAGE,
        ) from None
    if r.status_code in (401, 403):
        raise CliError(
            f"{ep.base_url} refused the key (HTTP {r.status_code}); pass --api-key or set "
            "GAVEL_API_KEY to a key with the 'infer' (and 'judge') scope",
            EXIT_USAGE,
        )
    try:
        served = {m["id"] for m in r.json()["data"]}
    except (ValueError, KeyError, TypeError):
        raise CliError(f"{ep.base_url}/models did not answer like OpenAI", EXIT_USAGE) from None
    if ep.model not in served:
        raise CliError(
            f"{ep.base_url} serves no model {ep.model!r} (it serves: {', '.join(sorted(served))})",
            EXIT_USAGE,
        )


async def _generate(
    ep: Endpoint,
    todo: list[tuple[Item, int]],
    store: Store,
    *,
    concurrency: int,
    use_cache: bool,
) -> tuple[dict[tuple[str, int], Answer], int]:
    """Answers for (item, epoch); cached ones are read, the others asked for and cached."""
    import openai

    out: dict[tuple[str, int], Answer] = {}
    keys = {(it.id, e): cache_key(ep, it, e) for it, e in todo}
    if use_cache and keys:
        rows = await asyncio.to_thread(
            store.fetch, select(_cache).where(_cache.c.cache_key.in_(list(keys.values())))
        )
        by_key = {r["cache_key"]: r for r in rows}
        for k, ck in keys.items():
            row = by_key.get(ck)
            if row is not None:
                out[k] = Answer(
                    row["response_text"],
                    None,
                    True,
                    row["prompt_tokens"] or 0,
                    row["completion_tokens"] or 0,
                )
    client = openai.AsyncOpenAI(
        base_url=ep.base_url,
        api_key=ep.api_key,
        max_retries=2,
        timeout=300,
        default_headers={SOURCE_HEADER: "eval"},
    )
    sem = asyncio.Semaphore(concurrency)
    calls = 0
    params = ep.params.model_dump(exclude_none=True)

    async def one(item: Item, epoch: int) -> None:
        nonlocal calls
        async with sem:
            calls += 1
            try:
                if item.messages is not None:
                    msgs: Any = messages_of(item, ep.system)
                    r: Any = await client.chat.completions.create(
                        model=ep.model, messages=msgs, **params
                    )
                    text = r.choices[0].message.content or ""
                else:
                    rc = await client.completions.create(
                        model=ep.model, prompt=item.prompt or "", **params
                    )
                    r, text = rc, rc.choices[0].text
            except openai.APIStatusError as exc:
                out[(item.id, epoch)] = Answer(
                    None, f"HTTP {exc.status_code}: {str(exc.message)[:200]}"
                )
                return
            except openai.APIError as exc:
                out[(item.id, epoch)] = Answer(None, type(exc).__name__)
                return
        usage = r.usage
        ans = Answer(
            text,
            None,
            False,
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
        )
        out[(item.id, epoch)] = ans
        row = {
            "cache_key": keys[(item.id, epoch)],
            "model": ep.model,
            "response_text": text,
            "finish_reason": r.choices[0].finish_reason,
            "prompt_tokens": ans.prompt_tokens,
            "completion_tokens": ans.completion_tokens,
            "created_at": datetime.now(UTC),
        }
        await asyncio.to_thread(store.upsert, _cache, [row], update=("response_text",))

    try:
        await asyncio.gather(*(one(it, e) for it, e in todo if (it.id, e) not in out))
    finally:
        await client.close()
    return out, calls


def answer_id(model: str, item: Item, epoch: int, answer: str) -> str:
    """The judged item's id: derived from the answer, so an unchanged answer keeps its verdict."""
    return "eval-" + _hash(model, item.id, epoch, answer)[:32]


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def summarise(name: str, gating: bool, items: Sequence[ItemResult], check: str) -> CheckSummary:
    """A check's pass rate over every (item, epoch), with a 95% Wilson interval."""
    got = [e.outcomes.get(check) for it in items for e in it.epochs]
    passes, fails = got.count("pass"), got.count("fail")
    n = passes + fails
    lo, hi = wilson(passes, n)
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
        _generate(ep, todo, store, concurrency=suite.concurrency, use_cache=use_cache)
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
    checks = [summarise(c.name, c.gating, items, c.name) for c in suite.checks]
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
