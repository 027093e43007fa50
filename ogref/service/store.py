"""The queries the service's engine makes on the database: operations and their per-computer
records, tracking-log lines, OS reports and computer status, each a small typed function that
runs in the caller's session (the caller's ``with db.transaction()`` is the transaction).

It also publishes a new image version (:func:`add_image_version`) and advances an agent
credential's replay counter (:func:`advance_seq`).

Values come back as frozen snapshots (:class:`OperationView`, :class:`RecordView`,
:class:`LogLineView`), never ORM objects, so they can cross threads and outlive the session.
Updates that may race (two agents finishing, a timeout and a late result) are single
conditional UPDATEs: the first result recorded wins, a second one changes nothing.

Not here: planning a command (:mod:`ogref.console`), the command queue's ordering rules
(:mod:`ogref.command_queue`; :attr:`RecordView.job` gives back its :class:`~ogref.command_queue.Job`
so a restarted service can rebuild it from :func:`unfinished_operations`), HTTP, auth.

What is stored where: an operation is a row of ``operations`` (its id is the submission
sequence number, its ``spec`` the console command as the site schema's mapping) and one row of
``operation_records`` per computer (``role`` source for a clone's MASTER), holding the command
payload to deliver (``command``), the command-queue job (``reads``, ``writes``,
``session_address``/``session_port``) and, once final, the agent's result; the tracking log is
``log_lines`` (tied to the operation when it belongs to one), OS reports ``os_reports``, status
and last-seen the two columns of ``computers``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Table, bindparam, case, func, insert, select, update
from sqlalchemy.orm import Session

from ogref.command_queue import Job
from ogref.model import ClientStatus, Image
from ogref.service import db
from ogref.service.db import from_epoch, utcnow

Role = Literal["target", "source"]
RecordStatus = Literal["not_started", "ok", "failed", "crashed", "refused"]
Json = dict[str, Any]


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class NewRecord:
    """One computer's part of an operation being created.  A record the console refuses
    before any agent sees it is created ``final`` with its status, code and message."""

    computer: str
    requested: str = ""
    command: Json = field(default_factory=dict)
    role: Role = "target"
    reads: str | None = None
    writes: str | None = None
    session: tuple[str, int] | None = None
    status: RecordStatus = "not_started"
    code: int | None = None
    message: str = ""
    final: bool = False

    @classmethod
    def for_job(cls, job: Job, requested: str, command: Json, role: Role = "target") -> NewRecord:
        """The record of a command-queue job (its computer, reads, writes and session)."""
        return cls(
            computer=job.computer,
            requested=requested,
            command=command,
            role=role,
            reads=job.reads,
            writes=job.writes,
            session=job.session,
        )


@dataclass(frozen=True)
class RecordResult:
    """What an agent reports at the end of its part (the ``result`` of ``/agent/done``)."""

    code: int
    message: str = ""
    status: RecordStatus | None = None  # None: ok when code is 0, else failed
    method_used: str | None = None
    switched: bool | None = None
    reasons: tuple[str, ...] = ()
    phases: tuple[Json, ...] = ()
    bytes_moved: int | None = None
    checksum_verified: bool | None = None
    stream_md5: str | None = None
    os_hostname: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def from_agent(cls, result: Mapping[str, Any]) -> RecordResult:
        """From the agent's JSON (times are POSIX seconds there); unknown keys are ignored.
        Texts longer than their column are cut to it and a number its column cannot hold is
        refused (ValueError), the same on every backend (PostgreSQL would refuse the row)."""

        def when(key: str) -> datetime | None:
            value = result.get(key)
            return from_epoch(float(value)) if value is not None else None

        def text(key: str) -> str | None:
            value = result.get(key)
            column = db.OperationRecord.__table__.c[key]
            return _fit(column, str(value)) if value is not None else None

        def number(key: str, value: Any) -> int:
            n = int(value)
            low, high = _RANGE[key]
            if not low <= n <= high:
                raise ValueError(f"{key} {n} is out of range [{low}, {high}]")
            return n

        bytes_moved = result.get("bytes_moved")
        switched, verified = result.get("switched"), result.get("checksum_verified")
        return cls(
            code=number("code", result["code"]),
            message=str(result.get("message", "")),
            method_used=text("method_used"),
            switched=bool(switched) if switched is not None else None,
            reasons=tuple(str(r) for r in result.get("reasons") or ()),
            phases=tuple(dict(p) for p in result.get("phases") or ()),
            bytes_moved=number("bytes_moved", bytes_moved) if bytes_moved is not None else None,
            checksum_verified=bool(verified) if verified is not None else None,
            stream_md5=text("stream_md5"),
            os_hostname=text("os_hostname"),
            started_at=when("started"),
            finished_at=when("finished"),
        )


_INT32 = (-(2**31), 2**31 - 1)
_INT64_MAX = 2**63 - 1
_RANGE = {"code": _INT32, "bytes_moved": (0, _INT64_MAX)}


def _fit(column: Any, value: str) -> str:
    """``value`` cut to the length of the string column ``column``."""
    length = getattr(column.type, "length", None)
    return value[:length] if length else value


@dataclass(frozen=True)
class RecordView:
    """A snapshot of one computer's record of an operation."""

    id: int
    operation_id: int
    computer: str
    role: Role
    requested: str
    status: RecordStatus
    code: int | None
    message: str
    method_used: str | None
    switched: bool | None
    reasons: tuple[str, ...]
    phases: tuple[Json, ...]
    bytes_moved: int | None
    checksum_verified: bool | None
    stream_md5: str | None
    os_hostname: str | None
    started_at: datetime | None
    sent_at: datetime | None
    ready_at: datetime | None
    finished_at: datetime | None
    final: bool
    lost: bool
    command: Json
    reads: str | None
    writes: str | None
    session: tuple[str, int] | None

    @property
    def job(self) -> Job:
        """The command-queue job of this record."""
        return Job(self.operation_id, self.computer, self.reads, self.writes, self.session)


