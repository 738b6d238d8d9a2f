"""Gavel's monitoring as code: Grafana dashboards, the Prometheus rules they sit beside,
the Kubernetes objects that ship them, and a local Prometheus for the running stack.

Public surface: the panel specs (:func:`dashboard_specs`, :func:`panel_queries`,
:func:`expand`), the renderer (:func:`dashboard_json`, :func:`write_dashboards`).
"""

from serving.monitoring._dashboards import dashboard_json, render, write_dashboards
from serving.monitoring._panels import DashboardSpec, Panel, Query, dashboard_specs, expand


def panel_queries() -> list[tuple[str, str, Query]]:
    """(dashboard uid, panel title, query) of every query of every panel."""
    return [
        (d.uid, p.title, q)
        for d in dashboard_specs()
        for row in d.rows
        for p in row.panels
        for q in p.queries
    ]


__all__ = [
    "DashboardSpec",
    "Panel",
    "Query",
    "dashboard_json",
    "dashboard_specs",
    "expand",
    "panel_queries",
    "render",
    "write_dashboards",
]
