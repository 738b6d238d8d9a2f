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
    """The ``model_source`` for vLLM: an absolute local path, or the hub id as given (a
    simulated engine's: ``sim:PROFILE``)."""
    if model.source.path is None:
        return model.source.uri
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
                f"{config_file}: models[{i}].source.path: no model folder at {folder} "
                "(a relative path is relative to the config file's folder); "
                "run `gavel model prepare`"
            )


def vllm_argument_names() -> frozenset[str] | None:
    """The names vLLM's engine (``AsyncEngineArgs``) and OpenAI frontend (``FrontendArgs``)
    take, read from the installed vLLM; ``None`` when vLLM is not installed here."""
    import dataclasses
    import importlib
    import os

    names: set[str] = set()
    # vLLM's import chatter (a Triton warning on CPU) stays out of the CLI's one-line
    # output: file descriptor 2 points at /dev/null during the import only.
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        for module, cls in (
            ("vllm.engine.arg_utils", "AsyncEngineArgs"),
            ("vllm.entrypoints.launchers.cli_args", "FrontendArgs"),
            ("vllm.entrypoints.openai.cli_args", "FrontendArgs"),
        ):
            try:
                found = getattr(importlib.import_module(module), cls)
            except (ImportError, AttributeError):
                continue
            names |= {f.name for f in dataclasses.fields(found)}
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return frozenset(names) if names else None


def check_engine_args(config: StackConfig, *, config_file: str) -> list[str]:
    """One line per ``engine.extra`` name that the installed vLLM does not take (empty
    when all are known, or when vLLM is not installed to check against)."""
    if not any(m.engine.extra for m in config.models):
        return []
    known = vllm_argument_names()
    if known is None:
        return []
    return [
        f"{config_file}: models[{i}].engine.extra.{name}: not an argument of the installed "
        f"vLLM's EngineArgs"
        for i, m in enumerate(config.models)
        for name in m.engine.extra
        if name not in known
    ]


def to_llm_config(model: ModelConfig, *, base_dir: Path) -> LLMConfig:
    """Translate one Gavel model config into a ``ray.serve.llm.LLMConfig``."""
    from ray.serve.llm import LLMConfig

    experimental: dict[str, Any] = {}
    if model.stream_batching_interval_ms is not None:
        experimental["stream_batching_interval_ms"] = model.stream_batching_interval_ms
    if model.source.simulate is not None:
        from serving.sim import PROFILES
        from serving.sim.engine import PROFILE_KEY

        profile = PROFILES[model.source.simulate]
        if model.engine.max_num_seqs is not None:  # the engine argument it models
            profile = profile.model_copy(update={"max_num_seqs": model.engine.max_num_seqs})
        experimental[PROFILE_KEY] = profile.model_dump(mode="json")
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


def engine_kwargs(model: ModelConfig) -> dict[str, Any]:
    """Extra arguments of a model's ``LLMServer``: the simulated engine's class, injected
    through ``engine_cls``, when the model is simulated; none for vLLM."""
    if model.source.simulate is None:
        return {}
    from serving.sim.engine import SimEngine

    return {"engine_cls": SimEngine}


def gateway_hooks(config: StackConfig) -> tuple[str, ...]:
    """The request lifecycle's hooks, in their declared order (see
    :mod:`serving.gateway._hooks`): counted first and ended last, then the key, the body,
    the scope, the swap's arm, Gavel's headers, the background slot, the engine's
    request, admission (limits and budgets), capture and the shadow; with tracing on, the
    request's trace right after the metrics (it times every other hook). A hook whose
    feature is off is not in the chain."""
    gw = config.gateway
    hooks = ["metrics"]
    hooks += ["trace"] if gw.tracing.enabled else []
    hooks += ["auth"] if gw.auth.enabled else []
    hooks += ["body"]
    hooks += ["scope"] if gw.auth.enabled else []
    hooks += ["swap"] if config.swap is not None else []
    hooks += ["headers", "priority", "engine_request"]
    hooks += ["admission"] if gw.auth.enabled else []
    hooks += ["capture"] if gw.capture.enabled else []
    hooks += ["shadow"] if config.swap is not None else []
    return tuple(hooks)


def gateway_settings(config: StackConfig, *, base_dir: Path) -> dict[str, Any]:
    """The gateway's resolved settings, as bound to the ingress (absolute paths, prices)."""
    from serving.gateway import GatewaySettings
    from serving.store import resolve_url

    gw = config.gateway
    spool = Path(gw.capture.spool_dir)
    # A swap's variant is asked for by its own id and served by its base's engine: it
    # has the base's role, price, objectives and context length.
    models = {m.model_id: m for m in config.models}
    variant = config.swap.variant if config.swap is not None else None
    if variant is not None:
        models[variant.model_id] = models[variant.base]
    settings = GatewaySettings(
        config=gw,
        store_url=resolve_url(gw.store.url, base_dir=base_dir),
        spool_dir=str(spool if spool.is_absolute() else (base_dir / spool).resolve()),
        roles={i: m.role for i, m in models.items()},
        prices={i: m.price for i, m in models.items()},
        slos={i: m.slo for i, m in models.items()},
        context_lens={
            i: m.engine.max_model_len
            for i, m in models.items()
            if m.engine.max_model_len is not None
        },
        priority_models=frozenset(
            i for i, m in models.items() if m.engine.extra.get("scheduling_policy") == "priority"
        ),
        swap=config.swap,
        hooks=gateway_hooks(config),
    )
    return settings.model_dump(mode="json")


