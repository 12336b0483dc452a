"""Alembic environment. carebot passes an open connection (see carebot.store.database)."""

from __future__ import annotations

from alembic import context

from carebot.store.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "Run migrations with 'carebot db upgrade' (it opens the configured database); "
        "plain 'alembic upgrade' is not wired to carebot's config."
    )
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
