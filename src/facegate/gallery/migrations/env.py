"""Alembic environment: facegate runs migrations itself, on the connection it passes in
(``config.attributes["connection"]``); there is no alembic.ini to edit."""

from __future__ import annotations

from alembic import context

from facegate.gallery.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copy
)
with context.begin_transaction():
    context.run_migrations()