@dataclass(frozen=True)
class OperationView:
    """A snapshot of an operation and its records (in creation order)."""

    id: int
    site_index: int | None
    kind: str
    spec: Json
    submitted_at: datetime
    submitted_by: int | None
    state: str
    finished_at: datetime | None
    records: tuple[RecordView, ...]

    @property
    def done(self) -> bool:
        return self.state == "done"

    def record(self, computer: str) -> RecordView | None:
        return next((r for r in self.records if r.computer == computer), None)


@dataclass(frozen=True)
class NewLogLine:
    """A tracking-log line to append (``t`` defaults to now)."""

    computer: str
    text: str
    t: datetime | None = None
    operation_id: int | None = None


@dataclass(frozen=True)
class LogLineView:
    id: int
    computer: str
    operation_id: int | None
    t: datetime
    text: str


class UnknownComputerError(LookupError):
    """A computer name the database does not have."""


class UnknownRecordError(LookupError):
    """No record of that computer in that operation."""


# --------------------------------------------------------------------------- operations


def create_operation(
    session: Session,
    kind: str,
    spec: Json,
    records: Sequence[NewRecord],
    *,
    site_index: int | None = None,
    submitted_by: int | None = None,
    at: datetime | None = None,
) -> OperationView:
    """Create an operation and its records (in the caller's transaction: all or nothing)."""
    names = [r.computer for r in records]
    if len(set(names)) != len(names):
        raise ValueError(f"one record per computer (got {sorted(names)})")
    ids = _computer_ids(session, names)
    now = at or utcnow()
    op = db.Operation(
        kind=kind,
        spec=spec,
        site_index=site_index,
        submitted_by=submitted_by,
        submitted_at=now,
        state="done" if all(r.final for r in records) else "queued",
        finished_at=now if all(r.final for r in records) else None,
    )
    session.add(op)
    session.flush()
    session.execute(
        insert(db.OperationRecord),
        [
            {
                "operation_id": op.id,
                "computer_id": ids[r.computer],
                "computer_name": r.computer,
                "role": r.role,
                "requested": r.requested,
                "command": r.command,
                "reads": r.reads,
                "writes": r.writes,
                "session_address": r.session[0] if r.session else None,
                "session_port": r.session[1] if r.session else None,
                "status": r.status,
                "code": r.code,
                "message": r.message,
                "final": r.final,
                "finished_at": now if r.final else None,
                "reasons": [],
                "phases": [],
                "lost": False,
            }
            for r in records
        ],
    )
    view = get_operation(session, op.id)
    assert view is not None
    return view


