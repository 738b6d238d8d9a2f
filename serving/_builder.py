"""Builders: a :class:`StackConfig` in, a Ray Serve application out.

Serving is ``ray.serve.llm``: one ``LLMConfig`` per model and its OpenAI app
(``build_openai_app``). Gavel only translates its config and, through the
ingress class, extends that app.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from serving._config import ModelConfig, StackConfig

if TYPE_CHECKING:
    from ray.serve.deployment import Application
    from ray.serve.llm import LLMConfig


class MissingModelError(Exception):
    """A model's local source folder does not exist."""


def resolve_source(model: ModelConfig, *, base_dir: Path) -> str:
    """The ``model_source`` for vLLM: an absolute local path, or the hub id as given."""
    if model.source.path is None:
        return str(model.source.hub)
    p = Path(model.source.path)
    return str(p if p.is_absolute() else (base_dir / p).resolve())


def check_sources(config: StackConfig, *, base_dir: Path, config_file: str) -> None:
    """Raise :class:`MissingModelError` naming the file and field of a missing model folder."""
    for i, m in enumerate(config.models):
        if m.source.path is None:
            continue
        folder = Path(resolve_source(m, base_dir=base_dir))
        if not (folder / "config.json").is_file():
            raise MissingModelError(
                f"{config_file}: models[{i}].source.path = {m.source.path!r}: "
                f"no model folder at {folder}; run `gavel model prepare`"
            )


def to_llm_config(model: ModelConfig, *, base_dir: Path) -> LLMConfig:
    """Translate one Gavel model config into a ``ray.serve.llm.LLMConfig``."""
    from ray.serve.llm import LLMConfig

    experimental: dict[str, Any] = {}
    if model.stream_batching_interval_ms is not None:
        experimental["stream_batching_interval_ms"] = model.stream_batching_interval_ms
    kwargs: dict[str, Any] = {
        "model_loading_config": {
            "model_id": model.model_id,
            "model_source": resolve_source(model, base_dir=base_dir),
        },
        "engine_kwargs": model.engine.to_engine_kwargs(),
        "deployment_config": model.deployment.to_serve_config(),
        "placement_group_config": {"bundles": [model.resources.bundle()]},
        "experimental_configs": experimental,
    }
    if model.resources.accelerator_type:
        kwargs["accelerator_type"] = model.resources.accelerator_type
    if model.env:
        kwargs["runtime_env"] = {"env_vars": dict(model.env)}
    return LLMConfig(**kwargs)


def build_app(
    config: StackConfig,
    *,
    base_dir: Path | None = None,
    ingress_cls: type | None = None,
    ingress_kwargs: dict[str, Any] | None = None,
) -> Application:
    """Build the Serve application that serves every model of ``config``.

    Args:
        config: The validated stack config.
        base_dir: Folder that relative model paths are resolved against (default: cwd).
        ingress_cls: An ``OpenAiIngress`` subclass (default: Gavel's own).
        ingress_kwargs: Extra keyword arguments bound to the ingress constructor.
    """
    from ray.serve.llm import build_openai_app

    from serving._ingress import GavelIngress

    base = (base_dir or Path.cwd()).resolve()
    args: dict[str, Any] = {
        "llm_configs": [to_llm_config(m, base_dir=base) for m in config.models],
    }
    args["ingress_cls_config"] = {
        "ingress_cls": ingress_cls or GavelIngress,
        "ingress_extra_kwargs": dict(ingress_kwargs or {}),
    }
    return build_openai_app(args)
