"""The hub's sum of several ingress replicas' registries (pure functions, no Ray)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from serving.gateway import GatewayMetrics
from serving.gateway._metrics_hub import counters_only, merge, snapshot


def _replica(requests: int, in_flight: int, store_up: int) -> GatewayMetrics:
    m = GatewayMetrics()
    m.know_models(["app-model"])
    for _ in range(requests):
        m.requests.labels("app-model", "200", "production").inc()
        m.ttft.labels("app-model", "le64").observe(0.03)
    m.in_flight.labels("app-model").set(in_flight)
    m.store_up.set(store_up)
    return m


def _values(snap: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s, labels): v for _, _, _, rows in snap for s, labels, v in rows}  # type: ignore[attr-defined]


def test_counters_and_histograms_add_up_gauges_combine() -> None:
    a, b = _replica(3, 1, 1), _replica(4, 2, 0)
    merged = _values(merge([snapshot(a.registry.collect()), snapshot(b.registry.collect())]))
    req = (("model", "app-model"), ("source", "production"), ("status", "200"))
    assert merged[("gavel_requests_total", req)] == 7
    count = (("model", "app-model"), ("output_len", "le64"))
    assert merged[("gavel_ttft_seconds_count", count)] == 7
    assert merged[("gavel_in_flight_requests", (("model", "app-model"),))] == 3
    assert merged[("gavel_store_up", ())] == 0  # one replica cannot reach the store


def test_a_gone_replica_keeps_its_counts_but_not_its_gauges() -> None:
    gone = snapshot(_replica(5, 9, 1).registry.collect())
    merged = _values(merge([counters_only(gone), snapshot(_replica(1, 0, 1).registry.collect())]))
    req = (("model", "app-model"), ("source", "production"), ("status", "200"))
    assert merged[("gavel_requests_total", req)] == 6
    assert merged[("gavel_in_flight_requests", (("model", "app-model"),))] == 0


def test_the_merged_page_parses() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from serving.gateway._metrics_hub import _SnapshotCollector

    collector = _SnapshotCollector()
    collector.current = merge([snapshot(_replica(2, 0, 1).registry.collect())] * 2)
    reg = CollectorRegistry()
    reg.register(collector)
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(reg).decode())}
    total = sum(s.value for s in families["gavel_requests"].samples if s.name.endswith("_total"))
    assert total == 4
