"""The engine's queries: an operation and its records in one transaction, sent/ready/final
marks (the first result wins), batched tracking logs, status updates that touch nothing else,
unfinished operations in submission order; two threads writing one SQLite file at once; a
restart that finds everything and duplicates nothing."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from ogref.command_queue import CommandQueue, Job
from ogref.service import db
from ogref.service.db import Database
from ogref.service.migrations import upgrade
from ogref.service.site_io import import_site, load_site
from ogref.service.store import (
    ComputerFlush,
    NewLogLine,
    NewRecord,
    RecordResult,
    UnknownComputerError,
    UnknownRecordError,
    add_image_version,
    add_os_report,
    advance_seq,
    append_logs,
    computer_at,
    create_operation,
    finish_record,
    flush_computers,
    get_operation,
    mark_ready,
    mark_sent,
    mark_sent_many,
    set_command,
    set_status,
    tail_log,
    unfinished_operations,
)

from .conftest import SITE

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def count(database: Database, table: type[db.Base]) -> int:
    with database.reading() as s:
        return s.scalar(select(func.count()).select_from(table)) or 0


def restore(database: Database, *names: str, image: str = "win10") -> int:
    """A restore of ``image`` to ``names`` (jobs reading the image), its id."""
    with database.transaction() as s:
        op = create_operation(
            s,
            "restore",
            {"image": image},
            [NewRecord.for_job(Job(0, n, reads=image), "UNICAST", {"id": f"/{n}"}) for n in names],
            site_index=0,
        )
    return op.id


def test_create_operation(site_db: Database) -> None:
    with site_db.transaction() as s:
        op = create_operation(
            s,
            "clone",
            {"master": "pc01"},
            [
                NewRecord(
                    "pc01",
                    "clone-source",
                    {"kind": "clone_source"},
                    role="source",
                    session=("239.194.1.1", 9000),
                ),
                NewRecord(
                    "pc02", "MULTICAST-DIRECT", {"kind": "restore"}, session=("239.194.1.1", 9000)
                ),
            ],
            site_index=3,
            at=T0,
        )
    assert (op.kind, op.site_index, op.state, op.submitted_at, op.spec) == (
        "clone",
        3,
        "queued",
        T0,
        {"master": "pc01"},
    )
    source = op.record("pc01")
    assert source is not None and source.role == "source" and not source.final
    assert source.job == Job(op.id, "pc01", session=("239.194.1.1", 9000))
    assert [r.computer for r in op.records] == ["pc01", "pc02"]
    with site_db.reading() as s:
        assert get_operation(s, op.id) == op
        assert get_operation(s, op.id + 1) is None


def test_create_operation_is_all_or_nothing(site_db: Database) -> None:
    with pytest.raises(UnknownComputerError, match="pc99"), site_db.transaction() as s:
        create_operation(s, "boot", {}, [NewRecord("pc01"), NewRecord("pc99")])
    with pytest.raises(ValueError, match="one record per computer"), site_db.transaction() as s:
        create_operation(s, "boot", {}, [NewRecord("pc01"), NewRecord("pc01")])
    assert count(site_db, db.Operation) == count(site_db, db.OperationRecord) == 0


def test_an_operation_refused_everywhere_is_done_at_once(site_db: Database) -> None:
    with site_db.transaction() as s:
        op = create_operation(
            s,
            "boot",
            {},
            [NewRecord("pc01", status="failed", code=3, message="no partition", final=True)],
        )
    assert op.done and op.records[0].finished_at is not None
    with site_db.reading() as s:
        assert unfinished_operations(s) == []


def test_sent_ready_command_and_result(site_db: Database) -> None:
    op_id = restore(site_db, "pc01", "pc02")
    with site_db.transaction() as s:
        assert set_command(s, op_id, "pc01", {"id": "x", "master": {"name": "pc03"}})
        assert mark_sent(s, op_id, "pc01", at=T0)
        assert not mark_sent(s, op_id, "pc01", at=T0 + timedelta(seconds=5))  # sent already
        assert not set_command(s, op_id, "pc01", {"too": "late"})
        assert mark_ready(s, op_id, "pc01", at=T0)
        assert not mark_ready(s, op_id, "pc01")
        op = get_operation(s, op_id)
    assert op is not None and op.state == "running"
    rec = op.record("pc01")
    assert rec is not None
    assert (rec.sent_at, rec.ready_at, rec.command) == (
        T0,
        T0,
        {"id": "x", "master": {"name": "pc03"}},
    )

    agent = {
        "code": 0,
        "message": "restored",
        "method_used": "UNICAST-DIRECT",
        "requested": "UNICAST-CACHE",
        "switched": True,
        "reasons": ["cache too small"],
        "bytes_moved": 4 * 2**30,
        "checksum_verified": True,
        "phases": [{"name": "transfer", "start": 1.0, "end": 2.0, "bytes": 10, "detail": ""}],
        "started": T0.timestamp(),
        "finished": T0.timestamp() + 60,
        "stream_md5": "d41d8cd98f00b204e9800998ecf8427e",
    }
    with site_db.transaction() as s:
        assert finish_record(s, op_id, "pc01", RecordResult.from_agent(agent))
        assert not finish_record(s, op_id, "pc01", RecordResult(code=40, message="late timeout"))
        op = get_operation(s, op_id)
    assert op is not None and op.state == "running"  # pc02 still runs
    rec = op.record("pc01")
    assert rec is not None
    assert (rec.status, rec.code, rec.message, rec.final, rec.lost) == (
        "ok",
        0,
        "restored",
        True,
        False,
    )
    assert (rec.method_used, rec.switched, rec.reasons) == (
        "UNICAST-DIRECT",
        True,
        ("cache too small",),
    )
    assert (rec.bytes_moved, rec.checksum_verified) == (4 * 2**30, True)
    assert rec.phases[0]["name"] == "transfer" and rec.stream_md5 == agent["stream_md5"]
    assert (rec.started_at, rec.finished_at) == (T0, T0 + timedelta(seconds=60))

    with site_db.transaction() as s:
        assert not mark_sent(s, op_id, "pc01")  # final: nothing changes
        lost = RecordResult(code=40, message="client stopped responding", status="failed")
        assert finish_record(s, op_id, "pc02", lost, lost=True, at=T0 + timedelta(hours=1))
        op = get_operation(s, op_id)
    assert op is not None and op.done and op.finished_at == T0 + timedelta(hours=1)
    rec = op.record("pc02")
    assert rec is not None and (rec.status, rec.lost, rec.sent_at) == ("failed", True, None)


def test_unknown_records(site_db: Database) -> None:
    op_id = restore(site_db, "pc01")
    with site_db.transaction() as s:
        with pytest.raises(UnknownRecordError, match="pc02"):
            mark_sent(s, op_id, "pc02")
        with pytest.raises(UnknownRecordError, match="no operation"):
            finish_record(s, op_id + 1, "pc01", RecordResult(code=0))


def test_unfinished_operations_in_submission_order_rebuild_the_queue(site_db: Database) -> None:
    first = restore(site_db, "pc01", "pc02")
    with site_db.transaction() as s:
        create_ = create_operation(
            s, "create", {}, [NewRecord.for_job(Job(0, "pc03", writes="win10"), "create", {})]
        ).id
    done = restore(site_db, "lab01")
    last = restore(site_db, "pc02", "pc03")
    with site_db.transaction() as s:
        mark_sent(s, first, "pc01")
        finish_record(s, first, "pc01", RecordResult(code=0))
        mark_sent(s, done, "lab01")
        finish_record(s, done, "lab01", RecordResult(code=0))
    with site_db.reading() as s:
        ops = unfinished_operations(s)
    assert [o.id for o in ops] == [first, create_, last]
    assert [[r.computer for r in o.records] for o in ops] == [
        ["pc01", "pc02"],
        ["pc03"],
        ["pc02", "pc03"],
    ]

    # a restarted service resubmits the unfinished jobs: the queue's rules hold again
    queue = CommandQueue()
    for o in ops:
        queue.submit([r.job for r in o.records if not r.final])
    started = queue.startable()
    assert started == [Job(first, "pc02", reads="win10")]
    assert queue.why_waiting(Job(create_, "pc03", writes="win10")) == (
        f"image win10 is being read by operation {first}"
    )
    assert (
        queue.why_waiting(Job(last, "pc02", reads="win10"))
        == f"pc02 is busy with operation {first}"
    )


def test_logs_are_appended_in_batches_and_tailed(site_db: Database) -> None:
    op_id = restore(site_db, "pc01")
    with site_db.transaction() as s:
        n = append_logs(
            s,
            [
                NewLogLine("pc01", f"line {i}", t=T0 + timedelta(seconds=i), operation_id=op_id)
                for i in range(5)
            ]
            + [NewLogLine("pc02", "other computer")],
        )
        assert append_logs(s, []) == 0
    assert n == 6
    with site_db.reading() as s:
        head = tail_log(s, "pc01", limit=3)
        rest = tail_log(s, "pc01", after_id=head[-1].id)
        assert tail_log(s, "pc01", after_id=rest[-1].id) == []
        assert [line.text for line in tail_log(s, "pc02")] == ["other computer"]
    assert [line.text for line in head + rest] == [f"line {i}" for i in range(5)]
    assert head[0].t == T0 and head[0].operation_id == op_id
    with pytest.raises(UnknownComputerError), site_db.transaction() as s:
        append_logs(s, [NewLogLine("pc01", "kept?"), NewLogLine("ghost", "no")])
    assert count(site_db, db.LogLine) == 6  # the batch is one insert: nothing of it stays


def test_status_updates_touch_nothing_else(site_db: Database) -> None:
    with site_db.transaction() as s:
        before = s.scalars(select(db.Computer).where(db.Computer.name == "pc01")).one()
        snapshot = {c.key: getattr(before, c.key) for c in db.Computer.__mapper__.column_attrs}
    with site_db.transaction() as s:
        set_status(s, "pc01", "OPG", last_seen=T0)
        set_status(s, "pc01", last_seen=T0 + timedelta(seconds=1))
        set_status(s, "pc01")  # nothing to change
        with pytest.raises(ValueError):
            set_status(s, "pc01", "PURPLE")
        with pytest.raises(UnknownComputerError):
            set_status(s, "pc99", "OFF")
    with site_db.reading() as s:
        after = s.scalars(select(db.Computer).where(db.Computer.name == "pc01")).one()
        changed = {k for k, v in snapshot.items() if getattr(after, k) != v}
        assert changed == {"status", "last_seen"}
        assert (after.status, after.last_seen) == ("OPG", T0 + timedelta(seconds=1))


def test_os_reports_and_lookup_by_address(site_db: Database) -> None:
    with site_db.transaction() as s:
        name = computer_at(s, "10.0.2.50")
        assert name == "lab02" and computer_at(s, "10.9.9.9") is None
        add_os_report(s, name, "LNX", hostname="lab02", peer="10.0.2.50", fstab_root="/dev/sda2")
    with site_db.reading() as s:
        report = s.scalars(select(db.OsReport)).one()
    assert (report.status, report.hostname, report.fstab_root) == ("LNX", "lab02", "/dev/sda2")


def test_replay_counter_only_moves_forward(site_db: Database) -> None:
    with site_db.transaction() as s:
        assert advance_seq(s, "pc01", 1)
        assert advance_seq(s, "pc01", 5)
        assert not advance_seq(s, "pc01", 5)  # a replay
        assert not advance_seq(s, "pc01", 3)
        assert not advance_seq(s, "ghost", 9)
        assert advance_seq(s, "pc02", 2)  # counters are per computer
    with site_db.reading() as s:
        seqs = {name: seq for name, seq in s.execute(select(db.Computer.name, db.Computer.seq))}
    assert (seqs["pc01"], seqs["pc02"], seqs["pc03"]) == (5, 2, 0)


def test_a_created_image_is_the_next_version(site_db: Database) -> None:
    with site_db.reading() as s:
        old = load_site(s).find_image("win10")
    new = replace(old, checksum="1" * 32, stored_size=5 * 2**30)
    with site_db.transaction() as s:
        assert add_image_version(s, new) == 2
        assert add_image_version(s, replace(new, name="ubuntu", revision=7)) == 1
        with pytest.raises(LookupError, match="nowhere"):
            add_image_version(s, replace(new, repository="nowhere"))
    with site_db.reading() as s:
        images = load_site(s).repositories[0].images
    assert [(i.name, i.revision) for i in images] == [("win10", 2), ("ubuntu", 1)]
    assert images[0] == replace(new, revision=2)
    with site_db.transaction() as s:  # a site import that names revision 1 deletes 2…
        import_site(s, SITE)
        assert add_image_version(s, new) == 3  # …whose number is not reused


# --------------------------------------------------------------------------- threads, restart


def test_two_threads_write_one_database_at_once(db_url: str) -> None:
    """Each thread creates operations, marks and finishes its records and appends logs, in
    many short transactions, at the same time as the other: no "database is locked" (SQLite),
    no deadlock (PostgreSQL)."""
    d = Database(db_url)
    rounds = 25
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(computers: list[str]) -> None:
        try:
            start.wait()
            for i in range(rounds):
                op_id = restore(d, *computers)
                for name in computers:
                    with d.transaction() as s:
                        mark_sent(s, op_id, name)
                        append_logs(
                            s, [NewLogLine(name, f"{i}: {k}", operation_id=op_id) for k in range(3)]
                        )
                    with d.transaction() as s:
                        finish_record(s, op_id, name, RecordResult(code=0))
                        set_status(s, name, "OPG", db.utcnow())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(["pc01", "pc02"],)),
        threading.Thread(target=work, args=(["pc03", "lab01"],)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert count(d, db.Operation) == 2 * rounds
    assert count(d, db.LogLine) == 2 * rounds * 2 * 3
    with d.reading() as s:
        assert unfinished_operations(s) == []
        assert s.scalar(select(func.count()).where(db.OperationRecord.final.is_(False))) == 0
        ids = s.scalars(select(db.Operation.id).order_by(db.Operation.id)).all()
    assert ids == list(range(ids[0], ids[0] + 2 * rounds))  # one sequence, no gaps
    d.close()


def test_two_creates_of_one_image_at_once_get_two_versions(db_url: str) -> None:
    """Two agents publish a new version of the same image at the same moment: each gets its
    own revision (PostgreSQL: the repository's row is locked while the next one is chosen)."""
    d = Database(db_url)
    with d.reading() as s:
        image = load_site(s).find_image("win10")
    start = threading.Barrier(2)
    got: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            start.wait()
            for _ in range(15):
                with d.transaction() as s:
                    got.append(add_image_version(s, image))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert sorted(got) == list(range(2, 32))
    d.close()


def test_restart_finds_unfinished_operations_records_and_logs(db_url: str) -> None:
    url = db_url
    d = Database(url)
    finished = restore(d, "pc01")
    half = restore(d, "pc01", "pc02", "lab01")
    queued = restore(d, "pc02", "pc03")
    with d.transaction() as s:
        mark_sent(s, finished, "pc01")
        finish_record(s, finished, "pc01", RecordResult(code=0))
        mark_sent(s, half, "pc01")
        mark_sent(s, half, "pc02")
        finish_record(s, half, "pc02", RecordResult(code=57, message="multicast receiver"))
        append_logs(s, [NewLogLine("pc01", f"progress {i}", operation_id=half) for i in range(4)])
        before = unfinished_operations(s)
    logs = count(d, db.LogLine)
    d.close()  # the service stops (every connection closed)

    upgrade(url)  # the service starts again: migrating a database at head does nothing
    again = Database(url)
    with again.reading() as s:
        after = unfinished_operations(s)
        assert [line.text for line in tail_log(s, "pc01")] == [f"progress {i}" for i in range(4)]
    assert after == before
    assert [o.id for o in after] == [half, queued]
    assert [(r.computer, r.status, r.final, r.sent_at is not None) for r in after[0].records] == [
        ("pc01", "not_started", False, True),
        ("pc02", "failed", True, True),
        ("lab01", "not_started", False, False),
    ]
    assert count(again, db.Operation) == 3
    assert count(again, db.OperationRecord) == 6
    assert count(again, db.LogLine) == logs

    # the restarted service marks what was running lost and carries on: nothing duplicated
    with again.transaction() as s:
        for rec in after[0].records:
            if rec.sent_at is not None and not rec.final:
                finish_record(
                    s,
                    half,
                    rec.computer,
                    RecordResult(code=40, message="service restarted"),
                    lost=True,
                )
        finish_record(s, half, "lab01", RecordResult(code=0))
    with again.reading() as s:
        assert [o.id for o in unfinished_operations(s)] == [queued]
    assert restore(again, "lab02") == queued + 1
    again.close()


def test_batched_writes_do_what_the_single_ones_do(site_db: Database) -> None:
    """The engine's batches (many agents at once): sent marks, statuses, replay counters."""
    first = restore(site_db, "pc01", "pc02")
    second = restore(site_db, "pc03")
    with site_db.reading() as s:
        before_pc04 = tuple(s.execute(select(db.Computer.status, db.Computer.last_seen)
                                      .where(db.Computer.name == "pc04")).one())  # fmt: skip
    with site_db.transaction() as s:
        mark_sent(s, first, "pc02", at=T0)  # sent already: the batch leaves it
        mark_sent_many(s, [(first, "pc01", T0 + timedelta(seconds=1)),
                           (first, "pc02", T0 + timedelta(seconds=9))])  # fmt: skip
        advance_seq(s, "pc02", 7)
        advance_seq(s, "pc03", 5)
        flush_computers(s, [
            ComputerFlush("pc01", 4, "BSY", T0),
            ComputerFlush("pc02", 3, "OPG", T0 + timedelta(seconds=2)),  # 3 < 7: seq kept at 7
            ComputerFlush("pc03", None, "OFF", T0),  # seq unchanged
            ComputerFlush("pc04", 9),  # status and last seen unchanged
        ])  # fmt: skip
    with site_db.reading() as s:
        op1, op2 = get_operation(s, first), get_operation(s, second)
        rows = {n: (st, seen, q) for n, st, seen, q in s.execute(
            select(db.Computer.name, db.Computer.status, db.Computer.last_seen, db.Computer.seq))}  # fmt: skip
    assert op1 is not None and op2 is not None
    assert (op1.state, op2.state) == ("running", "queued")
    sent = {r.computer: r.sent_at for r in op1.records}
    assert sent == {"pc01": T0 + timedelta(seconds=1), "pc02": T0}
    assert rows["pc01"] == ("BSY", T0, 4)
    assert rows["pc02"] == ("OPG", T0 + timedelta(seconds=2), 7)
    assert rows["pc03"] == ("OFF", T0, 5)
    assert rows["pc04"][2] == 9 and rows["pc04"][:2] == before_pc04
