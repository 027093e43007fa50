"""Alembic's environment for the service database: online against an engine the caller gives
(``config.attributes["engine"]``) or one opened by :func:`ogref.service.db.make_engine`,
offline (``--sql``) as a script for the URL's dialect."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, Engine

from ogref.service.db import Base, make_engine

config = context.config
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


def _run(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    given: Engine | None = config.attributes.get("engine")
    engine = (
        given if given is not None else make_engine(str(config.get_main_option("sqlalchemy.url")))
    )
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        if given is None:
            engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
