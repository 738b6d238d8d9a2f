"""The model swap's report, as one slice: ``gavel swap report`` judges the configured
swap's live traffic (shadow pairs pairwise, canary arms on checks and criteria) and
decides (``promote``, ``rollback`` or ``continue``), with always-valid confidence
sequences. The swap itself (config, router, shadow, live state, its other actions) is
:mod:`serving.swap`."""

from evals.swap._cli import commands

__all__ = ["commands"]
