"""Alembic's environment for the service database: online against an engine the caller gives
(``config.attributes["engine"]``) or one opened by :func:`ogref.service.db.make_engine`,
offline (``--sql``) as a script for the URL's dialect.

On SQLite the migration runs with foreign keys off (a batch operation copies a table, drops the
old one and renames the copy: with foreign keys on, the drop would cascade into the tables that
refer to it) and checks them all before it commits.

Services that share a database and start together migrate it once: the migration's transaction
takes the database's write lock (SQLite: ``BEGIN IMMEDIATE``) or an advisory lock (PostgreSQL:
:data:`MIGRATION_LOCK`) before Alembic reads the revision, so the others wait, then find it at
head."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, Engine, text

from ogref.service.db import Base, make_engine

config = context.config
MIGRATION_LOCK = 0x6F67726566_0C  # pg_advisory_xact_lock key: "ogref" + issue 12
target_metadata = Base.metadata


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things: later revisions copy tables
        compare_type=True,
        **kwargs,  # type: ignore[arg-type]
    )


def run_offline() -> None:
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _foreign_keys(connection: Connection, on: bool) -> None:
    """Switch SQLite's foreign keys (outside any transaction, where the pragma works)."""
    raw = connection.connection.driver_connection
    assert raw is not None
    raw.execute(f"PRAGMA foreign_keys = {'ON' if on else 'OFF'}")


def run_online() -> None:
    given: Engine | None = config.attributes.get("engine")
    url = str(config.get_main_option("sqlalchemy.url"))
    engine = given if given is not None else make_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.connect() as connection:
            if sqlite:
                _foreign_keys(connection, False)
            try:
                with connection.begin():
                    if engine.dialect.name == "postgresql":
                        connection.execute(
                            text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                        )
                    _configure(connection=connection)
                    with context.begin_transaction():  # inside ours: commits nothing itself
                        context.run_migrations()
                    if sqlite:
                        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                        if broken:
                            raise RuntimeError(f"migration broke foreign keys: {broken[:5]}")
            finally:
                if sqlite:
                    _foreign_keys(connection, True)
    finally:
        if given is None:
            engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
