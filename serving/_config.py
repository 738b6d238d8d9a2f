"""Stack configuration: the YAML file that describes a Gavel stack.

The models do no I/O; they live in :mod:`serving._model_config` (one served model) and
:mod:`serving._gateway_config` (endpoint, gateway, Ray). :func:`load_config` is the one
edge that reads a stack file: it turns every failure into a :class:`ConfigError` naming
the file, the field and the bad value, and makes every relative path in the file
relative to the file's own folder, so a config means the same from any directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from serving._base import (
    ConfigError,
    GavelModel,
    load_model,
    parse_model,
    read_yaml,
    rebase_path,
    resolve_url,
)
from serving._gateway_config import (
    AuthConfig,
    CaptureConfig,
    CorsConfig,
    GatewayConfig,
    HttpConfig,
    LimitsConfig,
    RayConfig,
    StoreConfig,
)
from serving._model_config import (
    LATENCY_BUCKETS,
    AutoscalingConfig,
    DeploymentConfig,
    EngineConfig,
    ModelConfig,
    ModelSource,
    PriceConfig,
    ResourcesConfig,
    Role,
    SloConfig,
    hourly_per_mtok,
)
from serving.swap._config import SwapConfig, VariantConfig

__all__ = [
    "LATENCY_BUCKETS",
    "AuthConfig",
    "AutoscalingConfig",
    "CaptureConfig",
    "ConfigError",
    "CorsConfig",
    "DeploymentConfig",
    "EngineConfig",
    "GatewayConfig",
    "GavelModel",
    "HttpConfig",
    "LimitsConfig",
    "ModelConfig",
    "ModelSource",
    "PriceConfig",
    "RayConfig",
    "ResourcesConfig",
    "Role",
    "SloConfig",
    "StackConfig",
    "StoreConfig",
    "SwapConfig",
    "VariantConfig",
    "hourly_per_mtok",
    "load_config",
    "load_model",
    "parse_config",
    "parse_model",
    "read_yaml",
    "rebase_path",
    "resolve_url",
]


class StackConfig(GavelModel):
    """The whole stack: HTTP endpoint, Ray, and the served models (one per role)."""

    http: HttpConfig = HttpConfig()
    ray: RayConfig = RayConfig()
    app_name: Annotated[str, Field(min_length=1)] = "gavel"
    gateway: GatewayConfig = GatewayConfig()
    models: Annotated[list[ModelConfig], Field(min_length=1)]
    judging: str = "judging.yaml"
    """The judging config (sampling, criteria, reports) that ``gavel judge``, ``label`` and
    ``eval`` use with this stack unless ``--judging`` names another."""
    swap: SwapConfig | None = None
    """A candidate beside the production model, on shadow and canary (``gavel swap``)."""
    state_dir: str = ".gavel"
    """Where ``gavel serve`` records the running stack for ``gavel status`` and ``gavel
    down`` (``$GAVEL_STATE_DIR`` overrides it)."""

    @model_validator(mode="after")
    def _unique(self) -> StackConfig:
        roles: list[str] = [m.role for m in self.models]
        ids = [m.model_id for m in self.models]
        for label, values in (("role", roles), ("model_id", ids)):
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"duplicate {label}: {', '.join(dupes)}")
        if "app" not in roles:
            raise ValueError("a model with role 'app' is required")
        if self.swap is not None:
            _check_swap(self.swap, ids)
        if self.http.proxy == "direct" and self.gateway.deployment is not None:
            raise ValueError(
                "gateway.deployment: with http.proxy: direct the gateway runs in the app "
                "model's replicas; size them with that model's deployment instead"
            )
        return self

    def model(self, role: Role) -> ModelConfig:
        """The model that plays ``role``; raises ``KeyError`` if none does."""
        for m in self.models:
            if m.role == role:
                return m
        raise KeyError(f"no model with role {role!r} in the config")

    def rebased(self, base_dir: Path) -> StackConfig:
        """This config with every relative path made absolute against ``base_dir``: model
        folders, the SQLite store, the spool, the judging config and the state folder."""
        models = [
            m
            if m.source.path is None
            else m.model_copy(
                update={"source": ModelSource(path=rebase_path(m.source.path, base_dir))}
            )
            for m in self.models
        ]
        gw = self.gateway
        gateway = gw.model_copy(
            update={
                "store": StoreConfig(url=resolve_url(gw.store.url, base_dir=base_dir)),
                "capture": gw.capture.model_copy(
                    update={"spool_dir": rebase_path(gw.capture.spool_dir, base_dir)}
                ),
            }
        )
        return self.model_copy(
            update={
                "models": models,
                "gateway": gateway,
                "judging": rebase_path(self.judging, base_dir),
                "state_dir": rebase_path(self.state_dir, base_dir),
            }
        )


def _check_swap(swap: SwapConfig, ids: list[str]) -> None:
    """The swap's models exist: production and the candidate are served ids, or the
    candidate is a variant of one."""
    served = ", ".join(ids)
    if swap.production not in ids:
        raise ValueError(f"swap.production: {swap.production!r} is not a served model ({served})")
    v = swap.variant
    if v is None and swap.candidate not in ids:
        raise ValueError(
            f"swap.candidate: {swap.candidate!r} is not a served model ({served}); "
            "serve it, or describe it as swap.variant"
        )
    if v is not None:
        if v.model_id in ids:
            raise ValueError(f"swap.variant.model_id: {v.model_id!r} is already a served model")
        if v.base not in ids:
            raise ValueError(f"swap.variant.base: {v.base!r} is not a served model ({served})")


def parse_config(data: object, *, source: str = "<config>") -> StackConfig:
    """Validate already-loaded YAML/JSON data as a stack config (paths left as written)."""
    return parse_model(data, StackConfig, source=source)


def load_config(path: str | Path) -> StackConfig:
    """Read and validate a stack config file; its relative paths become absolute against
    the file's folder."""
    return load_model(path, StackConfig).rebased(Path(path).resolve().parent)
