"""Benchmarks of the judging job (scripts that print figures and write JSON)."""
