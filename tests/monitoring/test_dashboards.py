"""Dashboards as code: the committed JSON is what the code generates, every query parses,
and the datasource is always the dashboard's variable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import promql_parser
import pytest

from serving.monitoring import dashboard_specs, expand, panel_queries
from serving.monitoring._cli import expected_files

ROOT = Path(__file__).resolve().parents[2]


def test_committed_files_equal_the_generated_ones() -> None:
    for path, text in expected_files(ROOT).items():
        assert path.is_file(), f"{path} missing: run `gavel monitoring generate`"
        assert path.read_text(encoding="utf-8") == text, (
            f"{path} is stale: run `gavel monitoring generate`"
        )


@pytest.mark.parametrize(("uid", "panel", "query"), panel_queries(), ids=lambda v: str(v)[:40])
def test_every_query_parses(uid: str, panel: str, query: Any) -> None:
    promql_parser.parse(expand(query.expr))


def _datasources(node: Any) -> list[Any]:
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "datasource":
                found.append(v)
            found += _datasources(v)
    elif isinstance(node, list):
        for v in node:
            found += _datasources(v)
    return found


def test_datasource_is_a_variable_never_a_uid() -> None:
    for spec in dashboard_specs():
        board = json.loads((ROOT / f"k8s/monitoring/dashboards/{spec.uid}.json").read_text())
        refs = _datasources(board["panels"])
        assert refs, spec.uid
        assert all(r == {"type": "prometheus", "uid": "${datasource}"} for r in refs), spec.uid
        names = [v["name"] for v in board["templating"]["list"]]
        assert names[0] == "datasource" and "model" in names


def test_the_issue_s_panels_are_there() -> None:
    titles = {p for _, p, _ in panel_queries()}
    for needed in (
        "Requests by status", "Error ratio", "Time to first token", "Time per output token",
        "End-to-end latency", "End-to-end p90 by output length", "TTFT p90 by output length",
        "Output tokens per second", "In flight and engine queue", "KV-cache usage",
        "Prefix-cache hit rate", "SLO attainment", "USD per hour by model",
        "USD per day by model", "USD per hour by key", "USD per day by key",
        "USD per 1M output tokens: measured vs load test", "Pass rate with 95% interval",
        "Drop flagged", "Judge trusted (agrees with people)", "Judged items and errors",
        "Judge cost", "Load test p50 latency by output length", "Swap decision",
        "Candidate win rate with its confidence sequence", "Shadow and canary shares",
        "Shadow cost and drops",
    ):  # fmt: skip
        assert needed in titles
    uids = [s.uid for s in dashboard_specs()]
    assert len(uids) == len(set(uids))
