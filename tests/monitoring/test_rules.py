"""Alerting and recording rules: promtool checks them and runs their unit tests (input
series for every alert); the PrometheusRule ships exactly the rules file."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "k8s/monitoring/rules.yaml"
PROMTOOL = shutil.which("promtool")

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None and os.environ.get("CI") != "true",
    reason="promtool not installed (Debian's prometheus package; `make prometheus`)",
)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None, "promtool missing under CI: `make prometheus` installs it"
    return subprocess.run(
        [PROMTOOL, *args], cwd=RULES.parent, capture_output=True, text=True, check=False
    )


@needs_promtool
def test_promtool_check_rules() -> None:
    out = _promtool("check", "rules", RULES.name)
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_promtool_test_rules() -> None:
    out = _promtool("test", "rules", "rules_test.yaml")
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_has_a_unit_test_and_a_runbook_entry() -> None:
    rules = yaml.safe_load(RULES.read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((RULES.parent / "rules_test.yaml").read_text())
    tested = {a["alertname"] for t in tests["tests"] for a in t.get("alert_rule_test", [])}
    assert alerts <= tested, f"alerts without a promtool test: {sorted(alerts - tested)}"
    readme = (ROOT / "docs" / "operations.md").read_text()
    missing = sorted(a for a in alerts if a not in readme)
    assert not missing, f"alerts docs/operations.md does not explain: {missing}"
    for needed in ("GavelTTFTBudgetBurn", "GavelTPOTBudgetBurn", "GavelHighErrorRate",
                   "GavelCaptureSpoolGrowing", "GavelCaptureQuarantined",
                   "GavelKeyStoreUnreachable", "GavelJudgeJobMissing", "GavelJudgeJobFailed",
                   "GavelPassRateDrop", "GavelJudgeUntrusted"):  # fmt: skip
        assert needed in alerts


def test_prometheusrule_ships_the_rules_file() -> None:
    docs = list(yaml.safe_load_all((ROOT / "k8s/gavel-monitoring.yaml").read_text()))
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert sorted(cm["data"]) == ["gavel-cost.json", "gavel-quality.json", "gavel-serving.json"]
