"""Batch-job figures in the store, served as gauges; the gateway's SLO and length-bucket
metrics; latency objectives that must sit on histogram buckets."""

from __future__ import annotations

import pytest

from serving import ConfigError, Figure, figures_registry, parse_config
from serving._config import SloConfig
from serving.gateway._metrics import GatewayMetrics, length_bucket
from serving.store import Store


def _fig(name: str, value: float, **labels: str) -> Figure:
    return Figure(name=name, help="h", labels=labels, value=value)


def test_each_job_replaces_only_its_own_figures(store_url: str) -> None:
    store = Store(store_url)
    store.replace_figures("judge", [_fig("gavel_judge_pass_rate", 0.5, criterion="a")])
    store.replace_figures("loadtest", [_fig("gavel_loadtest_output_tokens_per_second", 40)])
    store.replace_figures(
        "judge",
        [_fig("gavel_judge_pass_rate", 0.75, criterion="a"),
         _fig("gavel_judge_pass_rate", 0.25, criterion="b")],
    )  # fmt: skip
    shown = {(f.name, tuple(f.labels.items())): f.value for f in store.figures()}
    assert shown[("gavel_judge_pass_rate", (("criterion", "a"),))] == 0.75
    assert shown[("gavel_judge_pass_rate", (("criterion", "b"),))] == 0.25
    assert shown[("gavel_loadtest_output_tokens_per_second", ())] == 40
    store.replace_figures("judge", [])
    store.replace_figures("loadtest", [])


def test_figures_render_as_gauges() -> None:
    from prometheus_client import generate_latest

    text = generate_latest(
        figures_registry([_fig("gavel_judge_pass_rate", 0.5, criterion="a", model="m")])
    ).decode()
    assert "# TYPE gavel_judge_pass_rate gauge" in text
    assert 'gavel_judge_pass_rate{criterion="a",model="m"} 0.5' in text


def test_figure_names_are_checked() -> None:
    with pytest.raises(ValueError):
        Figure(name="not gavel", help="h", value=1)


def test_length_buckets() -> None:
    assert [length_bucket(n) for n in (None, 1, 16, 17, 1024, 5000)] == [
        "none", "le16", "le16", "le64", "le1024", "gt1024",
    ]  # fmt: skip


def test_slo_counts_and_objectives_are_exported() -> None:
    m = GatewayMetrics()
    m.know_models(["app-model"], {"app-model": SloConfig(ttft_s=1, tpot_s=0.1, objective=0.95)})
    m.count_slo("app-model", ttft_s=0.5, tpot_s=0.2)
    text = m.render().decode()
    assert 'gavel_slo_requests_total{model="app-model",result="met",slo="ttft"} 1.0' in text
    assert 'gavel_slo_requests_total{model="app-model",result="missed",slo="tpot"} 1.0' in text
    assert 'gavel_slo_objective{model="app-model",slo="ttft"} 0.95' in text
    assert 'gavel_ttft_seconds_bucket{le="1.0",model="app-model",output_len="le64"} 0.0' in text
    assert "gavel_store_up 1.0" in text


def test_an_slo_target_off_the_buckets_names_the_field() -> None:
    data = {"models": [{"role": "app", "model_id": "a", "source": {"path": "m"},
                        "slo": {"ttft_s": 0.3}}]}  # fmt: skip
    with pytest.raises(ConfigError) as err:
        parse_config(data, source="x.yaml")
    assert "x.yaml: models[0].slo" in str(err.value) and "ttft_s = 0.3" in str(err.value)
