"""Prometheus metrics of the gateway (prometheus-client, one registry per ingress replica).

Labels are model, status and source only (``source``: ``production``, ``judge`` or
``eval``, so Gavel's own calls are priced apart): no prompt text, key or user id ever
becomes a label.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TOKEN_BUCKETS = (1, 4, 16, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


class GatewayMetrics:
    """The gateway's counters, histograms and gauges, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "gavel_requests",
            "Requests that reached a model",
            ["model", "status", "source"],
            registry=r,
        )
        self.input_tokens = Counter(
            "gavel_input_tokens", "Prompt tokens", ["model", "source"], registry=r
        )
        self.output_tokens = Counter(
            "gavel_output_tokens", "Completion tokens", ["model", "source"], registry=r
        )
        self.cost = Counter(
            "gavel_cost_usd", "Cost of served requests", ["model", "source"], registry=r
        )
        self.ttft = Histogram(
            "gavel_ttft_seconds", "Time to first token", ["model"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.e2e = Histogram(
            "gavel_e2e_seconds", "End-to-end latency", ["model"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.output_len = Histogram(
            "gavel_output_length_tokens", "Completion length", ["model"],
            buckets=_TOKEN_BUCKETS, registry=r,
        )  # fmt: skip
        self.in_flight = Gauge("gavel_in_flight_requests", "Requests in flight", ["model"],
                               registry=r)  # fmt: skip
        self.rejected = Counter(
            "gavel_rejected_requests", "Requests refused by the gateway", ["reason"], registry=r
        )
        self.queue_depth = Gauge(
            "gavel_capture_queue_depth", "Captured records waiting to be written", registry=r
        )
        self.spool_records = Gauge(
            "gavel_capture_spool_records", "Captured records spooled to local disk", registry=r
        )
        self.quarantined = Counter(
            "gavel_capture_quarantined_records",
            "Captured records the store refused, set aside in spool_dir/quarantine",
            registry=r,
        )
        self.spool_errors = Counter(
            "gavel_capture_spool_errors", "Spool writes that failed (records kept)", registry=r
        )
        self.capture_written = Counter(
            "gavel_capture_written_records", "Captured records written to the store", registry=r
        )

    def know_models(self, models: list[str]) -> None:
        """Create every per-model series at zero, so each exists before its first request
        (dashboards and alerts then see 0, not "no data")."""
        for m in models:
            for h in (self.ttft, self.e2e, self.output_len):
                h.labels(m)
            self.in_flight.labels(m)
            for src in ("production", "judge", "eval"):
                self.input_tokens.labels(m, src)
                self.output_tokens.labels(m, src)
                self.cost.labels(m, src)

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)
