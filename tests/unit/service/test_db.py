"""The service database's schema and engine, on SQLite and PostgreSQL: migrations equal the models
(autogenerate writes nothing), services starting together migrate once, PostgreSQL DDL,
SQLite's WAL, foreign keys and write locking, UTC timestamps, ON DELETE behaviour."""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, func, inspect, select, update
from sqlalchemy.exc import IntegrityError, StatementError

from ogref.service import db
from ogref.service.db import Base, Database
from ogref.service.migrations import HERE, config, current, head, upgrade
from ogref.service.store import NewLogLine, NewRecord, append_logs, create_operation

TABLES = {
    "site_settings",
    "engine_settings",
    "site_operations",
    "org_units",
    "repositories",
    "images",
    "classrooms",
    "computer_groups",
    "group_members",
    "computers",
    "users",
    "user_classrooms",
    "user_sessions",
    "api_tokens",
    "operations",
    "operation_records",
    "log_lines",
    "os_reports",
}


def test_migrated_schema_equals_the_models(empty_url: str) -> None:
    """Migrating an empty database gives exactly the models' schema: Alembic's autogenerate
    comparison (types included) finds nothing to write, on SQLite and on PostgreSQL."""
    assert current(empty_url) is None
    upgrade(empty_url)
    assert current(empty_url) == head() == "0002"
    d = Database(empty_url)
    with d.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []
        names = set(inspect(conn).get_table_names())
    assert names == TABLES | {"alembic_version"}
    d.close()


def test_autogenerate_writes_an_empty_revision(empty_url: str, tmp_path: Path) -> None:
    """What a developer runs to write the next revision (see :mod:`ogref.service.migrations`)
    writes one that does nothing while the models and the migrations agree."""
    upgrade(empty_url)
    scripts = tmp_path / "migrations"
    shutil.copytree(HERE, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    cfg = config(empty_url)
    cfg.set_main_option("script_location", str(scripts))
    command.revision(cfg, "nothing", autogenerate=True, rev_id="9999")
    [written] = (scripts / "versions").glob("9999_*.py")
    body = written.read_text()
    upgrade_body = body[body.index("def upgrade()") : body.index("def downgrade()")]
    assert "op." not in upgrade_body and "pass" in upgrade_body, upgrade_body


def test_models_without_the_migration_differ(empty_url: str) -> None:
    """The comparison sees a difference (the check above can fail)."""
    upgrade(empty_url)
    database = Database(empty_url)
    with database.engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_computers_mac")
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d[0] for d in diff] == ["add_index"]
    database.close()


def test_upgrade_twice_is_harmless(empty_url: str) -> None:
    upgrade(empty_url)
    upgrade(empty_url)
    assert current(empty_url) == head()


def test_two_services_starting_at_once_migrate_once(empty_url: str) -> None:
    """Two services sharing one database (the reason for PostgreSQL) start together: one
    migrates, the other waits for it and finds the database at head.  (Processes: Alembic's
    context is one per process.)"""
    code = (
        "import sys, time; from ogref.service.migrations import upgrade\n"
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); upgrade(sys.argv[1])"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    at = str(time.time() + 3)  # all three imported by then: they migrate at the same moment
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", code, empty_url, at], env=env, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    errors = [p.communicate(timeout=120)[1] for p in runs if p.wait(timeout=120) != 0]
    assert errors == []
    assert current(empty_url) == head()


def test_a_new_database_locked_by_another_connection_is_waited_for(tmp_path: Path) -> None:
    """SQLite refuses the switch to WAL at once (no busy timeout) while another connection holds
    the lock of a database still in rollback mode: a second service starting beside the first
    waits for it instead of failing with "database is locked"."""
    import sqlite3
    import threading

    from ogref.service.db import make_engine

    path = tmp_path / "new.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    threading.Timer(0.5, lambda: holder.execute("COMMIT")).start()
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        engine.dispose()
        holder.close()


def test_migrating_leaves_foreign_keys_on() -> None:
    """Migrations run with SQLite's foreign keys off; the connection goes back to the pool
    with them on."""
    d = Database("sqlite://")  # one connection: the one the migration used
    upgrade(d.engine)
    with d.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with pytest.raises(IntegrityError), d.transaction() as s:
        s.add(db.Classroom(name="x", org_unit_id=42, subnet="", multicast="", torrent=""))
    d.close()


BATCH_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "9999"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("computers", recreate="always") as batch:
        batch.add_column(sa.Column("extra", sa.Integer(), nullable=True))
