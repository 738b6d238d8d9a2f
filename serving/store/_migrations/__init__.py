"""Alembic's migration scripts for Gavel's store (one per schema change, from a baseline)."""
