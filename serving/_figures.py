"""Figures batch jobs publish for Prometheus, served as gauges (prometheus-client).

The daily judge and the load test store their latest figures (:class:`Figure` rows);
the gateway's ``/metrics`` serves them through :class:`FiguresCollector`, and the jobs
build their textfile or Pushgateway registry from the same rows with
:func:`figures_registry`, so there is one definition of each figure.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from serving._wire import Figure


class FiguresCollector(Collector):
    """Serves the figures last read from the store as gauges (no I/O at collect time)."""

    def __init__(self) -> None:
        self._figures: Sequence[Figure] = ()

    def update(self, figures: Sequence[Figure]) -> None:
        """Replace what is served with ``figures`` (read by the caller, off the event loop)."""
        self._figures = tuple(figures)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One gauge family per figure name; label sets as published."""
        by_name: dict[str, list[Figure]] = {}
        for f in self._figures:
            by_name.setdefault(f.name, []).append(f)
        for name, rows in sorted(by_name.items()):
            keys = sorted({k for r in rows for k in r.labels})
            fam = GaugeMetricFamily(name, rows[0].help, labels=keys)
            for r in rows:
                fam.add_metric([r.labels.get(k, "") for k in keys], r.value)
            yield fam


def figures_registry(figures: Sequence[Figure]) -> CollectorRegistry:
    """A registry that exposes ``figures`` (for a textfile or a Pushgateway push)."""
    reg = CollectorRegistry()
    collector = FiguresCollector()
    collector.update(figures)
    reg.register(collector)
    return reg
