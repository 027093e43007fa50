"""The console service's database: the tables (SQLAlchemy 2, typed declarative models) for what
OpenGnSys's console keeps, and the engine and sessions for SQLite (default) or PostgreSQL.

:func:`make_engine` opens ``sqlite:///path`` with write-ahead logging, foreign keys on, a busy
timeout and ``BEGIN IMMEDIATE`` transactions (a writer waits for the lock up front instead of
failing half-way with "database is locked"), safe for several threads.  PostgreSQL
(``postgresql+psycopg://…``, or ``postgresql://…`` meaning the same) goes through psycopg 3; text
parameters holding NUL, which PostgreSQL's text cannot store, have it replaced by U+FFFD.  Any
other URL is handed to SQLAlchemy as is.  Only portable types are used (JSON, not JSONB;
timestamps are timezone-aware UTC through :class:`UTCDateTime`); where the two differ (VARCHAR
lengths and 32-bit INTEGER enforced by PostgreSQL only, row locks), :mod:`.store` fits values to
their columns and locks the rows a decision depends on.  The schema is created
and changed by the Alembic migrations (:mod:`ogref.service.migrations`), never by
``create_all`` at run time.

Not here: the site YAML import/export (:mod:`ogref.service.site_io`), the queries the engine
makes (:mod:`ogref.service.store`), passwords, tokens and signatures (:mod:`ogref.service.auth`:
this module only has columns for their hashes and public keys), and any decision.

What is stored where:

- ``site_settings`` (one row): the engine.cfg preset, where the site was imported from and when;
  ``engine_settings``: the site's ``engine:`` keys in order; ``site_operations``: the site's
  ``operations:`` list (console commands a scenario asks for), by index.
- ``org_units`` → ``classrooms`` (subnet, multicast and torrent session strings) →
  ``computer_groups`` (+ ``group_members``, ordered) and ``computers``.
- ``computers``: the configuration *after* inheritance (repository, hardware profile, disks and
  cache as JSON in the site's own schema, the ``hw`` mapping) and the live state the site file
  never holds: status code, last seen, the agent credential's public key and replay counter.
- ``repositories`` and ``images``: one image row per revision; the current version of a name is
  its highest revision not deleted.
- ``operations`` (id = submission sequence number) → ``operation_records`` (one per computer,
  with the command to deliver and the command-queue job fields) ; ``log_lines`` (per-computer
  tracking log, optionally tied to an operation); ``os_reports`` (a booted OS's "started").
- ``users``, ``user_classrooms``, ``user_sessions``, ``api_tokens``: console users.

History (operations, records) outlives the site's configuration: a record keeps the computer's
name when the computer is deleted.  A computer's tracking log and OS reports go with it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from ipaddress import IPv4Interface
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    make_url,
)
from sqlalchemy.engine import URL, Connection
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    sessionmaker,
    validates,
)
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

# constraint names are stable across SQLite and PostgreSQL (Alembic needs names to alter them)
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

BUSY_TIMEOUT_S = 30.0
"""How long an SQLite connection waits for another writer before it gives up."""

NAME = 100  # computer, classroom, group, org unit, repository, user names (OpenGnSys: 100)
IMAGE_NAME = 255
ROLES = ("admin", "teacher")
OPERATION_STATES = ("queued", "running", "done")
RECORD_ROLES = ("target", "source")
RECORD_STATUSES = ("not_started", "ok", "failed", "crashed", "refused")
IMAGE_KINDS = ("monolithic", "diff")


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


def from_epoch(t: float) -> datetime:
    """A POSIX timestamp (what agents send) as a UTC datetime."""
    return datetime.fromtimestamp(t, UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite keeps no zone: values are stored
    as UTC and read back as UTC; naive datetimes are refused on the way in)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: give a timezone-aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# a 64-bit autoincrementing key; SQLite only autoincrements INTEGER PRIMARY KEY
BigId = BigInteger().with_variant(Integer(), "sqlite")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    """Declarative base: the naming convention and the service's metadata."""

    metadata = MetaData(naming_convention=NAMING)


class Created:
    """Mixin: a ``created_at`` UTC timestamp set on insert."""

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# --------------------------------------------------------------------------- site settings


