"""Gavel serving: Ray Serve + vLLM behind one OpenAI-compatible endpoint, with its gateway.

Public surface: the config models and loaders, the app builder, the wire formats of
keys and captured traffic, the one cost formula, and the user-facing error types.
The storage layer is :mod:`serving.store`; the command line is :mod:`serving.cli`,
and what packages need to add commands to it is exported here (``CommandSet``, ``day_arg``, ...).
"""

from serving._builder import app_builder, build_app, check_sources, to_llm_config
from serving._commandline import (
    EXIT_USAGE,
    CommandSet,
    ConfigCheck,
    SubParsers,
    day_arg,
    default_config,
    open_store,
    yesterday,
)
from serving._config import (
    ConfigError,
    GavelModel,
    ModelConfig,
    PriceConfig,
    Role,
    StackConfig,
    SwapConfig,
    hourly_per_mtok,
    load_config,
    load_model,
    parse_config,
    parse_model,
    rebase_path,
)
from serving._errors import CliError, openai_error
from serving._figures import figures_registry
from serving._keys import bearer_token, hash_key, new_key
from serving._stack import connect_ray
from serving._wire import SOURCE_HEADER, ApiKey, Figure, FigureJob, Scope, Source, TrafficRecord
from serving.swap._config import SwapCheck

__all__ = [
    "EXIT_USAGE",
    "SOURCE_HEADER",
    "ApiKey",
    "CliError",
    "CommandSet",
    "ConfigCheck",
    "ConfigError",
    "Figure",
    "FigureJob",
    "GavelModel",
    "ModelConfig",
    "PriceConfig",
    "Role",
    "Scope",
    "Source",
    "StackConfig",
    "SubParsers",
    "SwapCheck",
    "SwapConfig",
    "TrafficRecord",
    "app_builder",
    "bearer_token",
    "build_app",
    "check_sources",
    "connect_ray",
    "day_arg",
    "default_config",
    "figures_registry",
    "hash_key",
    "hourly_per_mtok",
    "load_config",
    "load_model",
    "new_key",
    "open_store",
    "openai_error",
    "parse_config",
    "parse_model",
    "rebase_path",
    "to_llm_config",
    "yesterday",
]
