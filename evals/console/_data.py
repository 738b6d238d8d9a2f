"""What the console's views show, read from the store (I/O here; the statistics are the
judges' and the store's own pure functions).

Every view model leaves captured text out when the record's key is metadata-only or the
text was erased or purged: :func:`shown_text` is the one place that decides.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from judges import (
    CalibrationRow,
    Criterion,
    JudgingConfig,
    Label,
    LabelStore,
    Verdict,
    VerdictStore,
    calibrate,
    default_kinds,
    wilson,
)
from serving import StackConfig
from serving._wire import TrafficRecord
from serving.feedback import Feedback, feedback_between, feedback_for
from serving.store import (
    DayCache,
    Store,
    histogram_percentile,
    merge_histograms,
    tables,
    traffic_days,
)

WINDOWS = {"today": 1, "7d": 7, "30d": 30}


@dataclass
class ModelDay:
    """One model's traffic in the window."""

    requests: int = 0
    errors: dict[int, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    ttft_p50_ms: dict[str, float] = field(default_factory=dict)
    ttft_p99_ms: dict[str, float] = field(default_factory=dict)
    tpot_p50_ms: dict[str, float] = field(default_factory=dict)
    tpot_p99_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class Rate:
    """A pass rate (or positive share) with its 95% Wilson interval."""

    passes: int
    n: int

    @property
    def value(self) -> float | None:
        """The rate (``None`` with no items)."""
        return self.passes / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% Wilson interval."""
        return wilson(self.passes, self.n)


@dataclass
class Overview:
    """The overview of a window."""

    first: date
    last: date
    models: dict[str, ModelDay]
    top_keys: list[tuple[str, float]]
    pass_rates: dict[str, dict[str, Rate]]
    """Criterion -> day -> rate (production traffic's daily verdicts)."""
    trust: dict[str, CalibrationRow]
    feedback: dict[str, Rate]
    """Model -> share of positive feedback."""
    slo_ttft_ms: dict[str, float]
    slo_tpot_ms: dict[str, float]
    swap: Any = None


def window(name: str, today: date) -> tuple[date, date]:
    """The days of a named window (``today``, ``7d``, ``30d``), ending today."""
    return today - timedelta(days=WINDOWS.get(name, 7) - 1), today


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q <= 1) of non-empty ``values``."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered)) - 1))]


@dataclass
class Quality:
    """Each criterion's daily pass rates over a window, and its trust."""

    first: date
    last: date
    pass_rates: dict[str, dict[str, Rate]]
    trust: dict[str, CalibrationRow]
    disagreements: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    """(item, criterion, the judge's verdict, the person's label, the labeller)."""


def quality(store: Store, judging: JudgingConfig, criteria: list[Criterion], win: str) -> Quality:
    """The judging view's figures over window ``win`` (no traffic scan)."""
    first, last = window(win, datetime.now(UTC).date())
    labels: list[Label] = LabelStore(store).query()
    verdicts = VerdictStore(store).for_items({lb.item_id for lb in labels})
    rows = calibrate(criteria, labels, verdicts, judging.calibration, kinds=default_kinds())
    return Quality(first, last, pass_rates(VerdictStore(store).day_counts(first, last)),
                   {r.criterion: r for r in rows}, disagreements(labels, verdicts))  # fmt: skip


def disagreements(
    labels: list[Label], verdicts: list[Verdict], limit: int = 200
) -> list[tuple[str, str, str, str, str]]:
    """Where a person's pass/fail label differs from the judge's verdict on the same
    criterion version, newest labels first (pure)."""
    judged = {(v.item_id, v.criterion, v.criterion_version): v.verdict for v in verdicts
              if v.verdict in ("pass", "fail")}  # fmt: skip
    out: list[tuple[str, str, str, str, str]] = []
    for lab in sorted(labels, key=lambda lb: lb.labelled_at, reverse=True):
        said = judged.get((lab.item_id, lab.criterion, lab.criterion_version))
        if said is not None and lab.label in ("pass", "fail") and said != lab.label:
            out.append((lab.item_id, lab.criterion, said, lab.label, lab.labeller))
    return out[:limit]


def overview(
    store: Store,
    stack: StackConfig,
    judging: JudgingConfig,
    criteria: list[Criterion],
    win: str,
    cache: DayCache | None = None,
) -> Overview:
    """Traffic, latency, cost, quality, feedback and the swap over window ``win`` (the
    days' figures reused for a minute through ``cache``)."""
    judged = quality(store, judging, criteria, win)
    first, last = judged.first, judged.last
    models: dict[str, ModelDay] = defaultdict(ModelDay)
    ttfts: dict[tuple[str, str], list[dict[int, int]]] = defaultdict(list)
    tpots: dict[tuple[str, str], list[dict[int, int]]] = defaultdict(list)
    spend: dict[str, float] = defaultdict(float)
    for g in traffic_days(store, first, last, cache=cache):
        if not g.requests:
            continue
        m = models[g.model]
        m.requests += g.requests
        if g.status >= 400:
            m.errors[g.status] = m.errors.get(g.status, 0) + g.requests
        m.prompt_tokens += g.prompt_tokens
        m.completion_tokens += g.completion_tokens
        m.cost_usd += g.cost_usd
        if g.key_name:
            spend[g.key_name] += g.cost_usd
        ttfts[(g.model, g.day)].append(g.ttft)
        tpots[(g.model, g.day)].append(g.tpot)
    for (model, day), hists in ttfts.items():
        _percentiles(merge_histograms(hists), models[model].ttft_p50_ms,
                     models[model].ttft_p99_ms, day)  # fmt: skip
    for (model, day), hists in tpots.items():
        _percentiles(merge_histograms(hists), models[model].tpot_p50_ms,
                     models[model].tpot_p99_ms, day)  # fmt: skip
    keys = sorted(spend.items(), key=lambda kv: -kv[1])[:10]
    return Overview(
        first=first,
        last=last,
        models=dict(models),
        top_keys=keys,
        pass_rates=judged.pass_rates,
        trust=judged.trust,
        feedback=positive_shares(feedback_between(store, first, last)),
        slo_ttft_ms={m.model_id: m.slo.ttft_s * 1000 for m in stack.models},
        slo_tpot_ms={m.model_id: m.slo.tpot_s * 1000 for m in stack.models},
        swap=_swap_state(store, stack),
    )


def _percentiles(hist: dict[int, int], p50: dict[str, float], p99: dict[str, float],
                 day: str) -> None:  # fmt: skip
    for q, into in ((0.5, p50), (0.99, p99)):
        value = histogram_percentile(hist, q)
        if value is not None:
            into[day] = value


def key_spend(
    store: Store, first: date, last: date, cache: DayCache | None = None
) -> dict[str, dict[str, float]]:
    """Each key's spend (USD) per day from ``first`` to ``last`` (pre-aggregated days)."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for g in traffic_days(store, first, last, cache=cache):
        if g.key_name:
            out[g.key_name][g.day] = out[g.key_name].get(g.day, 0.0) + g.cost_usd
    return dict(out)


def pass_rates(counts: Iterable[tuple[str, str, str, int]]) -> dict[str, dict[str, Rate]]:
    """Each criterion's pass rate per day from (criterion, day, verdict, n) counts, over
    binary verdicts (errors left out; pure)."""
    out: dict[str, dict[str, Rate]] = defaultdict(dict)
    for criterion, day, verdict, n in counts:
        if verdict not in ("pass", "fail"):
            continue
        rate = out[criterion].setdefault(day, Rate(0, 0))
        rate.n += n
        rate.passes += n if verdict == "pass" else 0
    return {c: dict(sorted(days.items())) for c, days in out.items()}


def positive_shares(feedback: list[Feedback]) -> dict[str, Rate]:
    """Each model's share of positive feedback (pure)."""
    out: dict[str, Rate] = defaultdict(lambda: Rate(0, 0))
    for fb in feedback:
        out[fb.model].n += 1
        out[fb.model].passes += fb.positive
    return dict(out)


def _swap_state(store: Store, stack: StackConfig) -> Any:
    if stack.swap is None:
        return None
    from serving.swap import latest_swap

    return latest_swap(store, stack.swap.production, stack.swap.candidate)


@dataclass
class RecordView:
    """A record's page: the record, its text as shown, and what was said about it."""

    record: TrafficRecord
    messages: list[tuple[str, str]]
    response: str | None
    hidden_because: str | None
    verdicts: list[Verdict]
    labels: list[Label]
    feedback: list[Feedback]
    twin: TrafficRecord | None

    def for_labeller(self, name: str) -> RecordView:
        """What a ``label`` key may see of a record it labelled: the record and its own
        labels; not the judge's verdicts, others' labels, feedback or the shadow twin
        (labelling stays blind, as on the labelling pages)."""
        own = [lb for lb in self.labels if lb.labeller == name]
        return replace(self, verdicts=[], labels=own, feedback=[], twin=None)


def shown_text(rec: TrafficRecord) -> str | None:
    """Why the record's text is not shown (``None``: it is shown)."""
    if rec.metadata_only:
        return "its key is metadata-only: no text was kept"
    if rec.text_removed == "erased":
        return "its text was erased"
    if rec.text_removed == "retention":
        return "its text was purged by retention"
    return None


def messages_of(request: dict[str, Any]) -> list[tuple[str, str]]:
    """The request as (role, text) turns: chat messages, or a completion's prompt."""
    out: list[tuple[str, str]] = []
    for m in request.get("messages") or []:
        if not isinstance(m, dict):
            continue
        content = m.get("content")
        if not isinstance(content, str):
            content = json.dumps(content, ensure_ascii=False)
        out.append((str(m.get("role", "?")), content))
    if "prompt" in request:
        prompt = request["prompt"]
        out.append(("prompt", prompt if isinstance(prompt, str) else json.dumps(prompt)))
    return out


def record_view(store: Store, request_id: str) -> RecordView | None:
    """The record ``request_id`` with its verdicts, labels, feedback and shadow twin."""
    found = store.traffic_by_ids([request_id])
    if not found:
        return None
    rec = found[0]
    hidden = shown_text(rec)
    twin_rows = store.fetch(
        select(tables.traffic.c.request_id).where(tables.traffic.c.twin_id == request_id)
    )
    twin_id = rec.twin_id or (twin_rows[0]["request_id"] if twin_rows else None)
    twin = store.traffic_by_ids([twin_id]) if twin_id else []
    verdicts = VerdictStore(store).for_items([request_id])
    labels = LabelStore(store).history(request_id)
    feedback = feedback_for(store, [request_id])
    if hidden:  # what may quote the text goes too: reasoning, notes, comments, the error
        rec = rec.model_copy(update={"error": None if rec.error is None else "(not shown)"})
        verdicts = [v.model_copy(update={"reasoning": None, "error": None}) for v in verdicts]
        labels = [lb.model_copy(update={"note": None, "criterion_note": None}) for lb in labels]
        feedback = [f.model_copy(update={"comment": None}) for f in feedback]
    return RecordView(
        record=rec,
        messages=[] if hidden else messages_of(rec.request),
        response=None if hidden else rec.response_text,
        hidden_because=hidden,
        verdicts=verdicts,
        labels=labels,
        feedback=feedback,
        twin=twin[0] if twin else None,
    )


def labelled_by(store: Store, request_id: str, labeller: str) -> bool:
    """True if ``labeller`` labelled the record (a ``label`` key may open it)."""
    return bool(LabelStore(store).for_items([request_id], labeller=labeller))
