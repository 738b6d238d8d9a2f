"""Gavel evals (see the issues that build it)."""
