"""``ogref serve``: start the console service — migrate the database, import a site file when
asked, load (or make) the service's signing key, make sure an administrator can get in, and
serve the API on uvicorn: on TCP for agents and booted systems, on a UNIX socket for a console
on the same host (a lab), on both at once from one event loop, with the engine's housekeeping
every second.

``ogref site import FILE`` and ``ogref site export`` read and write the database's site
configuration as site YAML (:mod:`.site_io`) without starting the service.

Here only: arguments, start-up and shutdown.  What the service does is :mod:`.app` and
:mod:`.engine`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ogref import logs

if TYPE_CHECKING:
    from ogref.service.db import Database

log = logging.getLogger("ogref.service")

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

    from ogref.service import db
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


@dataclass(frozen=True)
class Options:
    """What ``serve`` was given, beyond where to listen."""

    state: Path
    db: str | None = None
    site: Path | None = None
    reimport: bool = False
    admin_token_file: Path | None = None
    admin_password_file: Path | None = None
    server_public_file: Path | None = None
    heartbeat_timeout: float = 15.0
    command_timeout: float = 3600.0
    course: Path | None = None


def build(a: Options) -> tuple[Any, Any]:
    """The engine and the application from the options."""
    from ogref.service import db
    from ogref.service.app import create_app
    from ogref.service.db import Database
    from ogref.service.engine import Engine
    from ogref.service.keys import load_or_create_server_key
    from ogref.service.migrations import upgrade
    from ogref.service.site_io import import_site
    from ogref.site import read_yaml, site_part

    a.state.mkdir(parents=True, exist_ok=True)
    url = a.db or f"sqlite:///{a.state / 'oglab.db'}"
    upgrade(url)
    database = Database(url)
    if a.site is not None:
        with database.reading() as s:
            empty = s.query(db.Computer).first() is None
        if empty or a.reimport:
            with database.transaction() as s:
                import_site(s, site_part(read_yaml(a.site))[0], source=str(a.site))
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
    app = create_app(engine, key)
    app.state.course = a.course  # a course exercise's directory (ogsim course), or None
    return engine, app


def by_socket(main: Any, ogserver: Any, ogserver_ports: set[int]) -> Any:
    """One ASGI application for uvicorn: requests that came in on an ``--ogserver-listen``
    socket (its local port) go to the ogServer facade, the rest (and the lifespan) to ours."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        server = scope.get("server")
        if scope["type"] == "http" and server and server[1] in ogserver_ports:
            await ogserver(scope, receive, send)
        else:
            await main(scope, receive, send)

    return app


async def _serve(
    engine: Any, app: Any, sockets: list[socket.socket], agent_sockets: list[socket.socket]
) -> None:
    import uvicorn

    if agent_sockets:
        from ogref.service.compat.agent import OgClientPort

        port = OgClientPort(engine)
        for sock in agent_sockets:
            await port.start(sock)

    # SIGTERM / SIGINT: uvicorn stops accepting, the app's lifespan ends (a last flush)
    config = uvicorn.Config(app, log_level="warning", timeout_keep_alive=30, lifespan="on")
    await uvicorn.Server(config).serve(sockets=sockets)


