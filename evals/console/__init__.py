"""The console (``gavel console``): one web app to look at the data.

Overview, the traffic explorer (filters, full-text search, keyset pages), a record's
page, judging (calibration and days), keys (admin), and the labelling pages mounted as
its ``/label/`` views. Server-rendered (Jinja2, escaping by default), plots as SVG drawn
here, nothing loaded from the internet.

``commands`` is imported eagerly (the CLI registers it); the app on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evals.console._cli import commands

if TYPE_CHECKING:
    from evals.console._app import build_console_app

__all__ = ["build_console_app", "commands"]


def __getattr__(name: str) -> Any:
    if name == "build_console_app":
        from evals.console._app import build_console_app

        return build_console_app
    raise AttributeError(name)
