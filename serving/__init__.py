"""Gavel serving: Ray Serve + vLLM behind one OpenAI-compatible endpoint.

Public surface: the config models and loader, and the app builder.
"""

from serving._builder import app_builder, build_app, check_sources, to_llm_config
from serving._config import (
    ConfigError,
    GavelModel,
    ModelConfig,
    Role,
    StackConfig,
    load_config,
    parse_config,
)

__all__ = [
    "ConfigError",
    "GavelModel",
    "ModelConfig",
    "Role",
    "StackConfig",
    "app_builder",
    "build_app",
    "check_sources",
    "load_config",
    "parse_config",
    "to_llm_config",
]
