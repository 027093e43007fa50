"""Fixtures of the service database tests: a small site, and databases on both backends.

``backend`` is parametrized: a test asking for ``database``, ``site_db``, ``db_url`` or
``empty_url`` runs once on SQLite and once on PostgreSQL (marked ``postgres``; a throwaway server
from Debian's binaries, started once per run by :mod:`tests.postgres`, skipped with the reason
and what to install where it cannot run).  SQLite: a migrated in-memory database, a migrated file
(WAL, several connections).  PostgreSQL: one migrated database shared by the tests, emptied
(every row deleted; sequences go on) when a test asks for it; a second one in the same test is
a new database copied from one the migrations created.  A test must not change the shared
database's schema: it migrates an ``empty_url`` of its own instead."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ogref.service.db import Base, Database
from ogref.service.migrations import upgrade
from ogref.service.site_io import import_site
from tests.postgres import PostgresServer, unavailable

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
TEMPLATE = "migrated"
SHARED = "shared"
_names = itertools.count(1)

SITE: dict[str, Any] = {
    "repositories": [
        {
            "name": "repo",
            "address": "10.0.0.1",
            "images": [{"name": "win10", "data": "8GiB", "stored": "4GiB", "os": "Windows 10"}],
        }
    ],
    "engine": {"RESTOREPROTOCOLNOTCACHE": "UNICAST"},
    "classrooms": [
        {
            "name": "aula1",
            "org_unit": "ou1",
            "subnet": "10.0.1.0/24",
            "defaults": {"cache": {"size": "20GiB", "free": "16GiB"}},
            "groups": [{"name": "fila1", "members": "pc01-pc02"}],
            "computers": {"count": 4},
        },
        {
            "name": "aula2",
            "org_unit": "ou1",
            "subnet": "10.0.2.0/24",
            "multicast": "9002:full-duplex:239.194.2.1:70M:10:60",
            "computers": [{"name": "lab01"}, {"name": "lab02", "ip": "10.0.2.50/24"}],
        },
    ],
    "operations": [{"restore": {"image": "win10", "method": "TORRENT-CACHE"}}],
}


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server for the whole run, holding database :data:`TEMPLATE`
    that the migrations created; stopped (that server only) at the end."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    server = PostgresServer.start()
    try:
        upgrade(server.create_database(TEMPLATE))
        server.create_database(SHARED, TEMPLATE)
        yield server
    finally:
        server.stop()


class PgDatabases:
    """The databases a test uses on the server; those it made are dropped when it ends."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.names: list[str] = []
        self.shared = False

    def new(self, migrated: bool = True) -> str:
        """A migrated database without rows (the shared one, emptied, the first time), or an
        empty one (never migrated); its URL."""
        if migrated and not self.shared:
            self.shared = True
            tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
            self.server.delete_rows(SHARED, tables)
            return self.server.url(SHARED)
        name = f"t{next(_names)}"
        self.names.append(name)
        return self.server.create_database(name, TEMPLATE if migrated else None)

    def drop(self) -> None:
        for name in self.names:
            self.server.drop_database(name)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql``: the tests using it run on both."""
    return str(request.param)


@pytest.fixture
def pg_databases(backend: str, request: pytest.FixtureRequest) -> Iterator[PgDatabases | None]:
    """On PostgreSQL, where the test makes its databases (None on SQLite)."""
    if backend != "postgresql":
        yield None
        return
    made = PgDatabases(request.getfixturevalue("postgres"))
    yield made
    made.drop()


@pytest.fixture
def empty_url(pg_databases: PgDatabases | None, tmp_path: Path) -> str:
    """The URL of an empty database (never migrated)."""
    if pg_databases is not None:
        return pg_databases.new(migrated=False)
    return f"sqlite:///{tmp_path / 'empty.db'}"


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database file the migrations created (once per run; test_db checks them)."""
    path = tmp_path_factory.mktemp("db") / "migrated.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def database(
    pg_databases: PgDatabases | None, request: pytest.FixtureRequest
) -> Iterator[Database]:
    """An empty, migrated database: SQLite in memory (one connection: single-threaded use),
    or a fresh PostgreSQL database."""
    if pg_databases is not None:
        d = Database(pg_databases.new())
        yield d
        d.close()
        return
    migrated: Path = request.getfixturevalue("migrated")
    d = Database("sqlite://")
    with d.engine.connect() as conn:
        source = sqlite3.connect(migrated)
        try:
            source.backup(conn.connection.driver_connection)  # type: ignore[arg-type]
        finally:
            source.close()
    yield d
    d.close()


@pytest.fixture
def site_db(database: Database) -> Database:
    """The in-memory database holding :data:`SITE`."""
    with database.transaction() as s:
        import_site(s, SITE, source="SITE")
    return database


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A migrated database file holding :data:`SITE` (nothing left open)."""
    path = tmp_path / "ogref.db"
    upgrade(f"sqlite:///{path}")
    d = Database(f"sqlite:///{path}")
    with d.transaction() as s:
        import_site(s, SITE, source="SITE")
    d.close()
    return path


@pytest.fixture
def db_url(pg_databases: PgDatabases | None, request: pytest.FixtureRequest) -> str:
    """The URL of a migrated database holding :data:`SITE` (nothing left open), for tests that
    open it several times or from several threads: an SQLite file or a PostgreSQL database."""
    if pg_databases is None:
        path: Path = request.getfixturevalue("db_path")
        return f"sqlite:///{path}"
    url = pg_databases.new()
    d = Database(url)
    with d.transaction() as s:
        import_site(s, SITE, source="SITE")
    d.close()
    return url
