"""The database's schema migrations (Alembic), run from code: :func:`upgrade` brings a database
to the newest schema (the service calls it when it starts); no ``alembic.ini`` is needed.

The revisions are in ``versions/`` (``0001_initial`` creates every table of
:mod:`ogref.service.db`); ``env.py`` opens SQLite through :func:`ogref.service.db.make_engine`
and renders later ALTERs as SQLite batch operations.  To write a new revision, change the models,
then let Alembic compare them with a database at head (and read what it wrote)::

    python -c "from alembic import command; from ogref.service.migrations import config, upgrade
    upgrade('sqlite:///dev.db')
    command.revision(config('sqlite:///dev.db'), 'what changed', autogenerate=True, rev_id='0002')"

Not here: the tables themselves (:mod:`ogref.service.db`), data import (:mod:`.site_io`).

What is stored where: Alembic keeps the applied revision in the table ``alembic_version``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from ogref.service.db import make_engine

HERE = Path(__file__).resolve().parent


def config(url: str | Engine) -> Config:
    """An Alembic configuration for ``url`` (or an open engine, whose connection it uses)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    if isinstance(url, str):
        # '%' is ConfigParser interpolation; a password may hold one
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    else:
        cfg.set_main_option(
            "sqlalchemy.url", url.url.render_as_string(hide_password=False).replace("%", "%%")
        )
        cfg.attributes["engine"] = url
    return cfg


def upgrade(url: str | Engine, revision: str = "head") -> None:
    """Migrate the database at ``url`` (or behind ``engine``) to ``revision``."""
    command.upgrade(config(url), revision)


def head() -> str:
    """The newest revision of the code."""
    script = ScriptDirectory.from_config(config("sqlite://"))
    rev = script.get_current_head()
    assert rev is not None
    return rev


def current(url: str | Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    engine = make_engine(url) if isinstance(url, str) else url
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        if isinstance(url, str):
            engine.dispose()
