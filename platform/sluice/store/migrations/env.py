"""Alembic environment: runs on the connection Sluice hands it (see sluice.store.db)."""

from alembic import context

from sluice.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through sluice.store.db.upgrade")
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