def get_operation(session: Session, operation_id: int) -> OperationView | None:
    """The operation with its records, or None (also for an id no operation can have:
    PostgreSQL would refuse to compare it with its 32-bit column)."""
    if not _INT32[0] <= operation_id <= _INT32[1]:
        return None
    op = session.get(db.Operation, operation_id, populate_existing=True)
    if op is None:
        return None
    return _views(session, [op])[0]


def recent_operations(
    session: Session, limit: int = 50, before_id: int | None = None
) -> list[OperationView]:
    """The latest operations, newest first (at most ``limit``; ``before_id`` pages back)."""
    query = select(db.Operation).order_by(db.Operation.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(db.Operation.id < before_id)
    ops = session.scalars(query.execution_options(populate_existing=True)).all()
    return _views(session, list(ops))


def unfinished_operations(session: Session) -> list[OperationView]:
    """Operations not done, in submission order, with all their records: what a restarted
    service needs to rebuild its command queue."""
    ops = session.scalars(
        select(db.Operation)
        .where(db.Operation.state != "done")
        .order_by(db.Operation.id)
        .execution_options(populate_existing=True)
    ).all()
    return _views(session, list(ops))


def mark_sent(
    session: Session, operation_id: int, computer: str, at: datetime | None = None
) -> bool:
    """The record's command was handed to its agent; the operation is running.  False when
    it was sent already or is final (nothing changed)."""
    when = at or utcnow()
    changed = _update_record(
        session,
        operation_id,
        computer,
        {"sent_at": when},
        db.OperationRecord.sent_at.is_(None),
        db.OperationRecord.final.is_(False),
    )
    if changed:
        session.execute(
            update(db.Operation)
            .where(db.Operation.id == operation_id, db.Operation.state == "queued")
            .values(state="running")
        )
    return changed


def mark_ready(
    session: Session, operation_id: int, computer: str, at: datetime | None = None
) -> bool:
    """A clone's MASTER began sending (its targets may be released).  False if it was
    ready already or is final."""
    return _update_record(
        session,
        operation_id,
        computer,
        {"ready_at": at or utcnow()},
        db.OperationRecord.ready_at.is_(None),
        db.OperationRecord.final.is_(False),
    )


def set_command(session: Session, operation_id: int, computer: str, command: Json) -> bool:
    """Replace the command payload a record will deliver (e.g. a clone target told its
    MASTER); False once it is sent or final."""
    return _update_record(
        session,
        operation_id,
        computer,
        {"command": command},
        db.OperationRecord.sent_at.is_(None),
        db.OperationRecord.final.is_(False),
    )


def finish_record(
    session: Session,
    operation_id: int,
    computer: str,
    result: RecordResult,
    *,
    lost: bool = False,
    at: datetime | None = None,
) -> bool:
    """Record the agent's result (or the service's verdict: ``lost`` for a computer that
    vanished) and make the record final; the operation is done when its last record is.
    False when the record was final already: the first result wins."""
    status = result.status or ("ok" if result.code == 0 else "failed")
    values: Json = {
        "status": status,
        "code": result.code,
        "message": result.message,
        "method_used": result.method_used,
        "switched": result.switched,
        "reasons": list(result.reasons),
        "phases": [dict(p) for p in result.phases],
        "bytes_moved": result.bytes_moved,
        "checksum_verified": result.checksum_verified,
        "stream_md5": result.stream_md5,
        "os_hostname": result.os_hostname,
        "finished_at": result.finished_at or at or utcnow(),
        "final": True,
        "lost": lost,
    }
    if result.started_at is not None:
        values["started_at"] = result.started_at
    # lock the operation first (PostgreSQL; SQLite's transactions are serial already) so that
    # two last records finishing at once cannot both miss that the operation is done
    op = session.get(db.Operation, operation_id, with_for_update=True)
    if op is None:
        raise UnknownRecordError(f"no operation {operation_id}")
    changed = _update_record(
        session, operation_id, computer, values, db.OperationRecord.final.is_(False)
    )
    if changed:
        left = session.scalar(
            select(func.count())
            .select_from(db.OperationRecord)
            .where(
                db.OperationRecord.operation_id == operation_id,
                db.OperationRecord.final.is_(False),
            )
        )
        if left == 0:
            session.execute(
                update(db.Operation)
                .where(db.Operation.id == operation_id)
                .values(state="done", finished_at=at or utcnow())
            )
    return changed


def _update_record(
    session: Session, operation_id: int, computer: str, values: Json, *conditions: Any
) -> bool:
    where = (
        db.OperationRecord.operation_id == operation_id,
        db.OperationRecord.computer_name == computer,
    )
    result = session.execute(
        update(db.OperationRecord).where(*where, *conditions).values(**values),
        execution_options={"synchronize_session": False},
    )
    if result.rowcount:  # type: ignore[attr-defined]
        return True
    if session.scalar(select(db.OperationRecord.id).where(*where)) is None:
        raise UnknownRecordError(f"operation {operation_id} has no record of {computer!r}")
    return False


def _views(session: Session, ops: list[db.Operation]) -> list[OperationView]:
    by_op: dict[int, list[RecordView]] = {op.id: [] for op in ops}
    if ops:
        rows = session.scalars(
            select(db.OperationRecord)
            .where(db.OperationRecord.operation_id.in_(list(by_op)))
            .order_by(db.OperationRecord.operation_id, db.OperationRecord.id)
            .execution_options(populate_existing=True)
        )
        for r in rows:
            by_op[r.operation_id].append(_record_view(r))
    return [
        OperationView(
            id=op.id,
            site_index=op.site_index,
            kind=op.kind,
            spec=op.spec,
            submitted_at=op.submitted_at,
            submitted_by=op.submitted_by,
            state=op.state,
            finished_at=op.finished_at,
            records=tuple(by_op[op.id]),
        )
        for op in ops
    ]


def _record_view(r: db.OperationRecord) -> RecordView:
    pair = None
    if r.session_address is not None and r.session_port is not None:
        pair = (r.session_address, r.session_port)
    return RecordView(
        id=r.id,
        operation_id=r.operation_id,
        computer=r.computer_name,
        role=r.role,  # type: ignore[arg-type]
        requested=r.requested,
        status=r.status,  # type: ignore[arg-type]
        code=r.code,
        message=r.message,
        method_used=r.method_used,
        switched=r.switched,
        reasons=tuple(r.reasons),
        phases=tuple(r.phases),
        bytes_moved=r.bytes_moved,
        checksum_verified=r.checksum_verified,
        stream_md5=r.stream_md5,
        os_hostname=r.os_hostname,
        started_at=r.started_at,
        sent_at=r.sent_at,
        ready_at=r.ready_at,
        finished_at=r.finished_at,
        final=r.final,
        lost=r.lost,
        command=r.command,
        reads=r.reads,
        writes=r.writes,
        session=pair,
    )


# --------------------------------------------------------------------------- images


def add_image_version(session: Session, image: Image, at: datetime | None = None) -> int:
    """A new version of ``image`` in its repository (what a create publishes): revision one
    above every version of that name so far, deleted ones included; its revision."""
    # the repository's row locked (PostgreSQL; SQLite's writers are serial already) until the
    # caller commits: two versions created at once get two revisions
    repo_id = session.scalar(
        select(db.Repository.id).where(db.Repository.name == image.repository).with_for_update()
    )
    if repo_id is None:
        raise LookupError(f"no repository {image.repository!r}")
    same = (db.Image.repository_id == repo_id, db.Image.name == image.name)
    last = session.scalar(select(func.max(db.Image.revision)).where(*same))
    position = session.scalar(select(func.max(db.Image.position)).where(*same))
    if position is None:
        top = session.scalar(
            select(func.max(db.Image.position)).where(db.Image.repository_id == repo_id)
        )
        position = -1 if top is None else top
        position += 1
    revision = (last or 0) + 1
    session.add(
        db.Image(
            repository_id=repo_id,
            name=image.name,
            revision=revision,
            filesystem=str(image.filesystem),
            data_size=image.data_size,
            stored_size=image.stored_size,
            compressor=str(image.compressor),
            tool=str(image.tool),
            checksum=_fit(db.Image.checksum, image.checksum),
            kind=str(image.kind),
            base=image.base,
            os_name=_fit(db.Image.os_name, image.os_name),  # what the agent found: any length
            torrent_piece=image.torrent_piece,
            format=str(image.format),
            added_size=image.added_size,
            position=position,
            created_at=at or utcnow(),
        )
    )
    session.flush()
    return revision


@dataclass(frozen=True)
class ImageVersion:
    """One version of an image in a repository's catalogue."""

    name: str
    revision: int
    filesystem: str
    data_size: int
    stored_size: int
    compressor: str
    tool: str
    checksum: str
    kind: str
    base: str
    os_name: str
    created_at: datetime
    deleted: bool
    format: str = "partclone"


def image_versions(session: Session) -> dict[str, list[ImageVersion]]:
    """Every version of every image, by repository name, in catalogue order (newest revision
    of a name first; deleted versions included, marked)."""
    rows = session.execute(
        select(db.Repository.name, db.Image)
        .join(db.Repository, db.Repository.id == db.Image.repository_id)
        .order_by(db.Repository.position, db.Image.position, db.Image.name,
                  db.Image.revision.desc())
    )  # fmt: skip
    out: dict[str, list[ImageVersion]] = {}
    for repo, img in rows:
        out.setdefault(repo, []).append(
            ImageVersion(img.name, img.revision, img.filesystem, img.data_size, img.stored_size,
                         img.compressor, img.tool, img.checksum, img.kind, img.base, img.os_name,
                         img.created_at, img.deleted_at is not None, img.format)
        )  # fmt: skip
    return out


def cached_by_operations(session: Session) -> dict[str, dict[tuple[str, str], int]]:
    """The copies the service's own commands left in computers' caches: by repository, (image,
    computer) → the last operation whose record ended ok having filled the cache (an
    updateCache, a Deploy wizard, a Restore whose method used was a CACHE one)."""
    rows = session.execute(
        select(db.Operation.id, db.Operation.kind, db.Operation.spec,
               db.OperationRecord.computer_name, db.OperationRecord.method_used,
               db.Repository.name)
        .join(db.OperationRecord, db.OperationRecord.operation_id == db.Operation.id)
        .join(db.Computer, db.Computer.id == db.OperationRecord.computer_id)
        .join(db.Repository, db.Repository.id == db.Computer.repository_id)
        .where(db.Operation.kind.in_(("update_cache", "deploy", "restore")),
               db.OperationRecord.status == "ok", db.OperationRecord.role == "target")
        .order_by(db.Operation.id)
    )  # fmt: skip
    out: dict[str, dict[tuple[str, str], int]] = {}
    for op_id, kind, spec, computer, used, repo in rows:
        if kind == "restore" and not str(used or "").endswith("-CACHE"):
            continue
        image = spec.get("image") if isinstance(spec, dict) else None
        if image:
            out.setdefault(repo, {})[(str(image), computer)] = op_id
    return out


# --------------------------------------------------------------------------- logs, reports


def append_logs(session: Session, lines: Iterable[NewLogLine]) -> int:
    """Append tracking-log lines (one INSERT for the batch); how many were appended."""
    batch = list(lines)
    if not batch:
        return 0
    ids = _computer_ids(session, [line.computer for line in batch])
    now = utcnow()
    session.execute(
        insert(db.LogLine),
        [
            {
                "computer_id": ids[line.computer],
                "operation_id": line.operation_id,
                "t": line.t or now,
                "text": line.text,
            }
            for line in batch
        ],
    )
    return len(batch)


def tail_log(
    session: Session, computer: str, after_id: int = 0, limit: int = 1000
) -> list[LogLineView]:
    """A computer's tracking-log lines after line ``after_id`` (oldest first, at most
    ``limit``): call again with the last id to follow the log."""
    cid = _computer_ids(session, [computer])[computer]
    after_id = min(after_id, _INT64_MAX)  # past every id, within what the column compares with
    rows = session.scalars(
        select(db.LogLine)
        .where(db.LogLine.computer_id == cid, db.LogLine.id > after_id)
        .order_by(db.LogLine.id)
        .limit(limit)
    )
    return [LogLineView(r.id, computer, r.operation_id, r.t, r.text) for r in rows]


def add_os_report(
    session: Session,
    computer: str,
    status: ClientStatus | str,
    *,
    hostname: str = "",
    peer: str = "",
    fstab_root: str | None = None,
    os: str | None = None,
    t: datetime | None = None,
) -> None:
    """A booted OS's "started" report (it does not change the computer's status: see
    :func:`set_status`)."""
    cid = _computer_ids(session, [computer])[computer]
    session.execute(
        insert(db.OsReport).values(
            computer_id=cid,
            t=t or utcnow(),
            peer=peer,
            hostname=hostname,
            status=str(ClientStatus(status)),
            fstab_root=fstab_root,
            os=os,
        )
    )


# --------------------------------------------------------------------------- computers


def set_status(
    session: Session,
    computer: str,
    status: ClientStatus | str | None = None,
    last_seen: datetime | None = None,
) -> None:
    """Set a computer's status code and/or last-seen time (one UPDATE of those columns)."""
    values: Json = {}
    if status is not None:
        values["status"] = str(ClientStatus(status))
    if last_seen is not None:
        values["last_seen"] = last_seen
    if not values:
        return
    result = session.execute(
        update(db.Computer).where(db.Computer.name == computer).values(**values),
        execution_options={"synchronize_session": False},
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise UnknownComputerError(computer)


def mark_sent_many(session: Session, sent: Sequence[tuple[int, str, datetime]]) -> None:
    """:func:`mark_sent` for many ``(operation, computer, at)`` at once: one UPDATE executed
    for every record (an agent's command handed out in the same moment as many others')."""
    if not sent:
        return
    rec = cast(Table, db.OperationRecord.__table__)
    session.execute(
        update(rec)
        .where(
            rec.c.operation_id == bindparam("b_op"),
            rec.c.computer_name == bindparam("b_name"),
            rec.c.sent_at.is_(None),
            rec.c.final.is_(False),
        )
        .values(sent_at=bindparam("b_at")),
        [{"b_op": op, "b_name": name, "b_at": at} for op, name, at in sent],
    )
    session.execute(
        update(db.Operation)
        .where(db.Operation.id.in_(sorted({op for op, _, _ in sent})),
               db.Operation.state == "queued")
        .values(state="running"),
        execution_options={"synchronize_session": False},
    )  # fmt: skip


@dataclass(frozen=True)
class ComputerFlush:
    """What one engine flush writes of one computer: its agent's request counter (``None``:
    unchanged; never moved backwards) and its status and last-seen time (``None``: unchanged)."""

    name: str
    seq: int | None = None
    status: ClientStatus | str | None = None
    seen: datetime | None = None


def flush_computers(session: Session, rows: Sequence[ComputerFlush]) -> None:
    """Many computers' counters and statuses: one UPDATE executed for each row, in the order
    given (the engine gives name order, so two flushes at once lock rows in the same order and
    PostgreSQL never sees a deadlock).  An unknown name changes nothing."""
    if not rows:
        return
    table = cast(Table, db.Computer.__table__)
    seq = bindparam("b_seq", type_=table.c.seq.type)
    status = bindparam("b_status", type_=table.c.status.type)
    seen = bindparam("b_seen", type_=table.c.last_seen.type)
    session.execute(
        update(table)
        .where(table.c.name == bindparam("b_name"))
        .values(
            seq=case((table.c.seq < seq, seq), else_=table.c.seq),
            status=func.coalesce(status, table.c.status),
            last_seen=func.coalesce(seen, table.c.last_seen),
        ),
        [
            {
                "b_name": r.name,
                "b_seq": -1 if r.seq is None else r.seq,
                "b_status": None if r.status is None else str(r.status),
                "b_seen": r.seen,
            }
            for r in rows
        ],
    )


def advance_seq(session: Session, computer: str, seq: int) -> bool:
    """Accept request counter ``seq`` of a computer's agent credential if it is above the last
    one accepted (one conditional UPDATE: of two requests racing with one counter, one wins).
    False: a replay (or an unknown computer).  The signature checks are :mod:`.auth`'s."""
    result = session.execute(
        update(db.Computer)
        .where(db.Computer.name == computer, db.Computer.seq < seq)
        .values(seq=seq),
        execution_options={"synchronize_session": False},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def computer_at(session: Session, address: str) -> str | None:
    """The name of the computer whose IPv4 address is ``address`` (None: no such computer)."""
    return session.scalar(select(db.Computer.name).where(db.Computer.address == address).limit(1))


def _computer_ids(session: Session, names: Iterable[str]) -> dict[str, int]:
    wanted = sorted(set(names))
    ids: dict[str, int] = {}
    for i in range(0, len(wanted), _CHUNK):
        rows = session.execute(
            select(db.Computer.name, db.Computer.id).where(
                db.Computer.name.in_(wanted[i : i + _CHUNK])
            )
        )
        ids.update({name: cid for name, cid in rows})
    missing = set(wanted) - set(ids)
    if missing:
        raise UnknownComputerError(", ".join(sorted(missing)))
    return ids


_CHUNK = 500  # names per IN (…): well under SQLite's and PostgreSQL's parameter limits
