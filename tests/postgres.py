"""A throwaway PostgreSQL server for the tests, from Debian's binaries.

:func:`unavailable` says why one cannot be started here (None: it can): PostgreSQL refuses to run
as root, so the server runs as the unprivileged ``postgres`` user Debian's package creates, which
only root can switch to.  :meth:`PostgresServer.start` runs ``initdb`` into a fresh temporary
directory and ``postgres`` on a UNIX socket in that directory (no TCP port: nothing else on the
machine can reach it or collide with it; trust authentication, the directory is the
``postgres`` user's alone), with durability off (``fsync``, ``synchronous_commit``,
``full_page_writes``: the data dies with the test run anyway).  :meth:`PostgresServer.stop`
ends exactly that server, by the pid of the process it started (SIGINT: PostgreSQL's fast
shutdown), and removes the directory.

Not here: the pytest fixtures (``tests/unit/service/conftest.py``) and what is tested.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

INSTALL = (
    "install Debian's `postgresql` package (listed in tools/debian-packages.txt: "
    "`make deps` as root) and `pip install 'psycopg[binary]'` (the service extra)"
)
USER = "postgres"
LIB = Path("/usr/lib/postgresql")
PORT = 5432  # only names the socket file, in a directory of its own
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
LOCK_TIMEOUT_S = 10.0


def bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/VERSION/bin`` holding ``initdb`` and ``postgres``."""
    found = [
        p for p in LIB.glob("*/bin") if (p / "initdb").is_file() and (p / "postgres").is_file()
    ]
    version = lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)]  # noqa: E731
    return max(found, key=version, default=None)


def unavailable() -> str | None:
    """Why a throwaway server cannot be started here (a skip reason naming what to install),
    or None."""
    if bin_dir() is None:
        return f"no PostgreSQL server under /usr/lib/postgresql/*/bin: {INSTALL}"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return f"psycopg is not installed: {INSTALL}"
    if os.geteuid() != 0:
        return (
            f"PostgreSQL refuses to run as root and only root can run it as the {USER!r} user: "
            "run the tests as root (`make test`)"
        )
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return f"no {USER!r} user (Debian's postgresql package creates it): {INSTALL}"
    return None


@dataclass
class PostgresServer:
    """A running throwaway server: its directory (data, socket, log) and process."""

    root: Path
    process: subprocess.Popen[bytes]

    @property
    def socket_dir(self) -> Path:
        return self.root

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @classmethod
    def start(cls) -> PostgresServer:
        """initdb and start a server (see the module's docstring); waits until it accepts
        connections."""
        reason = unavailable()
        if reason is not None:
            raise RuntimeError(reason)
        binaries = bin_dir()
        assert binaries is not None
        user = pwd.getpwnam(USER)
        # the user must reach the directory: a private TMPDIR would hide it
        base = Path(tempfile.gettempdir())
        if not base.stat().st_mode & 0o001:
            base = Path("/tmp")
        root = Path(tempfile.mkdtemp(prefix="oglab-pg-", dir=base))
        os.chown(root, user.pw_uid, user.pw_gid)
        env = {"PATH": os.defpath, "LC_ALL": "C", "HOME": str(root)}
        try:
            subprocess.run(
                [
                    str(binaries / "initdb"),
                    "--pgdata", str(root / "data"),
                    "--username", USER,
                    "--auth", "trust",
                    "--encoding", "UTF8",
                    "--no-locale",
                    "--no-sync",
                ],
                check=True,
                capture_output=True,
                user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd=root, env=env,
            )  # fmt: skip
            log = (root / "postgres.log").open("wb")
            try:
                process = subprocess.Popen(
                    [
                        str(binaries / "postgres"),
                        "-D", str(root / "data"),
                        "-k", str(root),
                        "-p", str(PORT),
                        "-c", "listen_addresses=",
                        "-c", "fsync=off",
                        "-c", "synchronous_commit=off",
                        "-c", "full_page_writes=off",
                        "-c", "max_connections=60",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a Ctrl-C reaches the tests, which stop it
                    user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd=root, env=env,
                )  # fmt: skip
            finally:
                log.close()
        except BaseException as exc:
            output = getattr(exc, "stderr", b"") or b""
            shutil.rmtree(root, ignore_errors=True)
            if output:
                raise RuntimeError(f"initdb failed: {output.decode(errors='replace')}") from exc
            raise
        server = cls(root, process)
        try:
            server._wait_ready()
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited ({self.process.returncode}): {self._tail()}")
            try:
                psycopg.connect(self._conninfo("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not start: {self._tail()}") from None
                time.sleep(0.05)

    def _tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def _conninfo(self, dbname: str) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(host=str(self.socket_dir), port=PORT, user=USER, dbname=dbname)

    def url(self, dbname: str) -> str:
        """The SQLAlchemy URL of database ``dbname`` on this server."""
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql+psycopg://{USER}@/{dbname}?host={host}&port={PORT}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self._conninfo("postgres"), autocommit=True) as conn:
            if conn.info.server_version < 150000:  # STRATEGY is PostgreSQL 15's
                sql = sql.replace(" STRATEGY FILE_COPY", "")
            conn.execute(sql.encode())

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database ``name`` (empty, or a copy of ``template``, which nobody may be
        connected to); its URL."""
        sql = f'CREATE DATABASE "{name}"'
        if template is not None:
            sql += f' TEMPLATE "{template}" STRATEGY FILE_COPY'  # a file copy: quicker than WAL for a small database
        self._admin(sql)
        return self.url(name)

    def delete_rows(self, name: str, tables: Sequence[str]) -> None:
        """Empty ``tables`` (in that order) of database ``name`` in one transaction: much
        quicker than a new database (CREATE DATABASE waits for a checkpoint).  Waits at most
        :data:`LOCK_TIMEOUT_S` for a session still holding a lock on them."""
        import psycopg

        with psycopg.connect(self._conninfo(name)) as conn:
            conn.execute(f"SET LOCAL lock_timeout = '{int(LOCK_TIMEOUT_S * 1000)}ms'".encode())
            for table in tables:
                conn.execute(f'DELETE FROM "{table}"'.encode())

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, ending the connections still open to it."""
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Stop this server (fast shutdown: open sessions are ended) and remove its directory."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
                try:
                    self.process.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self.process.send_signal(signal.SIGQUIT)  # immediate shutdown
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.process.wait(STOP_TIMEOUT_S)
                    if self.process.poll() is None:
                        self.process.kill()
                        self.process.wait()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
