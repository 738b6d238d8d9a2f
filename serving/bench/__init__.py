"""Benchmarks of the serving layer's store (scripts that print figures and write JSON)."""
