"""The daily judging job: sample a day's traffic, judge it with Ray tasks, store, report.

Captured traffic is adapted into exchanges here, at the edge; judges see only exchanges.
The job is idempotent (a verdict is keyed by item, criterion and criterion version,
and items already judged are skipped) and resumable (each Ray task's verdicts are
written as soon as it finishes, so a killed run loses at most the chunks in flight).
Only production traffic is sampled: the judge's and the evals' own calls are not.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from judges._aggregate import aggregate
from judges._calibration import calibrate
from judges._client import JudgeClient, JudgeClientConfig
from judges._config import JudgingConfig
from judges._criteria import Criterion
from judges._labels import LabelStore
from judges._registry import KindRegistry
from judges._report import daily_figures, report_dir, write_reports
from judges._result import DailyResult
from judges._sampling import _rank, sample
from judges._store import VerdictStore
from judges._wire import Exchange, JudgeItem, Verdict
from judges.kinds import default_kinds
from serving import Figure, PriceConfig, StackConfig, TrafficRecord
from serving.store import Store


def to_exchange(rec: TrafficRecord) -> Exchange:
    """A captured record as the exchange a judge scores."""
    body = rec.request
    messages = body.get("messages")
    return Exchange(
        id=rec.request_id,
        model=rec.model,
        messages=messages if isinstance(messages, list) else None,
        prompt=None if isinstance(messages, list) else str(body.get("prompt", "")),
        response=rec.response_text,
        metadata=rec.metadata,
    )


def _matches(rec: TrafficRecord, crit: Criterion, model_ids: set[str]) -> bool:
    if rec.model not in model_ids:
        return False
    keys = crit.applies_to.keys
    if keys is not None and rec.key_name not in keys:
        return False
    for k, want in crit.applies_to.metadata.items():
        have = rec.metadata.get(k)
        if have is None or (want != "*" and have != want):
            return False
    return True


def build_items(
    records: Sequence[TrafficRecord],
    criteria: Sequence[Criterion],
    stack: StackConfig,
    judging: JudgingConfig,
    *,
    day: date,
    kinds: KindRegistry | None = None,
) -> list[JudgeItem]:
    """The day's sample, as judge items: per criterion, the sampled records it applies to.

    Criteria of one-exchange kinds judge the sampled records. Criteria of two-exchange
    kinds pair the responses of their two roles' models that share the criterion's
    ``pair_key`` metadata; pairs are sampled at the same rate, by pair id.
    """
    registry = kinds or default_kinds()
    records = [r for r in records if r.source == "production"]
    seed = day.isoformat()
    sampled = [r for recs in sample(records, judging.sampling, seed=seed).values() for r in recs]
    items: list[JudgeItem] = []
    for crit in criteria:
        roles = [r for r in crit.applies_to.roles if any(m.role == r for m in stack.models)]
        ids = {stack.model(r).model_id for r in roles}
        if registry.get(crit.kind).arity == 1:
            items += [
                JudgeItem(criterion=crit.name, exchanges=[to_exchange(r)])
                for r in sampled
                if _matches(r, crit, ids)
            ]
            continue
        if len(roles) != 2:
            continue
        a_id, b_id = stack.model(roles[0]).model_id, stack.model(roles[1]).model_id
        groups: dict[str, dict[str, TrafficRecord]] = defaultdict(dict)
        for r in records:
            if r.status == 200 and r.response_text is not None and _matches(r, crit, ids):
                groups[r.metadata[crit.pair_key]].setdefault(r.model, r)
        pairs = [(pid, g[a_id], g[b_id]) for pid, g in groups.items() if a_id in g and b_id in g]
        pairs.sort(key=lambda p: _rank(seed, p[0]))
        keep = max(1, int(len(pairs) * judging.sampling.rate + 0.5)) if pairs else 0
        if judging.sampling.max_per_stratum:
            keep = min(keep, judging.sampling.max_per_stratum)
        items += [
            JudgeItem(criterion=crit.name, exchanges=[to_exchange(a), to_exchange(b)])
            for _, a, b in pairs[:keep]
        ]
    return items


def judge_chunk(
    items: list[dict[str, Any]],
    criteria: list[dict[str, Any]],
    client_cfg: dict[str, Any],
    *,
    concurrency: int,
    run_id: str,
    day: str | None,
    price: dict[str, Any],
    kinds: KindRegistry,
) -> list[dict[str, Any]]:
    """Judge a chunk of items (runs as a Ray task, or in-process); returns verdicts as dicts."""
    crits = {c["name"]: Criterion.model_validate(c) for c in criteria}
    cfg = JudgeClientConfig.model_validate(client_cfg)
    judge_price = PriceConfig.model_validate(price)

    async def run() -> list[Verdict]:
        client = JudgeClient(cfg)
        sem = asyncio.Semaphore(concurrency)
        fns = {name: kinds.get(c.kind).factory(c, client) for name, c in crits.items()}

        async def one(raw: dict[str, Any]) -> Verdict:
            item = JudgeItem.model_validate(raw)
            crit = crits[item.criterion]
            kind = kinds.get(crit.kind)
            async with sem:
                t0 = time.perf_counter()
                out = await fns[item.criterion](item)
                ms = (time.perf_counter() - t0) * 1000
            return Verdict(
                item_id=item.item_id,
                criterion=crit.name,
                criterion_version=crit.version,
                kind=crit.kind,
                judge=kind.judge_name,
                judge_version=kind.judge_version,
                judge_model=cfg.model,
                judge_args={
                    "temperature": cfg.temperature,
                    "max_tokens": cfg.max_tokens,
                    "max_retries": cfg.max_retries,
                    "timeout_s": cfg.timeout_s,
                    "format": crit.verdict_format,
                },
                model="|".join(e.model for e in item.exchanges),
                run_id=run_id,
                day=day,
                verdict=out.verdict,
                reasoning=out.reasoning,
                error=out.error,
                order_winners=out.order_winners,
                p_fail=out.p_fail,
                judge_prompt_tokens=out.prompt_tokens,
                judge_completion_tokens=out.completion_tokens,
                judge_cost_usd=judge_price.cost(out.prompt_tokens, out.completion_tokens),
                latency_ms=ms,
                created_at=datetime.now(UTC),
            )

        try:
            return await asyncio.gather(*(one(i) for i in items))
        finally:
            await client.close()

    return [v.model_dump(mode="json") for v in asyncio.run(run())]


def judge_items(
    items: Sequence[JudgeItem],
    criteria: Sequence[Criterion],
    stack: StackConfig,
    judging: JudgingConfig,
    vstore: VerdictStore,
    *,
    run_id: str,
    day: str | None,
    api_key: str,
    use_ray: bool = True,
    kinds: KindRegistry | None = None,
    log: Callable[[str], None] = print,
) -> int:
    """Judge ``items`` with the judge role's model and store each chunk's verdicts as it ends.

    The neutral entry point that the daily job and offline evals share. Returns the
    number of verdicts written.
    """
    judge_model = stack.model("judge")
    client_cfg = JudgeClientConfig(
        base_url=stack.http.base_url,
        api_key=api_key,
        model=judge_model.model_id,
        timeout_s=judging.timeout_s,
        max_retries=judging.max_retries,
        max_tokens=judging.max_tokens,
    )
    size = judging.chunk_size
    chunks = [list(items[i : i + size]) for i in range(0, len(items), size)]
    kwargs: dict[str, Any] = {
        "criteria": [c.model_dump(mode="json") for c in criteria],
        "client_cfg": client_cfg.model_dump(),
        "concurrency": judging.concurrency,
        "run_id": run_id,
        "day": day,
        "price": judge_model.price.model_dump(mode="json"),
        "kinds": kinds or default_kinds(),
    }
    written = 0
    payloads = [[i.model_dump(mode="json") for i in c] for c in chunks]
    for verdicts in _fan_out(payloads, kwargs, use_ray=use_ray, in_flight=judging.parallel_tasks):
        written += vstore.insert(Verdict.model_validate(v) for v in verdicts)
        log(f"  {written}/{len(items)} judged")
    return written


def run_daily(
    stack: StackConfig,
    judging: JudgingConfig,
    criteria: Sequence[Criterion],
    store: Store,
    *,
    day: date,
    api_key: str,
    use_ray: bool = True,
    retry_errors: bool = False,
    kinds: KindRegistry | None = None,
    write_report: bool = True,
    batch: bool = False,
    log: Callable[[str], None] = print,
) -> DailyResult:
    """Run (or finish) the job for ``day``: sample, judge, aggregate, calibrate, report.

    The reports (HTML, markdown, Prometheus textfile, optional Pushgateway push) go to
    ``judging.report_dir/DAY`` unless ``write_report`` is false. The day's figures and
    the job's status (last run, last success, ok) are published to the store, where the
    gateway's ``/metrics`` serves them; a failed run publishes ``ok = 0`` and re-raises.
    With ``batch``, pass/fail items go through Ray Data's LLM batch processor
    (:mod:`judges._batch`) instead of the online endpoint.
    """
    try:
        res = _run_daily(
            stack, judging, criteria, store, day=day, api_key=api_key, use_ray=use_ray,
            retry_errors=retry_errors, kinds=kinds, write_report=write_report, batch=batch,
            log=log,
        )  # fmt: skip
    except BaseException:
        _publish_status(store, ok=False, log=log)
        raise
    publish_figures(store, res, log=log)
    _publish_status(store, ok=True, log=log)
    return res


def publish_figures(store: Store, res: DailyResult, *, log: Callable[[str], None] = print) -> None:
    """Publish ``res``'s figures unless a later day's are already published (a backfill of
    an old day does not replace today's dashboard)."""
    try:
        shown = {f.name: f.value for f in store.figures()}
        new = daily_figures(res, res.calibration)
        day_ts = next(f.value for f in new if f.name == "gavel_judge_day_timestamp_seconds")
        if shown.get("gavel_judge_day_timestamp_seconds", 0.0) > day_ts:
            log(f"{res.day}: a later day's figures are published; kept them")
            return
        store.replace_figures("judge", new)
    except Exception as exc:  # figures are a view; the verdicts and reports are stored
        log(f"warning: could not publish the day's figures: {type(exc).__name__}: {exc}")


def _publish_status(store: Store, *, ok: bool, log: Callable[[str], None]) -> None:
    """The job's status figures: last run, last success (kept on failure), ok."""
    now = datetime.now(UTC).timestamp()
    try:
        last_ok = next(
            (f.value for f in store.figures()
             if f.name == "gavel_judge_last_success_timestamp_seconds"),
            None,
        )  # fmt: skip
        rows = [
            Figure(name="gavel_judge_last_run_timestamp_seconds",
                   help="When the daily judge job last finished, Unix seconds", value=now),
            Figure(name="gavel_judge_last_run_ok",
                   help="1 if the daily judge job's last run succeeded, else 0", value=int(ok)),
        ]  # fmt: skip
        last_ok = now if ok else last_ok
        if last_ok is not None:
            rows.append(
                Figure(
                    name="gavel_judge_last_success_timestamp_seconds",
                    help="When the daily judge job last succeeded, Unix seconds",
                    value=last_ok,
                )
            )
        store.replace_figures("judge_status", rows)
    except Exception as exc:
        log(f"warning: could not publish the job's status: {type(exc).__name__}: {exc}")


def _run_daily(
    stack: StackConfig,
    judging: JudgingConfig,
    criteria: Sequence[Criterion],
    store: Store,
    *,
    day: date,
    api_key: str,
    use_ray: bool = True,
    retry_errors: bool = False,
    kinds: KindRegistry | None = None,
    write_report: bool = True,
    batch: bool = False,
    log: Callable[[str], None] = print,
) -> DailyResult:
    registry = kinds or default_kinds()
    t0 = time.perf_counter()
    vstore = VerdictStore(store)
    run_id = day.isoformat()
    if retry_errors:
        vstore.delete_errors(run_id)
    records = store.traffic_for_day(day, production_only=True)
    items = build_items(records, criteria, stack, judging, day=day, kinds=registry)
    versions = {c.name: c.version for c in criteria}
    done = vstore.done_keys(run_id)
    todo = [i for i in items if (i.item_id, i.criterion, versions[i.criterion]) not in done]
    log(
        f"{day}: {len(records)} captured, {len(items)} items sampled, "
        f"{len(items) - len(todo)} already judged, {len(todo)} to judge"
    )
    written = 0
    if batch:
        from judges._batch import judge_batch

        pass_fail = {c.name for c in registry.pass_fail(criteria)}
        batched = [i for i in todo if i.criterion in pass_fail]
        todo = [i for i in todo if i.criterion not in pass_fail]
        written += judge_batch(batched, criteria, stack, judging, vstore, run_id=run_id,
                               day=run_id, kinds=registry, log=log)  # fmt: skip
    written += judge_items(
        todo,
        criteria,
        stack,
        judging,
        vstore,
        run_id=run_id,
        day=run_id,
        api_key=api_key,
        use_ray=use_ray,
        kinds=registry,
        log=log,
    )
    today = vstore.for_days(day, day)
    trailing = vstore.for_days(day - timedelta(days=judging.trailing_days), day - timedelta(days=1))
    agg = aggregate(registry, today, trailing, drop_p=judging.drop_p_value)
    calibration = calibrate(
        criteria,
        LabelStore(store).query(),
        vstore.current(versions),
        judging.calibration,
        kinds=registry,
    )
    res = DailyResult(
        day=day,
        sampled=len(items),
        judged_now=written,
        skipped=len(items) - len(todo),
        rates=agg.rates,
        pairs=agg.pairs,
        judge_prompt_tokens=sum(v.judge_prompt_tokens for v in today),
        judge_completion_tokens=sum(v.judge_completion_tokens for v in today),
        judge_cost_usd=sum(v.judge_cost_usd for v in today),
        errors=sum(v.verdict == "error" for v in today),
        seconds=time.perf_counter() - t0,
        calibration=calibration,
    )
    if not write_report:
        return res
    html = write_reports(
        res,
        vstore.for_days(day - timedelta(days=30), day),
        report_dir(judging.report_dir, day),
        calibration=calibration,
        pushgateway=judging.pushgateway,
        kinds=registry,
    )
    return DailyResult(**{**res.__dict__, "report": html})


def _fan_out(
    payloads: list[list[dict[str, Any]]],
    kwargs: dict[str, Any],
    *,
    use_ray: bool,
    in_flight: int,
) -> Iterator[list[dict[str, Any]]]:
    """Yield each chunk's verdicts as it completes.

    At most ``in_flight`` Ray tasks run at once; without Ray, chunks run in-process.
    """
    if not payloads:
        return
    if not use_ray:
        for p in payloads:
            yield judge_chunk(p, **kwargs)
        return
    import ray

    task: Any = ray.remote(num_cpus=0, max_retries=1)(judge_chunk)  # type: ignore[arg-type]
    queue = list(payloads)
    pending: list[Any] = []
    while queue or pending:
        while queue and len(pending) < in_flight:
            pending.append(task.remote(queue.pop(0), **kwargs))
        ready, pending = ray.wait(pending, num_returns=1)
        yield ray.get(ready[0])
