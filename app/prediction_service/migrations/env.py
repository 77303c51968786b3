"""Alembic environment: runs on the connection migrate.py hands over, inside its one transaction."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=None,
    transactional_ddl=True,
    transaction_per_migration=False,  # all revisions of a run commit together, or none does
    on_version_apply=context.config.attributes.get("on_version_apply"),
)
with context.begin_transaction():
    context.run_migrations()
