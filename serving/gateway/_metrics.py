"""Prometheus metrics of the gateway (prometheus-client, one registry per ingress replica;
:mod:`._metrics_hub` sums the replicas' registries into the one page Prometheus scrapes).

Labels are model, status, source, an output-length bucket and, on one cost counter, the
key's *name* (admin-chosen, bounded): no prompt text, key secret or user id ever becomes
a label. The batch jobs' latest figures (daily pass rates, load-test results, job status)
are added to the page by the hub.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from serving._config import LATENCY_BUCKETS, SloConfig

_TOKEN_BUCKETS = (1, 4, 16, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
LENGTH_BUCKETS = (16, 64, 256, 1024)
"""Upper bounds of the output-length buckets that split TTFT and end-to-end latency."""
_LENGTH_LABELS = ("none", *(f"le{b}" for b in LENGTH_BUCKETS), f"gt{LENGTH_BUCKETS[-1]}")


def length_bucket(completion_tokens: int | None) -> str:
    """The ``output_len`` label of a request: ``le16`` ... ``le1024``, ``gt1024`` or ``none``."""
    if completion_tokens is None:
        return "none"
    for b in LENGTH_BUCKETS:
        if completion_tokens <= b:
            return f"le{b}"
    return f"gt{LENGTH_BUCKETS[-1]}"


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
        self.key_cost = Counter(
            "gavel_key_cost_usd", "Cost of served requests by API key name",
            ["key_name", "model"], registry=r,
        )  # fmt: skip
        self.budget_used = Gauge(
            "gavel_key_budget_used_ratio",
            "Share of a key's USD budget spent or reserved (period: day or month, UTC)",
            ["key_name", "period"], registry=r,
        )  # fmt: skip
        self.ttft = Histogram(
            "gavel_ttft_seconds", "Time to first token (successful requests)",
            ["model", "output_len"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.tpot = Histogram(
            "gavel_tpot_seconds", "Mean time per output token after the first",
            ["model"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.e2e = Histogram(
            "gavel_e2e_seconds", "End-to-end latency (successful requests)",
            ["model", "output_len"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.output_len = Histogram(
            "gavel_output_length_tokens", "Completion length", ["model"],
            buckets=_TOKEN_BUCKETS, registry=r,
        )  # fmt: skip
        self.slo_requests = Counter(
            "gavel_slo_requests", "Successful requests checked against a latency objective",
            ["model", "slo", "result"], registry=r,
        )  # fmt: skip
        self.slo_target = Gauge(
            "gavel_slo_target_seconds", "Configured latency target", ["model", "slo"], registry=r
        )
        self.slo_objective = Gauge(
            "gavel_slo_objective", "Share of requests that must meet the target",
            ["model", "slo"], registry=r,
        )  # fmt: skip
        self._declare_operations(r)

    def _declare_operations(self, r: CollectorRegistry) -> None:
        """Admission, refusals, swap and capture: the gateway's own operation."""
        self.in_flight = Gauge("gavel_in_flight_requests", "Requests in flight", ["model"],
                               registry=r)  # fmt: skip
        self.rejected = Counter(
            "gavel_rejected_requests", "Requests refused by the gateway", ["reason"], registry=r
        )
        self.feedback = Counter(
            "gavel_feedback_requests",
            "POST /v1/feedback answers, by status",
            ["status"],
            registry=r,
        )
        self.admissions = Counter(
            "gavel_limiter_admissions",
            "Admissions of limited keys, by path: a lease this replica holds (no round "
            "trip) or the shared limiter",
            ["path"],
            registry=r,
        )
        self.background_waiting = Gauge(
            "gavel_background_waiting_requests",
            "Judge and eval requests waiting for a slot behind production",
            registry=r,
        )
        self.shadow_dropped = Counter(
            "gavel_shadow_dropped_requests",
            "Shadow requests not sent: the replica's shadow slots were all taken",
            ["model"], registry=r,
        )  # fmt: skip
        self.swap_share = Gauge(
            "gavel_swap_share",
            "A model swap's configured shares: shadow (rate) and canary (weight)",
            ["production", "candidate", "kind"], registry=r,
        )  # fmt: skip
        self.swap_state = Gauge(
            "gavel_swap_state_id",
            "The last swap change (gavel swap set|promote|rollback) this replica applied; "
            "0: the config's state (the page shows the lowest over replicas)",
            registry=r,
        )
        self.store_up = Gauge(
            "gavel_store_up",
            "1 if the last key lookup and capture write reached the store, else 0",
            registry=r,
        )
        self.store_up.set(1)
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
        self._slos: dict[str, SloConfig] = {}

    def know_models(self, models: list[str], slos: Mapping[str, SloConfig] | None = None) -> None:
        """Create every per-model series at zero, so each exists before its first request
        (dashboards and alerts then see 0, not "no data"), and publish the objectives."""
        self._slos = dict(slos or {})
        for m in models:
            for length in _LENGTH_LABELS:
                self.ttft.labels(m, length)
                self.e2e.labels(m, length)
            self.tpot.labels(m)
            self.output_len.labels(m)
            self.in_flight.labels(m)
            for src in ("production", "judge", "eval", "shadow"):
                self.input_tokens.labels(m, src)
                self.output_tokens.labels(m, src)
                self.cost.labels(m, src)
            slo = self._slos.get(m)
            if slo is None:
                continue
            for name, target in (("ttft", slo.ttft_s), ("tpot", slo.tpot_s)):
                self.slo_target.labels(m, name).set(target)
                self.slo_objective.labels(m, name).set(slo.objective)
                for result in ("met", "missed"):
                    self.slo_requests.labels(m, name, result)

    def count_slo(self, model: str, *, ttft_s: float | None, tpot_s: float | None) -> None:
        """Count one successful request as meeting or missing each of its model's targets."""
        slo = self._slos.get(model)
        if slo is None:
            return
        for name, value, target in (("ttft", ttft_s, slo.ttft_s), ("tpot", tpot_s, slo.tpot_s)):
            if value is not None:
                self.slo_requests.labels(model, name, "met" if value <= target else "missed").inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)
