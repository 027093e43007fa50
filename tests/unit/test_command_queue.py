"""The console's command queue: one test per rule, and the rules' invariants under random
workloads (hypothesis): no computer runs two jobs, no reader overtakes an earlier create, no two
commands hold one multicast (address, port), and the queue never deadlocks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ogref.command_queue import CommandQueue, Job

S1 = ("239.194.1.1", 9000)
S2 = ("239.194.2.1", 9000)


def names(jobs: list[Job]) -> set[tuple[int, str]]:
    return {(j.op, j.computer) for j in jobs}


def test_disjoint_computers_run_at_once() -> None:
    q = CommandQueue()
    q.submit([Job(0, "pc01"), Job(0, "pc02")])
    q.submit([Job(1, "pc03")])
    assert names(q.startable()) == {(0, "pc01"), (0, "pc02"), (1, "pc03")}


def test_a_busy_computer_queues_the_next_command() -> None:
    q = CommandQueue()
    first = [Job(0, "pc01"), Job(0, "pc02")]
    q.submit(first)
    q.submit([Job(1, "pc01"), Job(1, "pc03")])
    assert names(q.startable()) == {(0, "pc01"), (0, "pc02"), (1, "pc03")}
    assert q.waits() == {Job(1, "pc01"): "pc01 is busy with operation 0"}
    q.finished(first[1])
    assert q.startable() == []
    q.finished(first[0])
    assert names(q.startable()) == {(1, "pc01")}


def test_a_restore_waits_for_the_create_of_its_image() -> None:
    q = CommandQueue()
    q.submit([Job(0, "master", writes="win10")])
    q.submit([Job(1, "pc01", reads="win10"), Job(1, "pc02", reads="win10")])
    q.submit([Job(2, "pc03", reads="ubuntu")])
    assert names(q.startable()) == {(0, "master"), (2, "pc03")}
    assert q.why_waiting(Job(1, "pc01", reads="win10")) == (
        "image win10 is being created by operation 0"
    )
    q.finished(Job(0, "master", writes="win10"))
    assert names(q.startable()) == {(1, "pc01"), (1, "pc02")}


def test_a_create_waits_for_earlier_readers_and_later_readers_wait_for_it() -> None:
    q = CommandQueue()
    q.submit([Job(0, "pc01", reads="win10")])
    q.submit([Job(1, "master", writes="win10")])
    q.submit([Job(2, "pc02", reads="win10")])
    assert names(q.startable()) == {(0, "pc01")}
    assert "being read by operation 0" in (q.why_waiting(Job(1, "master", writes="win10")) or "")
    q.finished(Job(0, "pc01", reads="win10"))
    assert names(q.startable()) == {(1, "master")}
    q.finished(Job(1, "master", writes="win10"))
    assert names(q.startable()) == {(2, "pc02")}


def test_two_commands_never_share_a_multicast_address_and_port() -> None:
    q = CommandQueue()
    q.submit([Job(0, "pc01", session=S1), Job(0, "pc02", session=S1)])
    q.submit([Job(1, "b01", session=S1), Job(1, "b02", session=S2)])
    q.submit([Job(2, "c01", session=S2)])
    # op 1's S1 job waits for op 0 to release S1; op 1 on S2 is first on S2; op 2 waits for it
    assert names(q.startable()) == {(0, "pc01"), (0, "pc02"), (1, "b02")}
    assert (
        q.waits()[Job(1, "b01", session=S1)] == "multicast 239.194.1.1:9000 is held by operation 0"
    )
    assert (
        q.waits()[Job(2, "c01", session=S2)] == "multicast 239.194.2.1:9000 is held by operation 1"
    )
    q.finished(Job(0, "pc01", session=S1))
    assert q.startable() == []  # pc02 still holds S1 for operation 0
    q.finished(Job(0, "pc02", session=S1))
    assert names(q.startable()) == {(1, "b01")}


def test_a_session_is_held_by_its_command_while_one_of_its_jobs_waits_elsewhere() -> None:
    # op 1's job on pc01 waits behind op 0 (per-computer queue); op 1 has started on pc02, so
    # it holds S1 — a later op 2 on S1 must not slip in between
    q = CommandQueue()
    q.submit([Job(0, "pc01")])
    q.submit([Job(1, "pc01", session=S1), Job(1, "pc02", session=S1)])
    q.submit([Job(2, "pc03", session=S1)])
    assert names(q.startable()) == {(0, "pc01"), (1, "pc02")}
    q.finished(Job(1, "pc02", session=S1))
    assert q.startable() == []
    q.finished(Job(0, "pc01"))
    assert names(q.startable()) == {(1, "pc01")}
    q.finished(Job(1, "pc01", session=S1))
    assert names(q.startable()) == {(2, "pc03")}


def test_cancel_drops_queued_jobs_only() -> None:
    q = CommandQueue()
    q.submit([Job(0, "pc01"), Job(0, "pc02")])
    q.submit([Job(1, "pc01")])
    q.startable()
    assert q.cancel(0) == []  # both running
    assert q.cancel(1) == [Job(1, "pc01")]
    q.finished(Job(0, "pc01"))
    q.finished(Job(0, "pc02"))
    assert q.idle and q.startable() == []


def test_bad_submissions_are_refused() -> None:
    q = CommandQueue()
    q.submit([Job(0, "pc01")])
    with pytest.raises(ValueError, match="submitted already"):
        q.submit([Job(0, "pc02")])
    with pytest.raises(ValueError, match="share their operation"):
        q.submit([Job(1, "pc01"), Job(2, "pc02")])
    with pytest.raises(ValueError, match="one job per computer"):
        q.submit([Job(3, "pc01"), Job(3, "pc01")])


PCS = ["pc1", "pc2", "pc3", "pc4"]
IMAGES = [None, "a", "b"]
SESSIONS = [None, S1, S2]


@st.composite
def workloads(draw: st.DrawFn) -> list[list[Job]]:
    ops = []
    for op in range(draw(st.integers(1, 6))):
        pcs = draw(st.lists(st.sampled_from(PCS), min_size=1, max_size=4, unique=True))
        kind = draw(st.sampled_from(["read", "write", "other"]))
        image = draw(st.sampled_from(IMAGES))
        session = draw(st.sampled_from(SESSIONS)) if kind == "read" else None
        if kind == "write":
            pcs = pcs[:1]
        ops.append(
            [
                Job(
                    op,
                    pc,
                    reads=image if kind == "read" else None,
                    writes=image if kind == "write" else None,
                    session=session,
                )
                for pc in pcs
            ]
        )
    return ops


@settings(max_examples=300, deadline=None, derandomize=True)
@given(workloads(), st.randoms(use_true_random=False))
def test_invariants_hold_and_everything_finishes(ops: list[list[Job]], rnd: object) -> None:
    import random

    assert isinstance(rnd, random.Random)
    q = CommandQueue()
    submitted: list[Job] = []
    pending_ops = list(ops)
    running: list[Job] = []
    finished: set[Job] = set()
    steps = 0
    while pending_ops or running or not q.idle:
        steps += 1
        assert steps < 1000, "the queue deadlocked"
        if pending_ops and (not running or rnd.random() < 0.5):
            jobs = pending_ops.pop(0)
            q.submit(jobs)
            submitted += jobs
        running += q.startable()
        # invariants over what runs now
        assert len({j.computer for j in running}) == len(running), "a computer runs two jobs"
        for j in running:
            rank = j.op
            for w in submitted:
                if w.writes and w.writes == j.reads and w.op < rank:
                    assert w in finished, f"{j} read before {w} was published"
        held = {(j.session, j.op) for j in running if j.session}
        assert len({s for s, _ in held}) == len(held), "two commands hold one session"
        if running:
            done = running.pop(rnd.randrange(len(running)))
            q.finished(done)
            finished.add(done)
        else:
            assert not q.waits() or pending_ops, f"nothing runs, yet jobs wait: {q.waits()}"
    assert finished == set(submitted)
