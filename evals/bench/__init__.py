"""Eval benchmarks, scripts that print figures and write JSON.

``python -m evals.bench.starter``: the starter suite, cold and cached.
"""