"""


def test_a_batch_migration_keeps_the_rows_that_refer_to_the_table(
    db_path: Path, tmp_path: Path
) -> None:
    """SQLite copies a table to alter it; with foreign keys on, dropping the old ``computers``
    would delete every tracking-log line and OS report (ON DELETE CASCADE)."""
    scripts = tmp_path / "migrations"
    shutil.copytree(HERE, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "9999_batch.py").write_text(BATCH_REVISION)
    url = f"sqlite:///{db_path}"
    d = Database(url)
    with d.transaction() as s:
        append_logs(s, [NewLogLine("pc01", "kept")])
    d.close()
    cfg = config(url)
    cfg.set_main_option("script_location", str(scripts))
    command.upgrade(cfg, "head")
    d = Database(url)
    with d.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT text FROM log_lines").scalars().all() == ["kept"]
        assert conn.exec_driver_sql("SELECT count(*) FROM computers").scalar() == 6
    d.close()


def test_postgresql_script_renders() -> None:
    """Offline migration for PostgreSQL: only portable types (JSON, TIMESTAMP WITH TIME ZONE,
    BIGSERIAL), no SQLite-only syntax."""
    cfg = config("postgresql://ogref@localhost/ogref")
    out = io.StringIO()
    cfg.output_buffer = out
    command.upgrade(cfg, "head", sql=True)
    sql = out.getvalue()
    assert "CREATE TABLE computers" in sql
    assert "TIMESTAMP WITH TIME ZONE" in sql
    assert "id BIGSERIAL NOT NULL" in sql  # log_lines
    assert "ON DELETE SET NULL" in sql
    assert "AUTOINCREMENT" not in sql and "DATETIME" not in sql


def test_a_postgresql_url_goes_through_psycopg() -> None:
    """``postgresql://`` (SQLAlchemy's default driver would be psycopg2) means psycopg 3; no
    connection is opened to tell."""
    for url in ("postgresql://ogref@localhost/ogref", "postgresql+psycopg://ogref@/ogref"):
        engine = db.make_engine(url)
        assert (engine.dialect.name, engine.dialect.driver) == ("postgresql", "psycopg")
        engine.dispose()


def test_sqlite_file_is_wal_with_foreign_keys(tmp_path: Path) -> None:
    d = Database(f"sqlite:///{tmp_path / 'f.db'}")
    with d.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    d.close()


def test_a_write_transaction_takes_the_lock_when_it_begins(db_path: Path) -> None:
    """BEGIN IMMEDIATE: another writer cannot slip in between a transaction's read and its
    write (the upgrade that makes SQLite answer "database is locked" at once); a reader does
    not block writers."""
    d = Database(f"sqlite:///{db_path}")
    other = sqlite3.connect(db_path, timeout=0, isolation_level=None)
    try:
        with d.reading() as s:
            s.execute(select(db.Computer.name)).all()
            other.execute("UPDATE computers SET status = 'OPG'")  # a reader does not block
        with d.transaction() as s:
            s.execute(select(db.Computer.name)).all()  # only read so far
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("UPDATE computers SET status = 'BSY'")
    finally:
        other.close()
        d.close()


def test_timestamps_are_utc(site_db: Database) -> None:
    cest = timezone(timedelta(hours=2))
    with site_db.transaction() as s:
        s.execute(update(db.Computer).values(last_seen=datetime(2025, 5, 1, 12, 0, tzinfo=cest)))
    with site_db.reading() as s:
        seen = s.scalars(select(db.Computer.last_seen)).first()
        created = s.scalars(select(db.Computer.created_at)).first()
    assert seen == datetime(2025, 5, 1, 10, 0, tzinfo=UTC) and seen.tzinfo is UTC
    assert created is not None and created.tzinfo is UTC
    with pytest.raises(StatementError, match="naive"), site_db.transaction() as s:
        s.execute(update(db.Computer).values(last_seen=datetime(2025, 5, 1)))


def test_check_constraints(site_db: Database) -> None:
    with pytest.raises(IntegrityError), site_db.transaction() as s:
        s.add(db.User(name="eve", password_hash="x", role="root"))


def test_deleting_a_computer_keeps_its_records_and_drops_its_log(site_db: Database) -> None:
    with site_db.transaction() as s:
        op = create_operation(s, "boot", {}, [NewRecord("pc01"), NewRecord("pc02")])
        append_logs(s, [NewLogLine("pc01", "hello", operation_id=op.id)])
    with site_db.transaction() as s:
        s.execute(delete(db.Computer).where(db.Computer.name == "pc01"))
    with site_db.reading() as s:
        rec = s.scalars(
            select(db.OperationRecord).where(db.OperationRecord.computer_name == "pc01")
        ).one()
        assert rec.computer_id is None
        assert s.scalar(select(func.count()).select_from(db.LogLine)) == 0
        members = s.scalars(select(db.GroupMember.computer_id)).all()
        assert len(members) == 1  # fila1 lost pc01


def test_deleting_a_user_keeps_the_operations_submitted(site_db: Database) -> None:
    with site_db.transaction() as s:
        user = db.User(name="ana", password_hash="h", role="teacher")
        s.add(user)
        s.flush()
        room = s.scalars(select(db.Classroom).where(db.Classroom.name == "aula1")).one()
        s.add(db.UserClassroom(user_id=user.id, classroom_id=room.id))
        s.add(
            db.UserSession(token_hash="t", user_id=user.id, csrf_token="c", expires_at=db.utcnow())
        )
        s.add(db.ApiToken(token_hash="a", user_id=user.id, label="script"))
        op = create_operation(s, "boot", {}, [NewRecord("pc01")], submitted_by=user.id)
    with site_db.transaction() as s:
        s.execute(delete(db.User))
    with site_db.reading() as s:
        assert s.get(db.Operation, op.id) is not None
        assert s.get(db.Operation, op.id).submitted_by is None  # type: ignore[union-attr]
        for table in (db.UserClassroom, db.UserSession, db.ApiToken):
            assert s.scalar(select(func.count()).select_from(table)) == 0


def test_repository_with_computers_cannot_be_deleted(site_db: Database) -> None:
    with pytest.raises(IntegrityError), site_db.transaction() as s:
        s.execute(delete(db.Repository))


def test_operation_ids_are_never_reused(site_db: Database) -> None:
    with site_db.transaction() as s:
        first = create_operation(s, "boot", {}, [NewRecord("pc01")]).id
    with site_db.transaction() as s:
        s.execute(delete(db.Operation))
    with site_db.transaction() as s:
        assert create_operation(s, "boot", {}, [NewRecord("pc01")]).id == first + 1
