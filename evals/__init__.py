"""Gavel evals: offline suites, CI gates and A/B comparisons of two arms, and the live model
swap's report (:mod:`evals.swap`), built on the judges' API.

Public surface: loading suites (``load_suite``), running them (``run_suite``), the
result document (``RunResult``), comparing runs (``compare``), pairwise A/B
(``pairwise_report``), the judge against labels (``evaluate_judge``), the registered
assertions (``ASSERTIONS``) and the pure statistics.
"""

from evals._checks import ASSERTIONS
from evals._compare import Comparison, PairwiseReport, compare, pairwise_report
from evals._generate import Endpoint
from evals._judge_eval import evaluate_judge
from evals._result import RunResult
from evals._run import run_suite
from evals._stats import (
    length_controlled_win_rate,
    mcnemar_exact,
    paired_bootstrap,
    sign_test,
)
from evals._suite import LoadedSuite, Suite, load_suite

__all__ = [
    "ASSERTIONS",
    "Comparison",
    "Endpoint",
    "LoadedSuite",
    "PairwiseReport",
    "RunResult",
    "Suite",
    "compare",
    "evaluate_judge",
    "length_controlled_win_rate",
    "load_suite",
    "mcnemar_exact",
    "paired_bootstrap",
    "pairwise_report",
    "run_suite",
    "sign_test",
]