def serve(
    state: Path = typer.Option(
        Path("/var/lib/oglab/service"),
        help="state directory: the SQLite database (by default) and the service's signing key",
    ),
    db_url: str = typer.Option(
        "",
        "--db",
        help="database URL (default: sqlite:///STATE/oglab.db); "
        "postgresql+psycopg://user:password@host/dbname for PostgreSQL",
    ),
    site: Path | None = typer.Option(None, help="site YAML to import into an empty database"),
    reimport: bool = typer.Option(False, help="import --site even if the database is not empty"),
    listen: list[str] = typer.Option([], help="IP:PORT for agents and consoles (repeat)"),
    ogserver_listen: list[str] = typer.Option(
        [],
        help="IP:PORT where ogServer's REST API is spoken, for ogCLI and ogCp (repeat; "
        "OpenGnSys uses port 8888; docs/opengnsys-compat.md)",
    ),
    ogclient_listen: list[str] = typer.Option(
        [],
        help="IP:PORT where ogClient agents connect (ogServer's agent protocol, port 8889; "
        "UNAUTHENTICATED: a client is known by its address; docs/security.md)",
    ),
    console: Path | None = typer.Option(None, help="UNIX socket for a console on this host"),
    admin_token_file: Path | None = typer.Option(None, help="write a new admin API token here"),
    admin_password_file: Path | None = typer.Option(None, help="set admin's password from a file"),
    server_public_file: Path | None = typer.Option(None, help="write the key agents pin here"),
    heartbeat_timeout: float = typer.Option(
        15.0, help="seconds of silence before a computer is off"
    ),
    command_timeout: float = typer.Option(3600.0, help="seconds before a command is given up"),
    log_level: str = typer.Option("", help="debug, info, warning, error (default: info)"),
    log_format: str = typer.Option("", help="text or json (JSON lines)"),
    print_openapi: bool = typer.Option(False, "--openapi", help="print the API document and exit"),
    course: Path | None = typer.Option(
        None, help="a course exercise's directory (ogsim course writes it): shown at /ui/course"
    ),
) -> None:
    """Serve the console API: agents on --listen, a local console on --console."""  # fmt: skip
    if print_openapi:
        print(openapi_text(), end="")
        return
    if not listen and console is None and not ogserver_listen and not ogclient_listen:
        raise typer.BadParameter("nothing to serve: give --listen and/or --console")
    try:
        logs.configure(log_level or None, log_format or None)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    options = Options(
        state, db_url or None, site, reimport, admin_token_file, admin_password_file,
        server_public_file, heartbeat_timeout, command_timeout, course,
    )  # fmt: skip
    engine, app = build(options)
    sockets = [_tcp(x) for x in listen]
    if ogserver_listen:
        from ogref.service.compat.rest import create_ogserver_app

        compat = [_tcp(x) for x in ogserver_listen]
        ports = {int(sock.getsockname()[1]) for sock in compat}
        app = by_socket(app, create_ogserver_app(engine), ports)
        sockets += compat
        listen = listen + [f"{x} (ogServer API)" for x in ogserver_listen]
    agent_sockets = [_tcp(x) for x in ogclient_listen]
    listen = listen + [f"{x} (ogClient agents)" for x in ogclient_listen]
    if console is not None:
        sockets.append(_unix(console))
    log.info("serving on %s", ", ".join(listen + ([str(console)] if console else [])))
    print(f"serving on {', '.join(listen + ([str(console)] if console else []))}", flush=True)
    asyncio.run(_serve(engine, app, sockets, agent_sockets))


site_app = typer.Typer(
    help="the service database's site configuration as site YAML (import/export)",
    no_args_is_help=True,
)

_DB_HELP = "database URL (default: sqlite:///STATE/oglab.db)"


def _url(state: Path, db_url: str) -> str:
    if db_url:
        return db_url
    state.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{state / 'oglab.db'}"


@site_app.command("import")
def site_import(
    file: Path = typer.Argument(
        ..., help="site or scenario YAML (a scenario's other keys are ignored)"
    ),
    state: Path = typer.Option(
        Path("/var/lib/oglab/service"), help="the service's state directory"
    ),
    db_url: str = typer.Option("", "--db", help=_DB_HELP),
) -> None:
    """Make the database's configuration that of FILE (history, users and credentials are kept)."""  # fmt: skip
    from ogref.service.db import Database
    from ogref.service.migrations import upgrade
    from ogref.service.site_io import import_site
    from ogref.site import read_yaml, site_part

    data, _extra = site_part(read_yaml(file))
    url = _url(state, db_url)
    upgrade(url)
    database = Database(url)
    try:
        with database.transaction() as s:
            site = import_site(s, data, source=str(file))
    finally:
        database.close()
    print(f"imported {file}: {len(site.classrooms)} classrooms, {len(site.computers)} computers, "
          f"{len(site.operations)} operations")  # fmt: skip


@site_app.command("export")
def site_export(
    state: Path = typer.Option(
        Path("/var/lib/oglab/service"), help="the service's state directory"
    ),
    db_url: str = typer.Option("", "--db", help=_DB_HELP),
    output: Path | None = typer.Option(None, "-o", "--output", help="write here (default: stdout)"),
) -> None:
    """Write the database's configuration as site YAML."""  # fmt: skip
    import yaml

    from ogref.service.db import Database
    from ogref.service.migrations import upgrade
    from ogref.service.site_io import export_site

    url = _url(state, db_url)
    upgrade(url)
    database = Database(url)
    try:
        with database.reading() as s:
            text = yaml.safe_dump(export_site(s), sort_keys=False, allow_unicode=True)
    finally:
        database.close()
    if output is None:
        print(text, end="")
    else:
        output.write_text(text)


def openapi_text() -> str:
    """The API document (``docs/openapi.json``) of an application over an empty database."""
    import tempfile

    from ogref.service.app import create_app, openapi
    from ogref.service.db import Database
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


if __name__ == "__main__":  # how the labs start it: ``python -m ogref.service.main --state …``
    typer.run(serve)
