"""The console's command queue: when each computer's part of a console command may start, and
what it waits for.

OpenGnSys's server keeps a queue of commands per computer: a computer busy with one command is
given the next when it finishes, and commands to disjoint computers run at once.  ogLab adds the
dependencies a real classroom needs between commands, as rules every backend shares:

1. **One command at a time per computer**, in submission order (OpenGnSys's per-computer queue).
2. **An image is read after it is written**: a job that reads image *X* (restore, deploy,
   updateCache) waits while a create of *X* into the repository submitted *before* it has not
   finished (its publication); a create of *X* waits while readers of *X* submitted before it
   still run (a new version is not published under a transfer of the old one).
3. **Two multicast sessions never share (address, port)**: a job whose session uses a pair that
   another command holds waits until that command's last job on the pair has ended; commands
   take a pair in submission order.  (udp-sender binds the port; a second sender on it would be
   refused, a receiver of the second command would join the first's stream.)
4. Everything else runs at once.

Sans-I/O: it is told of submissions and of jobs ending, and answers which jobs may start now
(:meth:`CommandQueue.startable`) and why the others wait (:meth:`CommandQueue.waits`).  The
simulator drives it in virtual time, the lab server in wall time; it decides nothing about
methods (that is :mod:`ogref.core`) and runs nothing.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Job:
    """One computer's part of a console command.

    ``reads``/``writes``: the repository image it reads or creates; ``session``: the multicast
    (address, port) it uses, if any.
    """

    op: int
    computer: str
    reads: str | None = None
    writes: str | None = None
    session: tuple[str, int] | None = None

    def __str__(self) -> str:
        return f"operation {self.op} on {self.computer}"


class CommandQueue:
    """Jobs submitted, running and done, and the rules that order them (indexed, so a campus of
    thousands of computers is cheap: each check looks at one computer's queue, one image's
    readers and writers, one session's commands)."""

    def __init__(self) -> None:
        self._rank: dict[int, int] = {}  # operation → submission rank
        self._queues: dict[str, deque[Job]] = {}  # computer → its unfinished jobs, in order
        self._running: set[Job] = set()
        # image → unfinished creates / readers, in submission order (dicts: O(1) removal)
        self._writers: dict[str, dict[Job, None]] = defaultdict(dict)
        self._readers: dict[str, dict[Job, None]] = defaultdict(dict)
        self._queued = 0  # jobs submitted, neither running nor finished yet
        self._sessions: dict[tuple[str, int], Counter[int]] = defaultdict(Counter)  # unfinished
        self._session_running: dict[tuple[str, int], Counter[int]] = defaultdict(Counter)

    def submit(self, jobs: list[Job]) -> None:
        """Queue one command's jobs (all of the same operation, one per computer)."""
        ops = {j.op for j in jobs}
        if len(ops) > 1:
            raise ValueError(f"one command's jobs must share their operation (got {sorted(ops)})")
        if len({j.computer for j in jobs}) != len(jobs):
            raise ValueError("one command has at most one job per computer")
        for op in ops:
            if op in self._rank:
                raise ValueError(f"operation {op} was submitted already")
            self._rank[op] = len(self._rank)
        self._queued += len(jobs)
        for j in jobs:
            self._queues.setdefault(j.computer, deque()).append(j)
            if j.writes:
                self._writers[j.writes][j] = None
            if j.reads:
                self._readers[j.reads][j] = None
            if j.session is not None:
                self._sessions[j.session][j.op] += 1

    def why_waiting(self, job: Job) -> str | None:
        """Why queued ``job`` cannot start now (None: it can, or it is not queued)."""
        queue = self._queues.get(job.computer)
        if not queue or job not in queue or job in self._running:
            return None
        if queue[0] != job:
            return f"{job.computer} is busy with operation {queue[0].op}"
        rank = self._rank[job.op]
        if job.reads:
            for w in self._writers.get(job.reads, ()):
                if self._rank[w.op] < rank:
                    return f"image {job.reads} is being created by operation {w.op}"
        if job.writes:
            for r in self._readers.get(job.writes, ()):
                if self._rank[r.op] < rank:
                    return f"image {job.writes} is being read by operation {r.op}"
        if job.session is not None:
            running = self._session_running[job.session]
            for op in self._sessions[job.session]:
                if op != job.op and (self._rank[op] < rank or running[op]):
                    address, port = job.session
                    return f"multicast {address}:{port} is held by operation {op}"
        return None

    def startable(self) -> list[Job]:
        """The jobs that may start now (in submission order); they are marked running."""
        if not self._queued:  # everything submitted is running or done: nothing to look at
            return []
        ready = [
            q[0]
            for q in self._queues.values()
            if q and q[0] not in self._running and self.why_waiting(q[0]) is None
        ]
        ready.sort(key=lambda j: self._rank[j.op])
        self._queued -= len(ready)
        for j in ready:
            self._running.add(j)
            if j.session is not None:
                self._session_running[j.session][j.op] += 1
        return ready

    def waits(self) -> dict[Job, str]:
        """Every queued job that cannot start now, with the reason (for tracking logs)."""
        out: dict[Job, str] = {}
        if not self._queued:
            return out
        for q in self._queues.values():
            for j in q:
                why = self.why_waiting(j)
                if why is not None:
                    out[j] = why
        return out

    def finished(self, job: Job) -> None:
        """``job`` ended (whatever its outcome), or is dropped before it started."""
        queue = self._queues.get(job.computer)
        if not queue or job not in queue:
            return
        queue.remove(job)
        if job not in self._running:
            self._queued -= 1  # dropped before it started
        else:
            self._running.discard(job)
            if job.session is not None:
                self._session_running[job.session][job.op] -= 1
        if job.writes:
            self._writers[job.writes].pop(job, None)
        if job.reads:
            self._readers[job.reads].pop(job, None)
        if job.session is not None:
            left = self._sessions[job.session]
            left[job.op] -= 1
            if left[job.op] <= 0:
                del left[job.op]
                self._session_running[job.session].pop(job.op, None)

    def cancel(self, op: int, computer: str | None = None) -> list[Job]:
        """Drop the queued (not running) jobs of ``op`` (on ``computer``); the jobs dropped."""
        dropped = [
            j
            for q in self._queues.values()
            for j in q
            if j.op == op
            and (computer is None or j.computer == computer)
            and j not in self._running
        ]
        for j in dropped:
            self.finished(j)
        return dropped

    @property
    def idle(self) -> bool:
        """Nothing running and nothing queued."""
        return not any(self._queues.values())

    def running(self) -> set[Job]:
        return set(self._running)
