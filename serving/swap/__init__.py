"""The model swap, as one slice: a candidate beside the production model, on shadow and
canary, changed live and decided on evidence.

- config: :class:`SwapConfig` (``swap:`` in the stack config), :class:`VariantConfig`,
  :class:`SwapCheck`;
- the request path: :class:`SwapRouter` (the arm, the variant's body) and its hooks
  (``swap``, ``shadow``), :class:`ShadowRunner`, :class:`SwapStateWatcher` (the live
  state, read from the store by every gateway replica);
- the state's changes: :class:`SwapEvent`, :func:`record_swap`, :func:`latest_swap`,
  :func:`swap_history`; every report as decided: :func:`record_swap_report`,
  :func:`latest_swap_report`;
- the CLI: ``gavel swap set|promote|rollback|status`` (:func:`commands`); the report,
  ``gavel swap report``, is the evals' (:mod:`evals.swap`), added to the same group.

The config types are imported eagerly (the stack config needs them); the rest on first
use, so that the config can be loaded without the gateway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from serving.swap._config import SwapCheck, SwapConfig, VariantConfig

if TYPE_CHECKING:
    from serving.swap._cli import commands
    from serving.swap._events import (
        SwapAction,
        SwapEvent,
        latest_swap,
        latest_swap_report,
        record_swap,
        record_swap_report,
        swap_history,
    )
    from serving.swap._router import ARM_HEADER, Arm, SwapHook, SwapRouter
    from serving.swap._shadow import ShadowHook, ShadowRunner
    from serving.swap._state import SwapStateWatcher

_LAZY = {
    "commands": "serving.swap._cli",
    "SwapAction": "serving.swap._events",
    "SwapEvent": "serving.swap._events",
    "latest_swap": "serving.swap._events",
    "latest_swap_report": "serving.swap._events",
    "record_swap_report": "serving.swap._events",
    "record_swap": "serving.swap._events",
    "swap_history": "serving.swap._events",
    "ARM_HEADER": "serving.swap._router",
    "Arm": "serving.swap._router",
    "SwapHook": "serving.swap._router",
    "SwapRouter": "serving.swap._router",
    "ShadowHook": "serving.swap._shadow",
    "ShadowRunner": "serving.swap._shadow",
    "SwapStateWatcher": "serving.swap._state",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'serving.swap' has no attribute {name!r}")


__all__ = [
    "ARM_HEADER",
    "Arm",
    "ShadowHook",
    "ShadowRunner",
    "SwapAction",
    "SwapCheck",
    "SwapConfig",
    "SwapEvent",
    "SwapHook",
    "SwapRouter",
    "SwapStateWatcher",
    "VariantConfig",
    "commands",
    "latest_swap",
    "latest_swap_report",
    "record_swap",
    "record_swap_report",
    "swap_history",
]
