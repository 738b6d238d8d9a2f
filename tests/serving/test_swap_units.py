"""A model swap's config and its decisions at the gateway (issue 20): arms, shadow
sampling and slots, and a variant's body."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from serving import ConfigError, parse_config
from serving._swap_config import SwapConfig, VariantConfig
from serving._wire import ApiKey
from serving.gateway._swap import SwapRouter

MODELS = [
    {"role": "app", "model_id": "app-model", "source": {"simulate": "llama-3.1-8b-h100"}},
    {"role": "judge", "model_id": "judge-model", "source": {"simulate": "llama-3.1-8b-l4"}},
]
TERSE = {"model_id": "app-terse", "base": "app-model", "system_prompt": "One word."}


def _key(name: str) -> ApiKey:
    return ApiKey(name=name, key_hash="0" * 64, scopes=["infer"], created_at=datetime.now(UTC))


def test_config_checks_the_swap_models() -> None:
    ok = parse_config(
        {
            "models": MODELS,
            "swap": {
                "production": "app-model",
                "candidate": "app-terse",
                "variant": TERSE,
                "shadow_rate": 0.5,
            },
        }
    )
    assert ok.swap is not None and ok.swap.variant is not None
    bad = [
        ({"production": "nope", "candidate": "judge-model"}, "swap.production"),
        ({"production": "app-model", "candidate": "other"}, "swap.candidate"),
        ({"production": "app-model", "candidate": "app-model"}, "production model"),
        (
            {
                "production": "app-model",
                "candidate": "judge-model",
                "variant": {**TERSE, "model_id": "other"},
            },
            "not the candidate",
        ),
        (
            {
                "production": "app-model",
                "candidate": "x",
                "variant": {**TERSE, "model_id": "x", "base": "gone"},
            },
            "swap.variant.base",
        ),
        (
            {
                "production": "app-model",
                "candidate": "app-terse",
                "variant": TERSE,
                "shadow_rate": 1.5,
            },
            "shadow_rate",
        ),
    ]
    for swap, words in bad:
        with pytest.raises(ConfigError, match=words):
            parse_config({"models": MODELS, "swap": swap}, source="stack.yaml")
    with pytest.raises(ValueError, match="at least one"):
        VariantConfig(model_id="a", base="b")


def test_no_swap_changes_nothing() -> None:
    r = SwapRouter(None)
    assert r.arm("app-model", None) is None and not r.wants_shadow(None)
    assert r.engine_body({"model": "app-model", "x": 1}, "app-model") == {
        "model": "app-model", "x": 1,
    }  # fmt: skip


def test_canary_share_per_request_and_sticky_per_key() -> None:
    swap = SwapConfig(production="app-model", candidate="judge-model", canary_weight=0.3)
    r = SwapRouter(swap, rng=random.Random(0))
    arms = [r.arm("app-model", None) for _ in range(4000)]
    assert 0.27 < arms.count("candidate") / 4000 < 0.33
    assert r.arm("judge-model", None) is None  # only the production id is swapped
    sticky = SwapRouter(swap.model_copy(update={"sticky": True}))
    for name in ("a", "b", "c", "d", "e"):
        assert len({sticky.arm("app-model", _key(name)) for _ in range(50)}) == 1
    keyed = [sticky.arm("app-model", _key(f"k{i}")) for i in range(2000)]
    assert 0.26 < keyed.count("candidate") / 2000 < 0.34
    promoted = SwapRouter(swap.model_copy(update={"promoted": True}))
    assert promoted.arm("app-model", None) == "candidate"
    assert promoted.served("app-model", "candidate") == "judge-model"


def test_shadow_is_sampled_on_production_only_and_dropped_beyond_its_slots() -> None:
    swap = SwapConfig(production="app-model", candidate="judge-model", shadow_rate=0.5,
                      shadow_max_in_flight=2)  # fmt: skip
    r = SwapRouter(swap, rng=random.Random(1))
    shadows = [r.wants_shadow("production") for _ in range(2000)]
    assert 0.46 < sum(shadows) / 2000 < 0.54
    assert not any(r.wants_shadow("candidate") for _ in range(100))
    assert r.take_shadow_slot() and r.take_shadow_slot() and not r.take_shadow_slot()
    r.give_shadow_slot()
    assert r.take_shadow_slot()


def test_a_variant_body_goes_to_its_base_with_its_defaults() -> None:
    variant = VariantConfig(model_id="app-terse", base="app-model", system_prompt="One word.",
                            max_tokens=8, temperature=0)  # fmt: skip
    swap = SwapConfig(production="app-model", candidate="app-terse", variant=variant)
    r = SwapRouter(swap)
    body = {"model": "app-model", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 100, "temperature": 0.9}  # fmt: skip
    out = r.engine_body(body, "app-terse")
    assert out["model"] == "app-model"
    assert out["messages"][0] == {"role": "system", "content": "One word."}
    assert out["messages"][1:] == body["messages"]
    assert (out["max_tokens"], out["temperature"]) == (8, 0)
    assert r.engine_body({**body, "max_tokens": 4}, "app-terse")["max_tokens"] == 4
    assert body["messages"] == [{"role": "user", "content": "hi"}]  # the client's body is untouched
