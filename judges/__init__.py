"""Gavel judges (see the issues that build it)."""
