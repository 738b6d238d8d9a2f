"""End users' feedback on answers, as one slice: ``POST /v1/feedback`` and what reads it.

An application sends what its users said about an answer (a thumbs up or down, a score,
a comment) with the answer's id. Gavel keeps the latest value per (request, name, user)
and every change.

- config: :class:`FeedbackConfig` (``gateway.feedback``), :class:`FeedbackName`;
- wire: :class:`FeedbackIn` (the body), :class:`Feedback` (what is kept);
- the route's work: :class:`FeedbackRoute`;
- readers: :func:`feedback_between` (the daily report, calibration, the swap's report),
  :func:`feedback_for`, :func:`history`; :func:`positive_share` for the figures.

The config and wire types are imported eagerly (the stack config needs them); the rest
on first use, so that the config loads without the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from serving.feedback._config import FeedbackConfig, FeedbackName
from serving.feedback._wire import Feedback, FeedbackIn

if TYPE_CHECKING:
    from serving.feedback._route import FeedbackRoute
    from serving.feedback._store import feedback_between, feedback_for, find_target, history

_LAZY = {
    "FeedbackRoute": "serving.feedback._route",
    "feedback_between": "serving.feedback._store",
    "feedback_for": "serving.feedback._store",
    "find_target": "serving.feedback._store",
    "history": "serving.feedback._store",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'serving.feedback' has no attribute {name!r}")


__all__ = [
    "Feedback",
    "FeedbackConfig",
    "FeedbackIn",
    "FeedbackName",
    "FeedbackRoute",
    "feedback_between",
    "feedback_for",
    "find_target",
    "history",
]
