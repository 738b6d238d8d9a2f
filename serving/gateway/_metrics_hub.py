"""One exact view of the gateway's metrics across its ingress replicas.

Each ingress replica counts in its own prometheus-client registry and reports the whole
snapshot (cumulative values) to the one :class:`MetricsHub` every second and before it
answers a scrape. The hub sums the replicas' latest snapshots, so a scrape through the
load-balanced ``/metrics`` route sees every request once, whichever replica answers.
The batch jobs' figures are read from the store by the hub alone, so they are exported
once. A replica that stops reporting (dead, scaled down) has its counters and
histograms folded into a retired total, so the totals never go backwards; its gauges
are dropped. A restarted hub starts from the live replicas' next reports: Prometheus
sees that as a counter reset, which ``rate`` and ``increase`` handle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Metric, generate_latest
from prometheus_client.registry import Collector
from ray import serve

from serving._figures import FiguresCollector
from serving.store import Store

log = logging.getLogger("gavel.gateway")

Labels = tuple[tuple[str, str], ...]
Family = tuple[str, str, str, tuple[tuple[str, Labels, float], ...]]
"""(name, type, help, samples as (sample name, labels, value)): one metric family."""
Snapshot = tuple[Family, ...]

RETIRE_AFTER_S = 30.0
"""A replica silent this long is taken as gone: its counters are folded, its gauges dropped."""
FIGURES_TTL_S = 10.0
"""The batch jobs' figures are re-read from the store this often."""
_GAUGE_MERGE = {"gavel_store_up": min, "gavel_key_budget_used_ratio": max,
                "gavel_slo_target_seconds": max, "gavel_slo_objective": max,
                "gavel_swap_share": max, "gavel_swap_state_id": min}  # fmt: skip
"""How gauges combine across replicas; any other gauge is summed (in flight, queues)."""


def snapshot(families: Iterable[Metric]) -> Snapshot:
    """A registry's metrics as plain tuples (what a replica sends to the hub)."""
    return tuple(
        (m.name, m.type, m.documentation,
         tuple((s.name, tuple(sorted(s.labels.items())), s.value) for s in m.samples))
        for m in families
    )  # fmt: skip


def merge(snapshots: Iterable[Snapshot]) -> Snapshot:
    """The sum of several replicas' snapshots: counters and histograms add up (their
    ``_created`` takes the earliest), gauges combine as :data:`_GAUGE_MERGE` says."""
    heads: dict[str, tuple[str, str]] = {}
    values: dict[str, dict[tuple[str, Labels], list[float]]] = {}
    for snap in snapshots:
        for name, kind, doc, samples in snap:
            heads.setdefault(name, (kind, doc))
            fam = values.setdefault(name, {})
            for sample, labels, value in samples:
                fam.setdefault((sample, labels), []).append(value)
    out: list[Family] = []
    for name, (kind, doc) in heads.items():
        rows = []
        for (sample, labels), vals in values[name].items():
            if sample.endswith("_created"):
                value = min(vals)
            elif kind == "gauge":
                value = _GAUGE_MERGE.get(name, sum)(vals)
            else:
                value = sum(vals)
            rows.append((sample, labels, value))
        out.append((name, kind, doc, tuple(rows)))
    return tuple(out)


def counters_only(snap: Snapshot) -> Snapshot:
    """What of a gone replica's snapshot still counts: its counters and histograms."""
    return tuple(f for f in snap if f[1] != "gauge")


class _SnapshotCollector(Collector):
    def __init__(self) -> None:
        self.current: Snapshot = ()

    def collect(self) -> Iterator[Metric]:
        for name, kind, doc, samples in self.current:
            metric = Metric(name, doc, kind)
            for sample, labels, value in samples:
                metric.add_sample(sample, dict(labels), value)
            yield metric


@serve.deployment(
    num_replicas=1,
    ray_actor_options={"num_cpus": 0},
    max_ongoing_requests=10_000,
    logging_config={"enable_access_log": False},
)
class MetricsHub:
    """The sum of every ingress replica's metrics, and the jobs' figures, on one page."""

    def __init__(self, store_url: str | None = None) -> None:
        self._live: dict[str, tuple[float, Snapshot]] = {}
        self._retired: Snapshot = ()
        self._store = Store(store_url) if store_url else None
        self._figures = FiguresCollector()
        self._figures_at = -FIGURES_TTL_S
        self._merged = _SnapshotCollector()
        self._registry = CollectorRegistry()
        self._registry.register(self._merged)
        self._registry.register(self._figures)

    async def report(self, replica: str, snap: Snapshot) -> None:
        """Take one replica's latest snapshot (cumulative, so a lost report loses nothing)."""
        self._live[replica] = (time.monotonic(), snap)

    async def replicas(self) -> list[str]:
        """The replicas whose reports are live."""
        self._retire()
        return sorted(self._live)

    async def render(self) -> bytes:
        """The Prometheus text exposition of every replica's metrics and the figures."""
        self._retire()
        await self._refresh_figures()
        self._merged.current = merge([self._retired, *(s for _, s in self._live.values())])
        return generate_latest(self._registry)

    def _retire(self) -> None:
        now = time.monotonic()
        for replica, (at, snap) in list(self._live.items()):
            if now - at > RETIRE_AFTER_S:
                del self._live[replica]
                self._retired = merge([self._retired, counters_only(snap)])
                log.info("ingress replica %s stopped reporting; its counters are kept", replica)

    async def _refresh_figures(self) -> None:
        now = time.monotonic()
        if self._store is None or now - self._figures_at < FIGURES_TTL_S:
            return
        self._figures_at = now
        try:
            figures = await asyncio.to_thread(self._store.figures)
        except Exception:  # store down: keep serving the last figures; store_up says why
            log.warning("cannot read figures from the store", exc_info=True)
            return
        self._figures.update(figures)


REPORT_INTERVAL_S = 1.0
"""How often an ingress replica reports its snapshot to the hub."""


def _replica_id() -> str:
    try:
        return str(serve.get_replica_context().replica_id.unique_id)
    except Exception:  # not in a Serve replica (unit tests)
        import uuid

        return uuid.uuid4().hex


class MetricsReporter:
    """An ingress replica's side: report the registry to the hub every second, and
    before rendering a scrape, so the page counts this replica's last request too."""

    def __init__(self, hub: serve.handle.DeploymentHandle, registry: CollectorRegistry) -> None:
        self._hub = hub
        self._registry = registry
        self.replica = _replica_id()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the report loop on the running event loop (once)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def report(self) -> None:
        """Send this replica's snapshot now."""
        await self._hub.report.remote(self.replica, snapshot(self._registry.collect()))

    async def render(self) -> bytes:
        """The page of every replica's metrics (this one's reported first)."""
        self.start()
        await self.report()
        page: bytes = await self._hub.render.remote()
        return page

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(REPORT_INTERVAL_S)
            try:
                await self.report()
            except Exception:  # hub restarting: the next report carries everything
                log.warning("cannot report metrics to the hub", exc_info=True)
