"""Alembic's environment for Gavel: migrations run on the connection the caller passes in
``config.attributes["connection"]`` (see :mod:`serving.store._revisions`); never offline."""

from __future__ import annotations

from alembic import context

from serving.store._schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
