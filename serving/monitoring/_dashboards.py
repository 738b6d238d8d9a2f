"""Render :mod:`._panels` specs as Grafana dashboard JSON with Grafana's own builder
(grafana-foundation-sdk). The datasource is a dashboard variable, never a fixed UID."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from serving.monitoring._panels import DashboardSpec, Panel, dashboard_specs

DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")


def _variables(spec: DashboardSpec) -> list[Any]:
    out: list[Any] = [
        gd.DatasourceVariable("datasource").label("Prometheus").type("prometheus"),
        gd.QueryVariable("model")
        .label("Model")
        .datasource(DATASOURCE)
        .query("label_values(gavel_requests_total, model)")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(True)
        .include_all(True)
        .all_value(".*"),
    ]
    if spec.uid == "gavel-quality":
        out.append(
            gd.QueryVariable("criterion")
            .label("Criterion")
            .datasource(DATASOURCE)
            .query("label_values(gavel_judge_sample_size, criterion)")
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
    return out


def _panel(p: Panel) -> Any:
    builder: Any = stat.Panel() if p.kind == "stat" else timeseries.Panel()
    builder = builder.title(p.title).description(p.description).unit(p.unit)
    builder = builder.datasource(DATASOURCE).height(8).span(8)
    for i, q in enumerate(p.queries):
        target = (
            prometheus.Dataquery()
            .expr(q.expr)
            .legend_format(q.legend or "__auto")
            .ref_id(chr(ord("A") + i))
            .datasource(DATASOURCE)
        )
        builder = builder.with_target(target)
    return builder


def render(spec: DashboardSpec) -> dict[str, Any]:
    """The dashboard's JSON model (what Grafana imports)."""
    board = (
        gd.Dashboard(spec.title)
        .uid(spec.uid)
        .description(spec.description)
        .tags(["gavel", "generated"])
        .editable()
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("utc")
    )
    for v in _variables(spec):
        board = board.with_variable(v)
    for row in spec.rows:
        board = board.with_row(gd.Row(row.title))
        for p in row.panels:
            board = board.with_panel(_panel(p))
    data: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True, indent=2).encode(board.build()))
    return data


def dashboard_json(spec: DashboardSpec) -> str:
    """The file content of one dashboard (stable: sorted keys, two-space indent)."""
    return json.dumps(render(spec), indent=2, sort_keys=True) + "\n"


def write_dashboards(out_dir: Path) -> list[Path]:
    """Write every dashboard as ``out_dir/<uid>.json``; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for spec in dashboard_specs():
        path = out_dir / f"{spec.uid}.json"
        path.write_text(dashboard_json(spec))
        paths.append(path)
    return paths
