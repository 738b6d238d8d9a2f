"""Pure judging statistics and sampling."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from judges._aggregate import pair_rows, rate_rows
from judges._catalog import load_criteria
from judges._criteria import Criterion
from judges._sampling import SamplingConfig, sample, stratum_size
from judges._stats import drop_p_value, position_consistency, wilson
from judges._wire import Verdict
from serving import ConfigError
from serving._wire import TrafficRecord

ROOT = Path(__file__).resolve().parents[2]


def test_wilson_matches_known_values() -> None:
    lo, hi = wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)
    lo, hi = wilson(10, 10)
    assert hi == pytest.approx(1.0) and lo == pytest.approx(0.7225, abs=1e-4)


def test_drop_test_flags_a_significant_drop_only() -> None:
    p = drop_p_value(30, 100, 80, 100)
    assert p is not None and p < 0.001
    q = drop_p_value(78, 100, 80, 100)
    assert q is not None and q > 0.3
    assert drop_p_value(0, 0, 5, 10) is None


def test_position_consistency() -> None:
    assert position_consistency([("A", "A"), ("A", "B"), ("tie", "tie"), ("B", "B")]) == 0.75
    assert position_consistency([]) is None


def rec(i: int, model: str, key: str = "k", tokens: int = 10) -> TrafficRecord:
    return TrafficRecord(
        request_id=f"r{i}-{model}",
        ts=datetime.now(UTC),
        key_name=key,
        model=model,
        endpoint="chat",
        stream=False,
        request={"messages": []},
        response_text="x",
        status=200,
        completion_tokens=tokens,
    )


def test_stratified_sample_sizes_match_the_rate_per_stratum() -> None:
    records = [rec(i, "app-model") for i in range(100)] + [rec(i, "judge-model") for i in range(30)]
    cfg = SamplingConfig(rate=0.25, max_per_stratum=None)
    got = sample(records, cfg, seed="2026-11-21")
    assert {k: len(v) for k, v in got.items()} == {("app-model",): 25, ("judge-model",): 8}
    assert stratum_size(3, cfg) == 1  # at least one per non-empty stratum
    assert stratum_size(1000, SamplingConfig(rate=0.5, max_per_stratum=40)) == 40


def test_sample_by_model_and_key_and_length() -> None:
    records = [rec(i, "m", key=f"k{i % 2}", tokens=10 if i < 40 else 300) for i in range(80)]
    cfg = SamplingConfig(rate=0.1, max_per_stratum=None, stratify_by=("model", "key", "length"))
    got = sample(records, cfg, seed="d")
    assert {k: len(v) for k, v in got.items()} == {
        ("m", "k0", "<=32"): 2,
        ("m", "k1", "<=32"): 2,
        ("m", "k0", "<=512"): 2,
        ("m", "k1", "<=512"): 2,
    }


def test_sample_is_seeded_by_the_date() -> None:
    records = [rec(i, "m") for i in range(200)]
    cfg = SamplingConfig(rate=0.1)
    a = [r.request_id for r in sample(records, cfg, seed="2026-11-21")[("m",)]]
    b = [r.request_id for r in sample(list(reversed(records)), cfg, seed="2026-11-21")[("m",)]]
    c = [r.request_id for r in sample(records, cfg, seed="2026-11-22")[("m",)]]
    assert a == b and a != c


def verdict(v: str, model: str = "m", crit: str = "c", day: str = "2026-11-21") -> Verdict:
    return Verdict(
        item_id=uuid.uuid4().hex,
        criterion=crit,
        criterion_version="v1",
        kind="binary",
        judge="binary_rubric",
        judge_version="1",
        judge_model="judge-model",
        judge_args={},
        model=model,
        day=day,
        verdict=v,
        created_at=datetime.now(UTC),  # type: ignore[arg-type]
    )


def test_errors_are_excluded_from_pass_rates() -> None:
    today = [verdict("pass")] * 3 + [verdict("fail")] + [verdict("error")] * 5
    (row,) = rate_rows(today, [])
    assert (row.passes, row.fails, row.errors) == (3, 1, 5)
    assert row.pass_rate == 0.75


def test_drop_against_trailing_days_is_flagged() -> None:
    today = [verdict("pass")] * 10 + [verdict("fail")] * 30
    trailing = [verdict("pass", day="2026-11-20")] * 90 + [verdict("fail", day="2026-11-20")] * 10
    (row,) = rate_rows(today, trailing)
    assert row.dropped and row.trailing_rate == 0.9
    (same,) = rate_rows(trailing, trailing)
    assert not same.dropped


def test_pairwise_rows() -> None:
    base = verdict("A").model_copy(update={"kind": "pairwise", "model": "a|b"})
    vs = [
        base.model_copy(update={"verdict": "A", "order_winners": ["A", "A"]}),
        base.model_copy(update={"verdict": "tie", "order_winners": ["A", "B"]}),
        base.model_copy(update={"verdict": "error", "order_winners": None}),
    ]
    (row,) = pair_rows(vs)
    assert (row.wins_a, row.wins_b, row.ties, row.errors) == (1, 0, 1, 1)
    assert row.position_consistency == 0.5


def test_shipped_criteria_load_and_are_versioned_by_content() -> None:
    crits = load_criteria(ROOT / "judges/criteria")
    kinds = Counter(c.kind for c in crits)
    assert kinds["binary"] >= 4 and kinds["reference"] == 1 and kinds["pairwise"] == 1
    c = crits[0]
    changed = Criterion.model_validate({**c.model_dump(), "rubric": c.rubric + " Be strict."})
    assert changed.version != c.version
    renamed_desc = Criterion.model_validate({**c.model_dump(), "description": "other"})
    assert renamed_desc.version == c.version


def test_bad_criteria_file_names_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(
        "criteria:\n  - name: ok_name\n    kind: ternary\n    rubric: long enough rubric text\n"
    )
    with pytest.raises(ConfigError, match=r"x.yaml: criteria.0.kind"):
        load_criteria(tmp_path)


def test_date_type() -> None:
    assert date.fromisoformat("2026-11-21")