class SiteSettings(Created, Base):
    """The one row of site-wide settings: the engine.cfg preset and the last import."""

    __tablename__ = "site_settings"
    __table_args__ = (CheckConstraint("id = 1", name="singleton"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False, default=1)
    engine_preset: Mapped[str] = mapped_column(String(40), default="oglab")
    source: Mapped[str] = mapped_column(String(1024), default="")
    imported_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class EngineSetting(Base):
    """One ``engine:`` key of the site (engine.cfg ``KEY=value``), applied over the preset."""

    __tablename__ = "engine_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)  # str, int or bool, as the site gives it
    position: Mapped[int] = mapped_column(Integer)


class SiteOperation(Base):
    """One entry of the site's ``operations:`` list (the console commands it asks for), as the
    site schema's mapping."""

    __tablename__ = "site_operations"

    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)


# --------------------------------------------------------------------------- the console tree


class OrgUnit(Created, Base):
    """An organisational unit (OpenGnSys: centro / unidad organizativa)."""

    __tablename__ = "org_units"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Repository(Created, Base):
    """An image repository server."""

    __tablename__ = "repositories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    address: Mapped[str] = mapped_column(String(64))
    multicast_fec: Mapped[str] = mapped_column(String(32), default="8x8/128")
    hw: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Image(Created, Base):
    """One version (revision) of an image in a repository."""

    __tablename__ = "images"
    __table_args__ = (
        UniqueConstraint("repository_id", "name", "revision"),
        CheckConstraint(_in("kind", IMAGE_KINDS), name="kind"),
        Index("ix_images_repository_name", "repository_id", "name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(IMAGE_NAME))
    revision: Mapped[int] = mapped_column(Integer, default=1)
    filesystem: Mapped[str] = mapped_column(String(16))
    data_size: Mapped[int] = mapped_column(BigInteger)
    stored_size: Mapped[int] = mapped_column(BigInteger)
    compressor: Mapped[str] = mapped_column(String(8))
    tool: Mapped[str] = mapped_column(String(16))
    checksum: Mapped[str] = mapped_column(String(64), default="")  # .full.sum: whole-file MD5
    kind: Mapped[str] = mapped_column(String(12), default="monolithic")
    base: Mapped[str] = mapped_column(String(IMAGE_NAME), default="")
    os_name: Mapped[str] = mapped_column(String(255), default="")
    torrent_piece: Mapped[int] = mapped_column(BigInteger, default=4 * 1024**2)
    format: Mapped[str] = mapped_column(String(12), default="partclone", server_default="partclone")
    added_size: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    position: Mapped[int] = mapped_column(Integer, default=0)  # order in the repository
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Classroom(Created, Base):
    """A classroom (OpenGnSys: aula) with its network parameters."""

    __tablename__ = "classrooms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    org_unit_id: Mapped[int] = mapped_column(
        ForeignKey("org_units.id", ondelete="RESTRICT"), index=True
    )
    subnet: Mapped[str] = mapped_column(String(43))
    multicast: Mapped[str] = mapped_column(String(128))  # session string PORT:DUPLEX:ADDR:…
    torrent: Mapped[str] = mapped_column(String(64))  # MODE:SECONDS
    position: Mapped[int] = mapped_column(Integer, default=0)


class ComputerGroup(Created, Base):
    """A group of computers inside a classroom."""

    __tablename__ = "computer_groups"
    __table_args__ = (UniqueConstraint("classroom_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    classroom_id: Mapped[int] = mapped_column(
        ForeignKey("classrooms.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(NAME))
    position: Mapped[int] = mapped_column(Integer, default=0)


class GroupMember(Base):
    """A group's member list, in the site's order (a computer may be listed by several groups;
    ``computers.group_id`` is the one whose settings it took)."""

    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("computer_groups.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    computer_id: Mapped[int] = mapped_column(
        ForeignKey("computers.id", ondelete="CASCADE"), index=True
    )


class Computer(Created, Base):
    """A client computer: its configuration after inheritance and its live state."""

    __tablename__ = "computers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    mac: Mapped[str] = mapped_column(String(17), index=True)
    ip: Mapped[str] = mapped_column(String(43))  # with its prefix, as the site gives it
    address: Mapped[str] = mapped_column(String(15), index=True)  # the bare IPv4 address of ip
    classroom_id: Mapped[int] = mapped_column(
        ForeignKey("classrooms.id", ondelete="CASCADE"), index=True
    )
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("computer_groups.id", ondelete="SET NULL"), index=True
    )
    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="RESTRICT"), index=True
    )
    profile: Mapped[str] = mapped_column(String(NAME), default="default")
    windows_needs_reboot: Mapped[bool] = mapped_column(Boolean, default=True)
    disks: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # site schema: DiskSpec mappings
    cache: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # site schema: CacheSpec, or none
    hw: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    position: Mapped[int] = mapped_column(Integer, default=0)  # order in its classroom
    status: Mapped[str] = mapped_column(String(8), default="OFF")  # ClientStatus code
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime())
    public_key: Mapped[bytes | None] = mapped_column(LargeBinary)  # the agent's credential
    seq: Mapped[int] = mapped_column(BigInteger, default=0)  # its last accepted request counter

    @validates("ip")
    def _address_of(self, _key: str, ip: str) -> str:
        self.address = str(IPv4Interface(ip).ip)
        return ip


