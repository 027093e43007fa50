"""``ogref serve``: start the console service — migrate the database, import a site file when
asked, load (or make) the service's signing key, make sure an administrator can get in, and
serve the API on uvicorn: on TCP for agents and booted systems, on a UNIX socket for a console
on the same host (a lab), on both at once from one event loop, with the engine's housekeeping
every second.

Here only: arguments, start-up and shutdown.  What the service does is :mod:`.app` and
:mod:`.engine`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from pathlib import Path
from typing import Any

from ogref.service import db
from ogref.service.db import Database

SERVICE_PORT = 2008  # agents and consoles (OpenGnSys's ogAdmServer port)
OS_PORT = 8781  # where a booted system reports ``POST /api/os`` (OGAgent's stand-in)


def _tcp(address: str) -> socket.socket:
    host, port = address.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    return sock


def _unix(path: Path) -> socket.socket:
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    path.chmod(0o600)  # the console socket: root (the lab) only
    return sock


def ensure_admin(database: Database, token_file: Path | None, password_file: Path | None) -> None:
    """An ``admin`` user exists; with ``token_file`` a new API token of it is written there
    (mode 0600), with ``password_file`` its password is set from that file."""
    import secrets

    from sqlalchemy import select

    from ogref.service.users import hash_password, new_api_token

    with database.transaction() as s:
        admin = s.scalar(select(db.User).where(db.User.name == "admin"))
        if admin is None:
            admin = db.User(
                name="admin", role="admin", password_hash=hash_password(secrets.token_urlsafe(24))
            )
            s.add(admin)
            s.flush()
        if password_file is not None:
            admin.password_hash = hash_password(password_file.read_text().strip())
        if token_file is not None:
            token, digest = new_api_token()
            s.add(db.ApiToken(token_hash=digest, user_id=admin.id, label=f"file {token_file}"))
            fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(token + "\n")


def build(a: argparse.Namespace) -> tuple[Any, Any]:
    """The engine and the application from the parsed arguments."""
    from ogref.service.app import create_app
    from ogref.service.engine import Engine
    from ogref.service.keys import load_or_create_server_key
    from ogref.service.migrations import upgrade
    from ogref.service.site_io import import_site
    from ogref.site import read_yaml

    a.state.mkdir(parents=True, exist_ok=True)
    url = a.db or f"sqlite:///{a.state / 'oglab.db'}"
    upgrade(url)
    database = Database(url)
    if a.site is not None:
        with database.reading() as s:
            empty = s.query(db.Computer).first() is None
        if empty or a.reimport:
            with database.transaction() as s:
                import_site(s, read_yaml(a.site), source=str(a.site))
    ensure_admin(database, a.admin_token_file, a.admin_password_file)
    key = load_or_create_server_key(a.state / "server.key")
    if a.server_public_file is not None:
        from ogref.service.keys import public_key_text, public_raw

        a.server_public_file.write_text(public_key_text(public_raw(key)) + "\n")
    engine = Engine(
        database,
        heartbeat_timeout=a.heartbeat_timeout,
        command_timeout=a.command_timeout,
        server_key=key,
    )
    return engine, create_app(engine, key)


async def _serve(engine: Any, app: Any, sockets: list[socket.socket]) -> None:
    import uvicorn

    # SIGTERM / SIGINT: uvicorn stops accepting, the app's lifespan ends (a last flush)
    config = uvicorn.Config(app, log_level="warning", timeout_keep_alive=30, lifespan="on")
    await uvicorn.Server(config).serve(sockets=sockets)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ogref serve", description=__doc__)
    p.add_argument("--state", type=Path, default=Path("/var/lib/oglab/service"),
                   help="state directory: the SQLite database (by default) and the signing key")  # fmt: skip
    p.add_argument("--db", help="database URL (default: sqlite:///STATE/oglab.db); "
                   "postgresql+psycopg://user@host/db for PostgreSQL")  # fmt: skip
    p.add_argument("--site", type=Path, help="site YAML to import into an empty database")
    p.add_argument("--reimport", action="store_true", help="import --site even if not empty")
    p.add_argument("--listen", action="append", default=[], help="IP:PORT for agents (repeat)")
    p.add_argument("--console", type=Path, help="UNIX socket for a console on this host")
    p.add_argument("--admin-token-file", type=Path, help="write a new admin API token here")
    p.add_argument("--admin-password-file", type=Path, help="set admin's password from a file")
    p.add_argument("--server-public-file", type=Path, help="write the key agents pin here")
    p.add_argument("--heartbeat-timeout", type=float, default=15.0)
    p.add_argument("--command-timeout", type=float, default=3600.0)
    p.add_argument("--openapi", action="store_true", help="print the API document and exit")
    a = p.parse_args(argv)
    if a.openapi:
        print(openapi_text(), end="")
        return 0
    if not a.listen and a.console is None:
        p.error("nothing to serve: give --listen and/or --console")
    engine, app = build(a)
    sockets = [_tcp(x) for x in a.listen]
    if a.console is not None:
        sockets.append(_unix(a.console))
    print(f"serving on {', '.join(a.listen + ([str(a.console)] if a.console else []))}",
          flush=True)  # fmt: skip
    asyncio.run(_serve(engine, app, sockets))
    return 0


def openapi_text() -> str:
    """The API document (``docs/openapi.json``) of an application over an empty database."""
    import tempfile

    from ogref.service.app import create_app, openapi
    from ogref.service.engine import Engine
    from ogref.service.keys import load_or_create_server_key
    from ogref.service.migrations import upgrade

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/o.db"
        upgrade(url)
        database = Database(url)
        try:
            app = create_app(Engine(database), load_or_create_server_key(Path(tmp) / "k"))
            return openapi(app)
        finally:
            database.close()


if __name__ == "__main__":
    sys.exit(main())
