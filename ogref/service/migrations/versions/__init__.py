"""Alembic revisions of the service database, oldest first (Alembic skips this file)."""