# --------------------------------------------------------------------------- users


class User(Created, Base):
    """A console user: an administrator, or a teacher limited to the classrooms given."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))


class UserClassroom(Base):
    """A classroom a teacher is given."""

    __tablename__ = "user_classrooms"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    classroom_id: Mapped[int] = mapped_column(
        ForeignKey("classrooms.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class UserSession(Created, Base):
    """A signed-in browser session (the token and CSRF token; only the token's hash is kept)."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class ApiToken(Created, Base):
    """A console API token for scripts (only its hash is kept)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(NAME), default="")
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# --------------------------------------------------------------------------- operations


class Operation(Base):
    """A console command submitted over its scope; ``id`` is the submission sequence number
    (never reused: the command queue ranks operations by it)."""

    __tablename__ = "operations"
    __table_args__ = (
        CheckConstraint(_in("state", OPERATION_STATES), name="state"),
        Index("ix_operations_state_id", "state", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_index: Mapped[int | None] = mapped_column(Integer)  # index in the site's operations
    kind: Mapped[str] = mapped_column(String(16))  # restore, deploy, update_cache, create…
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    submitted_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    state: Mapped[str] = mapped_column(String(8), default="queued")
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OperationRecord(Base):
    """One computer's part of an operation: the command to deliver, its command-queue job and,
    once the agent reports, its result (``final``)."""

    __tablename__ = "operation_records"
    __table_args__ = (
        UniqueConstraint("operation_id", "computer_name"),
        CheckConstraint(_in("role", RECORD_ROLES), name="role"),
        CheckConstraint(_in("status", RECORD_STATUSES), name="status"),
        CheckConstraint("(session_address IS NULL) = (session_port IS NULL)", name="session_pair"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operation_id: Mapped[int] = mapped_column(
        ForeignKey("operations.id", ondelete="CASCADE"), index=True
    )
    computer_id: Mapped[int | None] = mapped_column(
        ForeignKey("computers.id", ondelete="SET NULL"), index=True
    )
    computer_name: Mapped[str] = mapped_column(String(NAME))  # kept if the computer goes
    role: Mapped[str] = mapped_column(String(8), default="target")  # source: a clone's MASTER
    requested: Mapped[str] = mapped_column(String(32), default="")  # method, or create/boot…
    status: Mapped[str] = mapped_column(String(12), default="not_started")
    code: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text, default="")
    method_used: Mapped[str | None] = mapped_column(String(32))
    switched: Mapped[bool | None] = mapped_column(Boolean)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    phases: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    bytes_moved: Mapped[int | None] = mapped_column(BigInteger)
    checksum_verified: Mapped[bool | None] = mapped_column(Boolean)
    stream_md5: Mapped[str | None] = mapped_column(String(32))
    os_hostname: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # a MASTER began sending
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    final: Mapped[bool] = mapped_column(Boolean, default=False)
    lost: Mapped[bool] = mapped_column(Boolean, default=False)
    command: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # what the agent gets
    reads: Mapped[str | None] = mapped_column(String(IMAGE_NAME))  # command-queue Job fields
    writes: Mapped[str | None] = mapped_column(String(IMAGE_NAME))
    session_address: Mapped[str | None] = mapped_column(String(45))
    session_port: Mapped[int | None] = mapped_column(Integer)


class LogLine(Base):
    """A line of a computer's tracking log (what OpenGnSys shows), tailed by ``id``."""

    __tablename__ = "log_lines"
    __table_args__ = (
        Index("ix_log_lines_computer_id_id", "computer_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    computer_id: Mapped[int] = mapped_column(ForeignKey("computers.id", ondelete="CASCADE"))
    operation_id: Mapped[int | None] = mapped_column(
        ForeignKey("operations.id", ondelete="SET NULL"), index=True
    )
    t: Mapped[datetime] = mapped_column(UTCDateTime())
    text: Mapped[str] = mapped_column(Text)


class OsReport(Base):
    """A booted operating system's "started" report (OGAgent): hostname, status, root fs."""

    __tablename__ = "os_reports"
    __table_args__ = (Index("ix_os_reports_computer_id_id", "computer_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    computer_id: Mapped[int] = mapped_column(ForeignKey("computers.id", ondelete="CASCADE"))
    t: Mapped[datetime] = mapped_column(UTCDateTime())
    peer: Mapped[str] = mapped_column(String(45), default="")  # the address it came from
    hostname: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(8))
    fstab_root: Mapped[str | None] = mapped_column(String(255))
    os: Mapped[str | None] = mapped_column(String(255))


# --------------------------------------------------------------------------- engine, sessions


def _wal(cur: sqlite3.Cursor) -> None:
    """Switch the database to WAL.  On a database still in rollback mode while another connection
    holds its lock (services starting together on a new file), SQLite answers "database is
    locked" at once — the busy timeout does not cover a journal-mode change — so this waits for
    the lock the same way, up to :data:`BUSY_TIMEOUT_S`."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    pause = 0.01
    while True:
        try:
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(0.2, pause * 2)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``.  SQLite (``sqlite:///path``; ``sqlite://`` is one in-memory
    connection for single-threaded tests) gets WAL, foreign keys, a busy timeout and
    ``BEGIN IMMEDIATE``; other databases are configured by their URL.  ``kwargs`` go to
    :func:`sqlalchemy.create_engine`."""
    u = make_url(url)
    if u.get_backend_name() == "postgresql":
        return _postgresql_engine(u, **kwargs)
    if u.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(u, **kwargs)
    memory = u.database in (None, "", ":memory:")
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("timeout", BUSY_TIMEOUT_S)
    connect_args.setdefault("check_same_thread", False)
    if memory:
        kwargs.setdefault("poolclass", StaticPool)
    engine = create_engine(u, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        # SQLAlchemy emits BEGIN itself (below): the driver's own transaction handling is off
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        try:
            cur.execute("PRAGMA foreign_keys = ON")
            cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            if not memory:
                _wal(cur)
                cur.execute("PRAGMA synchronous = NORMAL")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # a writer takes the write lock when it begins (waiting up to the busy timeout), so two
        # threads never deadlock upgrading read transactions; readers ask for DEFERRED
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        if mode not in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
            raise ValueError(f"sqlite_begin={mode!r}: DEFERRED, IMMEDIATE or EXCLUSIVE")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


NUL_STANDIN = "\ufffd"
"""What a NUL character becomes on PostgreSQL, whose text cannot hold one (SQLite keeps it)."""


def _no_nul(value: Any) -> Any:
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", NUL_STANDIN)
    return value


def _postgresql_engine(u: URL, **kwargs: Any) -> Engine:
    """PostgreSQL through psycopg 3 (``postgresql://`` means ``postgresql+psycopg://``).

    Text parameters holding NUL (an agent's log line, a name in a request) would make psycopg
    refuse the whole statement: the NULs become U+FFFD, so such a line is kept and such a name
    is simply not found, as on SQLite.  JSON goes as its text, where NUL is escaped already."""
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    if u.drivername == "postgresql+psycopg":
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                f"{u.render_as_string()}: PostgreSQL needs psycopg 3 "
                "(pip install 'psycopg[binary]', part of the service extra)"
            ) from exc
    kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(u, **kwargs)

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def _scrub(
        _conn: Connection,
        _cursor: Any,
        statement: str,
        parameters: Any,
        _context: Any,
        executemany: bool,
    ) -> tuple[str, Any]:
        rows = parameters if executemany else [parameters]
        if not any(
            isinstance(v, str) and "\x00" in v
            for row in rows
            for v in (row.values() if isinstance(row, Mapping) else row or ())
        ):
            return statement, parameters
        fixed = [
            {k: _no_nul(v) for k, v in row.items()}
            if isinstance(row, Mapping)
            else type(row)(_no_nul(v) for v in row)
            for row in rows
        ]
        return statement, fixed if executemany else fixed[0]

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for ``engine`` whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


class Database:
    """An engine and its sessions: ``with db.transaction() as s:`` commits or rolls back;
    ``with db.reading() as s:`` reads without taking SQLite's write lock.  One Database serves
    every thread; each thread uses its own sessions."""

    def __init__(self, url: str | Engine) -> None:
        self.engine = make_engine(url) if isinstance(url, str) else url
        self.sessions = session_factory(self.engine)
        reader = self.engine
        if self.engine.dialect.name == "sqlite":
            reader = self.engine.execution_options(sqlite_begin="DEFERRED")
        self._readers = session_factory(reader)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in a write transaction, committed at the end (rolled back on error)."""
        with self.sessions.begin() as session:
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reading (SQLite: without taking the write lock); its transaction is
        rolled back at the end, anything written in it is discarded.  Objects it loaded stay
        readable afterwards (detached)."""
        with self._readers() as session:
            yield session

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
