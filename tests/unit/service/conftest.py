"""Fixtures of the service database tests: a migrated in-memory database, a migrated file
database (WAL, several connections), and a small site to fill them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ogref.service.db import Database
from ogref.service.migrations import upgrade
from ogref.service.site_io import import_site

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
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database file the migrations created (once per run; test_db checks them)."""
    path = tmp_path_factory.mktemp("db") / "migrated.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def database(migrated: Path) -> Iterator[Database]:
    """An empty, migrated in-memory database (one connection: single-threaded use)."""
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
