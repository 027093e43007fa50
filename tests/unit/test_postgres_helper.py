"""The throwaway PostgreSQL server of the tests (:mod:`tests.postgres`): where it cannot run, the
reason says why and what to install; where it runs, it is stopped (that process) at the end."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import postgres


def test_not_root_is_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres, "bin_dir", lambda: Path("/usr/lib/postgresql/15/bin"))
    monkeypatch.setattr(postgres.os, "geteuid", lambda: 1000)
    reason = postgres.unavailable()
    assert reason is not None and "root" in reason and "make test" in reason


def test_missing_binaries_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres, "bin_dir", lambda: None)
    reason = postgres.unavailable()
    assert reason is not None
    assert "postgresql" in reason and "tools/debian-packages.txt" in reason and "psycopg" in reason


def test_the_newest_server_is_taken(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for version in ("9.6", "15", "13"):
        b = tmp_path / version / "bin"
        b.mkdir(parents=True)
        (b / "initdb").touch()
        (b / "postgres").touch()
    (tmp_path / "17" / "bin").mkdir(parents=True)  # a client only: no server
    monkeypatch.setattr(postgres, "LIB", tmp_path)
    assert postgres.bin_dir() == tmp_path / "15" / "bin"


@pytest.mark.postgres
def test_a_server_starts_and_stops() -> None:
    reason = postgres.unavailable()
    if reason is not None:
        pytest.skip(reason)
    server = postgres.PostgresServer.start()
    try:
        url = server.create_database("probe")
        assert url.startswith("postgresql+psycopg://postgres@/probe?host=")
        assert server.process.poll() is None
    finally:
        server.stop()
    assert server.process.returncode == 0  # a clean (fast) shutdown
    assert not server.root.exists()
