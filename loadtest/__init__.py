"""Gavel loadtest (see the issues that build it)."""
