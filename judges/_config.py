"""The judging config (``config/judging.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from judges._assignment import LabellingConfig
from judges._calibration import CalibrationConfig
from judges._online import OnlineLoop, OnlineRule
from judges._sampling import SamplingConfig
from serving import GavelModel, load_model, rebase_path

SHIPPED_CRITERIA = str(Path(__file__).resolve().parent / "criteria")
"""The criteria that ship with Gavel (the default ``criteria_dir``)."""


class JudgingConfig(GavelModel):
    """How the daily job samples, calls the judge, compares and reports."""

    criteria_dir: str = SHIPPED_CRITERIA
    """Folder of criterion YAML files; default: the criteria shipped with Gavel. Relative
    paths here and in ``report_dir`` are relative to the judging file's folder."""
    sampling: SamplingConfig = SamplingConfig()
    concurrency: Annotated[int, Field(ge=1)] = 4
    """Judge calls in flight per Ray task."""
    chunk_size: Annotated[int, Field(ge=1)] = 16
    """Items per Ray task (a killed run loses at most the chunks in flight)."""
    parallel_tasks: Annotated[int, Field(ge=1)] = 2
    """Ray tasks in flight: judge calls in flight are at most parallel_tasks x concurrency."""
    max_retries: Annotated[int, Field(ge=0)] = 2
    timeout_s: Annotated[float, Field(gt=0)] = 120
    max_tokens: Annotated[int, Field(ge=8)] = 160
    trailing_days: Annotated[int, Field(ge=1)] = 7
    drop_p_value: Annotated[float, Field(gt=0, lt=1)] = 0.05
    """A pass rate below the trailing days' with a one-sided p under this is flagged."""
    calibration: CalibrationConfig = CalibrationConfig()
    """When a criterion's judge counts as trustworthy (``gavel judge calibrate``)."""
    report_dir: str = "reports/judging"
    pushgateway: str | None = None
    feedback: dict[str, Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]] = Field(
        default_factory=dict
    )
    """Criterion -> the name of end users' feedback that speaks to it (``POST
    /v1/feedback``): the daily report and ``gavel judge calibrate`` show the judge's
    agreement with users on it, apart from human labels (it never makes a judge trusted)."""
    online: list[OnlineRule] = Field(default_factory=list)
    """Online judging rules (``gavel judge online``): live traffic judged within the hour."""
    online_loop: OnlineLoop = OnlineLoop()
    labelling: LabellingConfig | None = None
    """Labelling assignment: the labellers by name and how many label each item (else
    every labeller sees every item)."""

    @model_validator(mode="after")
    def _unique_rules(self) -> JudgingConfig:
        names = [r.name for r in self.online]
        if len(set(names)) != len(names):
            raise ValueError(f"online: rule names must be unique ({', '.join(names)})")
        return self

    def rebased(self, base_dir: Path) -> JudgingConfig:
        """This config with its relative folders made absolute against ``base_dir``."""
        return self.model_copy(
            update={
                "criteria_dir": rebase_path(self.criteria_dir, base_dir),
                "report_dir": rebase_path(self.report_dir, base_dir),
            }
        )


def load_judging(path: str | Path) -> JudgingConfig:
    """Read and validate a judging config; errors name the file, field and value. Its
    relative folders become absolute against the file's folder."""
    return load_model(path, JudgingConfig).rebased(Path(path).resolve().parent)