def build_app(
    config: StackConfig,
    *,
    base_dir: Path | None = None,
) -> Application:
    """Build the Serve application that serves every model of ``config`` behind the gateway.

    Each model becomes a ``ray.serve.llm`` LLM deployment; the ingress is Ray's
    ``OpenAiIngress`` extended by :class:`~serving.gateway._ingress.GavelIngress`, made into a
    FastAPI ingress with ``make_fastapi_ingress`` (the pattern Ray documents for custom
    ingresses), plus a shared rate-limiter deployment.

    Args:
        config: The validated stack config.
        base_dir: Folder that relative paths are resolved against (default: cwd).
    """
    from ray import serve
    from ray.llm._internal.serve.core.configs.openai_api_models import to_model_metadata
    from ray.serve.llm import build_llm_deployment
    from ray.serve.llm.ingress import make_fastapi_ingress

    from serving.gateway._app import GAVEL_ENDPOINTS, make_app
    from serving.gateway._ingress import GavelIngress

    base = (base_dir or Path.cwd()).resolve()
    if config.http.proxy == "direct":
        return build_direct_app(config, base_dir=base)
    llm_configs = [to_llm_config(m, base_dir=base) for m in config.models]
    deployments = {
        c.model_id: build_llm_deployment(c, bind_kwargs=engine_kwargs(m))
        for m, c in zip(config.models, llm_configs, strict=True)
    }
    cards = {c.model_id: to_model_metadata(c.model_id, c) for c in llm_configs}
    ingress_cls = make_fastapi_ingress(
        GavelIngress, endpoint_map=GAVEL_ENDPOINTS, app=make_app(config.gateway.cors)
    )
    options = GavelIngress.get_deployment_options(llm_configs)  # type: ignore[arg-type]
    settings = gateway_settings(config, base_dir=base)
    if config.gateway.deployment is not None:
        options = config.gateway.deployment.to_ingress_options(options)
    return serve.deployment(ingress_cls, **options).bind(  # type: ignore[attr-defined]
        llm_deployments=deployments,
        model_cards=cards,
        gateway=settings,
        **shared_deployments(settings["store_url"]),
    )


def shared_deployments(store_url: str) -> dict[str, Any]:
    """The deployments every gateway replica shares, as its bind arguments: the rate
    limiter and the metrics hub."""
    from serving.gateway._limits import RateLimiter
    from serving.gateway._metrics_hub import MetricsHub

    return {
        "limiter": RateLimiter.bind(store_url=store_url),  # type: ignore[attr-defined]
        "hub": MetricsHub.bind(store_url=store_url),  # type: ignore[attr-defined]
    }


def build_direct_app(config: StackConfig, *, base_dir: Path) -> Application:
    """The app of ``http.proxy: direct``: the application model's ``LLMServer`` is the HTTP
    ingress (Ray's direct streaming, behind HAProxy) and runs the gateway itself
    (:class:`~serving.gateway._direct.GavelLLMServer`); the other models are deployments
    it calls through their handles. Ray's ``LLMRouter`` picks a replica per request."""
    from ray.llm._internal.serve.core.configs.openai_api_models import to_model_metadata
    from ray.llm._internal.serve.core.ingress.builder import (
        _build_direct_streaming_llm_deployment,
        _build_openai_ingress_request_router,
    )
    from ray.serve.llm import build_llm_deployment

    from serving.gateway._direct import GavelLLMServer

    own = config.model("app")
    llm_configs = {m.model_id: to_llm_config(m, base_dir=base_dir) for m in config.models}
    others = {
        m.model_id: build_llm_deployment(llm_configs[m.model_id], bind_kwargs=engine_kwargs(m))
        for m in config.models
        if m is not own
    }
    settings = gateway_settings(config, base_dir=base_dir)
    own_config = llm_configs[own.model_id]
    server = _build_direct_streaming_llm_deployment(
        own_config,
        deployment_cls=GavelLLMServer,
        bind_kwargs={
            **engine_kwargs(own),
            "llm_deployments": others,
            "model_cards": {i: to_model_metadata(i, c) for i, c in llm_configs.items()},
            "gateway": settings,
            "cors": config.gateway.cors.model_dump(mode="json"),
            **shared_deployments(settings["store_url"]),
        },
    )
    router = _build_openai_ingress_request_router(server=server, llm_config=own_config)
    return server._with_ingress_request_router(router)


def app_builder(args: dict[str, str]) -> Application:
    """Ray Serve application builder for config files and KubeRay's ``serveConfigV2``.

    ``import_path: serving:app_builder`` with ``args: {config: /path/stack.yaml}``.
    """
    from serving._config import load_config

    return build_app(load_config(args["config"]), base_dir=Path(args.get("base_dir", ".")))
