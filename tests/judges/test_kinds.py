"""Criterion kinds are plugins: a new kind is one module, registered explicitly, and runs
through the daily job and the report; the built-in kinds are listed by the public API."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

import judges
from judges import JudgingConfig, KindRegistry, VerdictStore, default_kinds, load_criteria
from judges._daily import build_items, run_daily
from serving import ConfigError, TrafficRecord, load_config
from serving.store import Store
from tests.conftest import ROOT
from tests.judges import word_limit_kind

DAY = date(2024, 2, 29)


def _record(i: int, text: str, source: str = "production") -> TrafficRecord:
    return TrafficRecord(
        request_id=f"req-kind-{source}-{i}",
        ts=datetime(DAY.year, DAY.month, DAY.day, 9, tzinfo=UTC) + timedelta(minutes=i),
        key_name="app-team",
        model="app-model",
        role="app",
        endpoint="chat",
        stream=False,
        request={"messages": [{"role": "user", "content": f"Say something {i}"}]},
        response_text=text,
        status=200,
        source=source,  # type: ignore[arg-type]
    )


def _criteria_dir(tmp: Path) -> Path:
    d = tmp / "criteria"
    d.mkdir()
    crit = {"name": "short_enough", "kind": "word_limit", "rubric": "At most 3 words, please."}
    (d / "c.yaml").write_text(yaml.safe_dump({"criteria": [crit]}))
    return d


def test_public_api_lists_the_builtin_kinds_and_importing_registers_nothing() -> None:
    assert default_kinds().names() == ["binary", "pairwise", "reference"]
    assert "word_limit" not in default_kinds().names()  # importing the module did nothing
    assert default_kinds() is not default_kinds()  # a new registry each time, no singleton
    assert {"KindRegistry", "CriterionKind", "default_kinds", "judge_items"} <= set(judges.__all__)


def test_an_unregistered_kind_is_a_config_error_naming_file_and_field(tmp_path: Path) -> None:
    d = _criteria_dir(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_criteria(d)
    assert str(err.value).startswith(f"{d / 'c.yaml'}: criteria.0.kind")
    assert "unknown kind 'word_limit'" in str(err.value)


def test_a_new_kind_from_one_module_runs_through_the_daily_job_and_the_report(
    tmp_path: Path,
) -> None:
    kinds: KindRegistry = default_kinds()
    kinds.register(word_limit_kind.KIND)
    criteria = load_criteria(_criteria_dir(tmp_path), kinds)
    store = Store(f"sqlite:///{tmp_path / 'k.db'}")
    texts = ["Yes.", "Paris it is.", "This answer is much too long.", "Four words right here."]
    store.insert_traffic([_record(i, t) for i, t in enumerate(texts)])
    store.insert_traffic([_record(9, "judge traffic, never sampled", source="judge")])
    stack = load_config(ROOT / "config/cpu.yaml")
    judging = JudgingConfig(
        criteria_dir=str(tmp_path / "criteria"),
        sampling={"rate": 1.0, "max_per_stratum": 100},  # type: ignore[arg-type]
        report_dir=str(tmp_path / "reports"),
    )
    res = run_daily(
        stack, judging, criteria, store, day=DAY, api_key="unused", use_ray=False,
        kinds=kinds, log=lambda _m: None,
    )  # fmt: skip
    assert res.sampled == 4 and res.judged_now == 4  # the judge's own call was not sampled
    (row,) = res.rates
    assert (row.criterion, row.passes, row.fails) == ("short_enough", 2, 2)
    verdicts = VerdictStore(store).for_run(DAY.isoformat())
    assert {v.judge for v in verdicts} == {"word_count"} and all(
        v.run_id == "2024-02-29" for v in verdicts
    )
    assert res.report is not None and res.report.exists()
    summary = (res.report.parent / "summary.md").read_text()
    assert "short_enough" in summary and "50.0%" in summary
    assert 'criterion="short_enough"' in (res.report.parent / "metrics.prom").read_text()


def test_judge_and_eval_traffic_is_never_sampled(tmp_path: Path) -> None:
    records = [_record(i, "ok") for i in range(3)] + [
        _record(10, "judge", source="judge"),
        _record(11, "eval", source="eval"),
    ]
    stack = load_config(ROOT / "config/cpu.yaml")
    crit = judges.Criterion(name="c", kind="binary", rubric="Is it a fine answer at all?")
    judging = JudgingConfig(sampling={"rate": 1.0})  # type: ignore[arg-type]
    items = build_items(records, [crit], stack, judging, day=DAY)
    assert sorted(i.item_id for i in items) == [f"req-kind-production-{i}" for i in range(3)]
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.insert_traffic(records)
    assert len(store.traffic_for_day(DAY)) == 5
    assert len(store.traffic_for_day(DAY, production_only=True)) == 3
