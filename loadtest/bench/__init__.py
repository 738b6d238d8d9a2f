"""Benchmarks: scripts that print figures and write JSON, apart from the library code.

- ``python -m loadtest.bench.overhead``: the Gavel stack against bare vLLM;
- ``python -m loadtest.bench.crosscheck``: our Locust sweep against vLLM's benchmark;
- ``python -m loadtest.bench.capture_loss``: what a ``kill -9`` of the ingress loses.

They share one vLLM-benchmark harness and one way to make keys (``_harness``).
"""
