"""The daily judging job: sample a day's traffic, judge it with Ray tasks, store, report.

The sample's items are built in :mod:`judges._items`; they are judged in chunks by
:mod:`judges._fanout`.

Captured traffic is adapted into exchanges here, at the edge; judges see only exchanges.
The job is idempotent (a verdict is keyed by item, criterion and criterion version,
and items already judged are skipped) and resumable (each Ray task's verdicts are
written as soon as it finishes, so a killed run loses at most the chunks in flight).
Only production traffic is sampled: the judge's and the evals' own calls are not.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta

from judges._aggregate import aggregate
from judges._calibration import calibrate
from judges._config import JudgingConfig
from judges._criteria import Criterion
from judges._fanout import judge_items
from judges._feedback import feedback_rows, judge_vs_users
from judges._items import build_items, to_exchange
from judges._labels import LabelStore
from judges._pairwise_calibration import calibrate_pairs
from judges._registry import KindRegistry
from judges._report import daily_figures, report_dir, write_reports
from judges._result import DailyResult
from judges._store import VerdictStore
from judges._wire import JudgeItem
from judges.kinds import default_kinds
from serving import Figure, StackConfig
from serving.feedback import feedback_between
from serving.store import Store


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
    written = _judge(todo, criteria, stack, judging, vstore, run_id=run_id, api_key=api_key,
                     use_ray=use_ray, kinds=registry, batch=batch, log=log)  # fmt: skip
    # The day's rates are the sample's: verdicts of other records of the day (online
    # judging's, by its own rules) are not part of it.
    sampled = {(i.item_id, i.criterion) for i in items}
    today = [v for v in vstore.for_days(day, day) if (v.item_id, v.criterion) in sampled]
    trailing = vstore.for_days(day - timedelta(days=judging.trailing_days), day - timedelta(days=1))
    agg = aggregate(registry, today, trailing, drop_p=judging.drop_p_value)
    labels, current = LabelStore(store).query(), vstore.current(versions)
    calibration = calibrate(criteria, labels, current, judging.calibration, kinds=registry)
    pairwise_calibration = calibrate_pairs(
        criteria, labels, current, judging.calibration, kinds=registry
    )
    captured = {r.request_id for r in records}
    feedback = [f for f in feedback_between(store, day, day) if f.request_id in captured]
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
        pairwise_calibration=pairwise_calibration,
        feedback=feedback_rows(feedback, Counter(r.model for r in records)),
        judge_vs_users=judge_vs_users(today, feedback, judging.feedback),
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


def _judge(
    todo: list[JudgeItem],
    criteria: Sequence[Criterion],
    stack: StackConfig,
    judging: JudgingConfig,
    vstore: VerdictStore,
    *,
    run_id: str,
    api_key: str,
    use_ray: bool,
    kinds: KindRegistry,
    batch: bool,
    log: Callable[[str], None],
) -> int:
    """Judge ``todo`` (pass/fail items through Ray Data with ``batch``); returns the
    verdicts written."""
    written = 0
    if batch:
        from judges._batch import judge_batch

        pass_fail = {c.name for c in kinds.pass_fail(criteria)}
        batched = [i for i in todo if i.criterion in pass_fail]
        todo = [i for i in todo if i.criterion not in pass_fail]
        written += judge_batch(batched, criteria, stack, judging, vstore, run_id=run_id,
                               day=run_id, kinds=kinds, api_key=api_key, log=log)  # fmt: skip
    return written + judge_items(todo, criteria, stack, judging, vstore, run_id=run_id,
                                 day=run_id, api_key=api_key, use_ray=use_ray, kinds=kinds,
                                 log=log)  # fmt: skip


__all__ = ["build_items", "judge_items", "publish_figures", "run_daily", "to_exchange"]
