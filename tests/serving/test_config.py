"""Config models: the shipped configs validate, bad ones fail naming file, field and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving import ConfigError, StackConfig, load_config, parse_config, to_llm_config

ROOT = Path(__file__).resolve().parents[2]


def _minimal(**model: object) -> dict[str, object]:
    base: dict[str, object] = {
        "role": "app",
        "model_id": "app-model",
        "source": {"path": "models/x"},
    }
    base.update(model)
    return {"models": [base]}


def test_cpu_config_is_the_embedded_default() -> None:
    cfg = load_config(ROOT / "config/cpu.yaml")
    assert [m.model_id for m in cfg.models] == ["app-model", "judge-model"]
    assert cfg.model("judge").engine.dtype == "float32"
    assert cfg.http.base_url == "http://127.0.0.1:8000/v1"


def test_gpu_config_is_a_realistic_single_node_profile() -> None:
    cfg = load_config(ROOT / "config/gpu.yaml")
    app, judge = cfg.model("app"), cfg.model("judge")
    assert app.source.hub is not None and "8B" in app.source.hub
    assert app.resources.gpus == 1
    assert app.engine.enable_prefix_caching is True
    assert 0 < judge.resources.gpus <= 1
    assert judge.source.hub is not None and judge.source.hub != app.source.hub
    # Two models sharing a GPU must leave each other memory.
    assert (judge.engine.gpu_memory_utilization or 1) <= 0.5


def test_gpu_config_translates_to_ray_llm_configs() -> None:
    cfg = load_config(ROOT / "config/gpu.yaml")
    llm = to_llm_config(cfg.model("judge"), base_dir=ROOT)
    assert llm.model_id == "judge-model"
    assert llm.placement_group_config == {"bundles": [{"CPU": 2, "GPU": 0.5}]}
    assert llm.engine_kwargs["enable_prefix_caching"] is True
    assert llm.accelerator_type == "L4"


def test_gpu_config_schedules_by_priority_and_the_gateway_knows_which_models() -> None:
    """Issue 32: background traffic yields inside the GPU engines; the gateway sends a
    priority to those models only (a priority at a first-come engine is a 400)."""
    from serving._builder import gateway_settings

    cfg = load_config(ROOT / "config/gpu.yaml")
    for role in ("app", "judge"):
        assert (
            to_llm_config(cfg.model(role), base_dir=ROOT).engine_kwargs["scheduling_policy"]
            == "priority"
        )
    settings = gateway_settings(cfg, base_dir=ROOT)
    assert set(settings["priority_models"]) == {"app-model", "judge-model"}
    cpu = gateway_settings(load_config(ROOT / "config/cpu.yaml"), base_dir=ROOT)
    assert cpu["priority_models"] == []


def test_a_simulated_engine_takes_the_max_num_seqs_it_is_given() -> None:
    from serving.sim.engine import PROFILE_KEY

    data = _minimal(source={"simulate": "llama-3.1-8b-h100"}, engine={"max_num_seqs": 8})
    llm = to_llm_config(parse_config(data).model("app"), base_dir=ROOT)
    assert llm.experimental_configs[PROFILE_KEY]["max_num_seqs"] == 8


def test_cpu_config_sets_stream_batching_and_env() -> None:
    cfg = load_config(ROOT / "config/cpu.yaml")
    llm = to_llm_config(cfg.model("app"), base_dir=ROOT)
    assert llm.experimental_configs == {"stream_batching_interval_ms": 0}
    assert llm.runtime_env == {"env_vars": {"VLLM_CPU_KVCACHE_SPACE": "1", "OMP_NUM_THREADS": "2"}}
    assert llm.engine_kwargs == {"dtype": "float32", "enforce_eager": True, "max_model_len": 2048}
    src = llm.model_loading_config.model_source
    assert src == str(ROOT / "models/SmolLM2-135M-Instruct")


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        ({**_minimal(), "colour": "red"}, "colour", "unknown field"),
        (
            _minimal(deployment={"num_replicas": -1}),
            "models[0].deployment.num_replicas = -1",
            "greater than or equal to 1",
        ),
        (_minimal(engine={"dtyp": "float32"}), "models[0].engine.dtyp", "unknown field"),
        (_minimal(source={"path": "a", "hub": "b"}), "models[0].source", "exactly one"),
        (_minimal(resources={"gpus": -0.5}), "models[0].resources.gpus = -0.5", "greater"),
        (_minimal(role="grader"), "models[0].role = 'grader'", "'app' or 'judge'"),
        (
            _minimal(
                engine={"max_num_seqs": 8, "extra": {"scheduling_policy": "priority"}},
                deployment={"max_ongoing_requests": 8},
            ),
            "models[0]",
            "must exceed engine.max_num_seqs (8) under scheduling_policy: priority",
        ),
        (
            _minimal(deployment={"autoscaling": {"min_replicas": 3, "max_replicas": 1}}),
            "models[0].deployment.autoscaling",
            "exceeds max_replicas",
        ),
        ({"models": []}, "models = []", "at least 1"),
        (
            {**_minimal(), "gateway": {"store": {"retention": {"judge": {"text_days": 0}}}}},
            "gateway.store.retention.judge.text_days = 0",
            "greater than or equal to 1",
        ),
        (
            {
                **_minimal(),
                "gateway": {
                    "store": {"retention": {"production": {"text_days": 40, "row_days": 30}}}
                },
            },
            "gateway.store.retention.production",
            "text_days (40) is longer than row_days (30)",
        ),
        (
            {**_minimal(), "gateway": {"store": {"retention": {"prod": {"row_days": 3}}}}},
            "gateway.store.retention.prod",
            "unknown field",
        ),
    ],
)
def test_errors_name_file_field_and_value(
    data: dict[str, object], field: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="stack.yaml")
    msg = str(info.value)
    assert msg.startswith(f"stack.yaml: {field}"), msg
    assert fragment in msg
    assert "\n" not in msg


def test_duplicate_roles_are_rejected() -> None:
    data = {"models": [_minimal()["models"][0], _minimal(model_id="other")["models"][0]]}  # type: ignore[index]
    with pytest.raises(ConfigError, match="duplicate role: app"):
        parse_config(data, source="s.yaml")


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - role: app\n   model_id: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+: not valid YAML"):
        load_config(bad)


def test_price_per_node_hour_is_derived_per_token() -> None:
    cfg = StackConfig.model_validate(
        _minimal(price={"node_hour_usd": 3.6, "assumed_output_tok_s": 1000})
    )
    assert cfg.model("app").price.per_mtok() == (0.0, pytest.approx(1.0))
