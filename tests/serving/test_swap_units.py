"""A model swap's config and its decisions at the gateway (issue 20): arms, shadow
sampling and slots, and a variant's body."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from serving import ConfigError, parse_config
from serving._wire import ApiKey
from serving.swap._config import SwapConfig, VariantConfig
from serving.swap._router import SwapRouter
from tests.conftest import gavel_main

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
    floor = r.engine_body({**body, "min_tokens": 20}, "app-terse")  # a load test's floor
    assert (floor["max_tokens"], floor["min_tokens"]) == (8, 8)
    assert body["messages"] == [{"role": "user", "content": "hi"}]  # the client's body is untouched


def test_changes_are_recorded_and_a_replica_applies_the_latest(tmp_path: Path) -> None:
    from serving.gateway._metrics import GatewayMetrics
    from serving.store import Store
    from serving.swap import latest_swap, record_swap, swap_history
    from serving.swap._state import SwapStateWatcher

    store = Store(f"sqlite:///{tmp_path / 'g.db'}")
    swap = SwapConfig(production="app-model", candidate="judge-model", shadow_rate=0.2)
    metrics = GatewayMetrics()
    router = SwapRouter(swap, rng=random.Random(0))
    watcher = SwapStateWatcher(router, store, metrics)

    def share(kind: str) -> float | None:
        labels = {"production": "app-model", "candidate": "judge-model", "kind": kind}
        return metrics.registry.get_sample_value("gavel_swap_share", labels)

    assert share("shadow") == 0.2 and latest_swap(store, "app-model", "judge-model") is None
    asyncio.run(watcher.refresh())  # nothing recorded: the config's state holds
    assert router.swap is not None and router.swap.shadow_rate == 0.2
    record_swap(store, "app-model", "judge-model", "set", shadow_rate=0.5, canary_weight=0.1,
                promoted=False, by="ana")  # fmt: skip
    last = record_swap(store, "app-model", "judge-model", "promote", shadow_rate=0.0,
                       canary_weight=1.0, promoted=True, by="bo")  # fmt: skip
    record_swap(store, "app-model", "other", "rollback", shadow_rate=0, canary_weight=0,
                promoted=False, by="cy")  # another swap's change is not this one's  # fmt: skip
    asyncio.run(watcher.refresh())
    assert router.arm("app-model", None) == "candidate"
    assert (share("canary"), share("shadow")) == (1.0, 0.0)
    assert metrics.registry.get_sample_value("gavel_swap_state_id") == last.id
    history = swap_history(store, "app-model", "judge-model")
    assert [(e.action, e.by) for e in history] == [("set", "ana"), ("promote", "bo")]
    store.close()


def test_swap_commands_need_a_swap_and_something_to_set(tmp_path: Path) -> None:
    cfg = {"models": MODELS[:1], "gateway": {"store": {"url": f"sqlite:///{tmp_path / 'g.db'}"}},
           "http": {"port": 18999}}  # fmt: skip
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump(cfg))
    swapped = tmp_path / "swap.yaml"
    swap = {"production": "app-model", "candidate": "app-terse", "variant": TERSE}
    swapped.write_text(yaml.safe_dump({**cfg, "swap": swap}))
    gavel = str(Path(sys.executable).parent / "gavel")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return gavel_main(*args)

    # The swap group's one subprocess test: the console script itself.
    none = subprocess.run([gavel, "swap", "promote", "--config", str(plain)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert none.returncode == 2 and "no swap block" in none.stderr
    empty = run("swap", "set", "--config", str(swapped))
    assert empty.returncode == 2 and "--shadow R and/or --canary W" in empty.stderr
    bad = run("swap", "set", "--canary", "2", "--config", str(swapped))
    assert bad.returncode == 2 and "share from 0 to 1" in bad.stderr
    down = run("swap", "set", "--canary", "0.25", "--by", "ana", "--config", str(swapped))
    assert down.returncode == 0 and "applies the change when it starts" in down.stdout
    status = run("swap", "status", "--config", str(swapped))
    assert "shadow 0, canary 0.25" in status.stdout and "set      by ana" in status.stdout
    for r in (none, empty, bad, down, status):
        assert "Traceback" not in r.stderr


def test_a_shadow_is_recorded_once_with_its_twin_and_dropped_beyond_its_slots() -> None:
    """The shadow runner at its boundary: a fake engine handler in place of Ray's."""
    from serving.gateway._context import RequestContext
    from serving.gateway._metrics import GatewayMetrics
    from serving.swap._shadow import ShadowRunner

    swap = SwapConfig.model_validate({"production": "app-model", "candidate": "app-terse",
                                      "variant": TERSE, "shadow_max_in_flight": 1})  # fmt: skip
    metrics = GatewayMetrics()
    recorded: list[RequestContext] = []
    sent: list[object] = []

    class Resp:
        status_code = 200
        body = (
            b'{"choices": [{"message": {"content": "Blue."}}], "usage": {"completion_tokens": 2}}'
        )

    async def handler(request: object, raw: object) -> Resp:
        sent.append(request)
        await asyncio.sleep(0.05)
        return Resp()

    async def go() -> None:
        runner = ShadowRunner(
            SwapRouter(swap),
            metrics,
            lambda endpoint, **f: RequestContext(endpoint, on_end=recorded.append, **f),
        )
        body = {"model": "app-model", "messages": [{"role": "user", "content": "hi"}],
                "stream": True, "request_id": "x"}  # fmt: skip
        twin = RequestContext("chat", request_id="prod-1", model="app-model", role="app",
                              stream=True, body=body, handler=handler)  # fmt: skip
        runner.send(twin)
        runner.send(twin)  # the one slot is taken: dropped
        await runner.drain()

    asyncio.run(go())
    assert len(recorded) == 1
    shadow = recorded[0]
    assert (shadow.source, shadow.arm, shadow.twin_id, shadow.model, shadow.key) == (
        "shadow", "candidate", "prod-1", "app-terse", None,
    )  # fmt: skip
    assert "".join(shadow.text) == "Blue." and shadow.completion_tokens == 2
    assert sent[0].messages[0]["content"] == "One word."  # type: ignore[attr-defined]
    assert not sent[0].stream  # type: ignore[attr-defined]
    dropped = metrics.registry.get_sample_value(
        "gavel_shadow_dropped_requests_total", {"model": "app-terse"}
    )
    assert dropped == 1
