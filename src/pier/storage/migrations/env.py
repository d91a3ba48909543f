"""Alembic environment: pier runs migrations itself at start (storage/migrate.py) on its own connection."""

from alembic import context

from pier.storage.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
