"""Gavel's built-in criterion kinds, one module each: ``binary``, ``reference``, ``pairwise``.

Each module defines ``KIND`` (a :class:`~judges._registry.CriterionKind`);
:func:`default_kinds` registers them in a new registry. Importing registers nothing.
"""

from __future__ import annotations

from judges._registry import KindRegistry
from judges.kinds import binary, pairwise, reference


def default_kinds() -> KindRegistry:
    """A new registry with Gavel's built-in kinds: ``binary``, ``reference``, ``pairwise``."""
    registry = KindRegistry()
    for module in (binary, reference, pairwise):
        registry.register(module.KIND)
    return registry
