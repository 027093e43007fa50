"""The chunkcast sender as a state machine without I/O: it is handed datagrams and the time, and
says which datagrams to send and when to call it again.

What it does (docs/chunkcast.md): it keeps one queue of the objects receivers asked for (whole,
or some blocks), each object once however many receivers asked; it serves the queue like an
elevator — objects in ascending order from a cursor, wrapping around — so a receiver asking for
objects the others already have (a late joiner, a slow one) is served after the current sweep
instead of slowing it; it paces datagrams to its rate (the session string's cap) and backs off
when the *median* receiver reports loss (congestion the whole group sees), never for one
receiver; it never waits for anyone; it announces itself, its queue and the request interval
every :attr:`SenderConfig.announce_s`; it ends when nothing is queued and nobody has asked for
anything for :attr:`SenderConfig.idle_end_s`.  The runtime (:mod:`.runtime`) owns the sockets,
the clock and the chunk files (``read``).
"""

from __future__ import annotations

import bisect
import itertools
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from ogref.transports.chunkcast import wire
from ogref.transports.chunkcast.wire import Kind

UDP_IP_OVERHEAD = 28


@dataclass(frozen=True)
class SenderConfig:
    """A sender's knobs; the session string gives ``rate_bps``, ``min_receivers``, ``max_wait_s``."""

    rate_bps: float = 70e6  # the cap (bits per second on the wire, headers included)
    block: int = wire.DEFAULT_BLOCK
    announce_s: float = 0.1
    idle_end_s: float = 10.0  # end when nothing is queued and nobody asked for this long
    done_end: int = 0  # …or once this many receivers said they are complete (0: never; a clone)
    start_timeout_s: float = 300.0  # end when nobody ever asked
    min_receivers: int = 1  # the first data waits for this many receivers…
    max_wait_s: float = 0.0  # …or this long after the first request
    request_s: float = 0.05  # the shortest interval between one receiver's requests
    max_requests_per_s: float = 400.0  # the request interval grows so that all stay below this
    burst_s: float = 0.002  # credit the pacer may accumulate
    catchup_s: float = 0.1  # time lost while sending (the process descheduled) it makes up…
    catchup_factor: float = 1.1  # …at this multiple of the rate at most
    adjust_s: float = 0.5  # how often the rate is reconsidered
    backoff_loss: float = 0.05  # median loss above this: rate × backoff_factor
    backoff_factor: float = 0.7
    recover_loss: float = 0.02  # below this: + recover_step × cap
    recover_step: float = 0.1
    min_rate_fraction: float = 0.05
    report_s: float = 2.0  # how long a receiver's loss report counts


@dataclass
class SenderStats:
    data_packets: int = 0
    data_bytes: int = 0  # payload bytes sent
    announces: int = 0
    requests: int = 0
    forged: int = 0
    malformed: int = 0
    foreign: int = 0  # authenticated, but another session's
    sweeps: int = 0  # times the cursor wrapped
    receivers: set[int] = field(default_factory=set)
    done: set[int] = field(default_factory=set)
    rate_changes: list[tuple[float, float]] = field(default_factory=list)


class SenderCore:
    """One session's sender.  ``frames[i]`` is object ``i``'s size; ``read(i)`` its bytes."""

    def __init__(
        self,
        key: bytes,
        session: int,
        announce: wire.Announce,
        frames: Sequence[int],
        read: Callable[[int], bytes],
        cfg: SenderConfig,
        now: float,
    ) -> None:
        self.key = key
        self.session = session
        self.base = announce
        self.frames = list(frames)
        self.read = read
        self.cfg = cfg
        self.stats = SenderStats()
        self.rate = cfg.rate_bps
        self.seq = 0
        self.pending: dict[int, set[int] | None] = {}
        self.order: list[int] = []  # pending's keys, sorted
        self.repairs: list[int] = []  # pending objects somebody asked for in part, sorted
        self.repair_cursor = 0  # repairs go in ascending order from here (after a wrap)
        self.repairing = False  # the current object is a repair (it does not move the cursor)
        self.cursor = 0
        self.current: int | None = None
        self.current_blocks: list[int] = []
        self.current_pos = 0
        self.current_frame = b""
        self.start = now
        self.first_request: float | None = None
        self.last_request: float | None = None
        self.next_announce = now
        self.next_send = now  # the rate's schedule: it may fall behind now by catchup_s
        self.next_slot = now  # the catch-up's schedule: rate × catchup_factor at most
        self.next_adjust = now + cfg.adjust_s
        self.reports: dict[int, tuple[float, float]] = {}  # receiver → (loss, when)
        self.seen: dict[int, float] = {}  # receiver → last request
        self.ended = False
        self.busy = False  # sent data since the queue last drained

    # ------------------------------------------------------------------ input

    def nblocks(self, obj: int) -> int:
        return max(1, -(-self.frames[obj] // self.cfg.block))

    def receive(self, packet: bytes, now: float) -> None:
        """A datagram from the network (anything: it is checked here)."""
        try:
            head, body = wire.open_(self.key, packet)
            if head.kind is not Kind.REQUEST:
                return  # our own multicast looped back, or another sender's
            if head.session != self.session:
                self.stats.foreign += 1
                return
            req = wire.Request.decode(body)
        except wire.ForgedError:
            self.stats.forged += 1
            return
        except wire.MalformedError:
            self.stats.malformed += 1
            return
        self.stats.requests += 1
        self.stats.receivers.add(req.receiver)
        self.seen[req.receiver] = now
        self.reports[req.receiver] = (req.loss_permille / 1000, now)
        if req.flags & wire.FLAG_DONE:
            self.stats.done.add(req.receiver)
        if req.flags & wire.FLAG_DONE:
            return
        self.last_request = now  # an incomplete receiver keeps the session alive, even idle
        if not req.entries:
            return
        if self.first_request is None:
            self.first_request = now
        n = len(self.frames)
        for e in req.entries:
            if e.whole:
                for obj in range(max(0, e.obj), min(n, e.obj + e.first + 1)):
                    self._queue(obj, None)
            elif 0 <= e.obj < n:
                last = self.nblocks(e.obj)
                blocks = set(range(min(e.first, last), min(e.first + e.count, last)))
                if blocks:
                    self._queue(e.obj, blocks)

    def _queue(self, obj: int, blocks: set[int] | None) -> None:
        if obj == self.current:  # what is still to come of the current object is not asked
            ahead = set(self.current_blocks[self.current_pos :])
            wanted = set(range(self.nblocks(obj))) if blocks is None else blocks
            blocks = wanted - ahead
            if not blocks:
                return
        if obj not in self.pending:
            self.pending[obj] = blocks
            bisect.insort(self.order, obj)
            if blocks is not None:
                bisect.insort(self.repairs, obj)
            return
        if blocks is not None:  # somebody lost part of it: a repair, even if another asks
            _insert(self.repairs, obj)  # for all of it (a late joiner, a slow disk)
        have = self.pending[obj]
        if have is None:
            return
        if blocks is None:
            self.pending[obj] = None
        else:
            have |= blocks

    # ------------------------------------------------------------------ output

    def poll(self, now: float) -> tuple[list[bytes], float | None]:
        """Datagrams to send now, and when to be called again (None: the session is over)."""
        if self.ended:
            return [], None
        out: list[bytes] = []
        if now >= self.next_adjust:
            self._adjust(now)
        if self._over(now):
            self.ended = True
            return [self._seal(Kind.END, b"") for _ in range(3)], None
        if now >= self.next_announce:
            out.append(self._announce(now))
            self.next_announce = now + self.cfg.announce_s
        wake = min(self.next_announce, self.next_adjust)
        if self._may_send(now):
            # while sending, time lost to the host (the process not scheduled) is made up, a
            # little above the rate; an idle queue is no debt
            credit = self.cfg.catchup_s if self.busy else self.cfg.burst_s
            self.next_send = max(self.next_send, now - credit)
            self.next_slot = max(self.next_slot, now - self.cfg.burst_s)
            while self.next_send <= now and self.next_slot <= now and len(out) < 64:
                packet = self._next_data()
                if packet is None:
                    if self.busy:  # just drained: tell the receivers at once
                        self.busy = False
                        out.append(self._announce(now))
                        self.next_announce = now + self.cfg.announce_s
                    break
                self.busy = True
                out.append(packet)
                gap = (len(packet) + UDP_IP_OVERHEAD) * 8 / self.rate
                self.next_send += gap
                self.next_slot += gap / self.cfg.catchup_factor
            if self.current is not None or self.pending:
                wake = min(wake, max(self.next_send, self.next_slot, now))
        elif self.first_request is not None:
            wake = min(wake, self.first_request + self.cfg.max_wait_s)
        if not self.pending and self.current is None:
            wake = min(wake, self._end_time())
        return out, wake

    def _may_send(self, now: float) -> bool:
        if self.first_request is None:
            return False
        if now - self.first_request >= self.cfg.max_wait_s:
            return True
        return len(self.stats.receivers) >= self.cfg.min_receivers

    def _end_time(self) -> float:
        if self.last_request is None:
            return self.start + self.cfg.start_timeout_s
        return self.last_request + self.cfg.idle_end_s

    def _over(self, now: float) -> bool:
        if self.pending or self.current is not None:
            return False
        everyone = 0 < self.cfg.done_end <= len(self.stats.done)
        return everyone or now >= self._end_time()

    def _seal(self, kind: Kind, body: bytes) -> bytes:
        self.seq += 1
        return wire.seal(self.key, kind, self.session, self.seq, body)

    def _announce(self, now: float) -> bytes:
        self.stats.announces += 1
        active = sum(1 for t in self.seen.values() if now - t < 5.0)
        request_s = max(self.cfg.request_s, active / self.cfg.max_requests_per_s)
        pending = self.order
        if self.current is not None and self.current not in self.pending:
            pending = sorted([*self.order, self.current])
        idle = 0 if self.last_request is None else now - self.last_request
        ann = wire.Announce(
            self.base.image,
            self.base.manifest_hash,
            self.base.manifest_frame,
            self.base.manifest_size,
            len(self.frames),
            self.cfg.block,
            min(0xFFFF, round(request_s * 1000)),
            round(self.rate / 1000),
            self.cursor if self.current is None else self.current,
            round(idle * 1000) if not (self.pending or self.current is not None) else 0,
            False,
            tuple(itertools.islice(_runs(pending), 400)),
        )
        return self._seal(Kind.ANNOUNCE, ann.encode())

    def _pick(self) -> int | None:
        if not self.order:
            return None
        self.repairing = False
        if self.order[0] == 0:  # the manifest first: nobody can use anything without it
            _remove(self.repairs, 0)
            return self.order.pop(0)
        if self.stats.sweeps and self.repairs:
            # once a sweep is over, what receivers lost (objects asked for in part) goes before
            # the whole objects a late joiner or a slow disk asked for, so that a receiver that
            # had the sweep finishes with its repairs, not after the others' next sweep
            j = bisect.bisect_left(self.repairs, self.repair_cursor)
            obj = self.repairs.pop(j if j < len(self.repairs) else 0)
            _remove(self.order, obj)
            self.repair_cursor, self.repairing = obj + 1, True
            return obj
        i = bisect.bisect_left(self.order, self.cursor)
        if i == len(self.order):
            self.stats.sweeps += 1
            self.cursor = self.repair_cursor = 0
            if self.repairs:
                return self._pick()
            i = 0
        obj = self.order.pop(i)
        _remove(self.repairs, obj)
        return obj

    def _next_data(self) -> bytes | None:
        while self.current is None or self.current_pos >= len(self.current_blocks):
            if self.current is not None:
                if not self.repairing:  # a repair leaves the whole objects' sweep where it was
                    self.cursor = self.current + 1
                self.current = None
            obj = self._pick()
            if obj is None:
                return None
            blocks = self.pending.pop(obj)
            self.current = obj
            self.current_blocks = sorted(blocks) if blocks is not None else []
            if blocks is None:
                self.current_blocks = list(range(self.nblocks(obj)))
            self.current_pos = 0
            self.current_frame = self.read(obj)
        assert self.current is not None
        block = self.current_blocks[self.current_pos]
        self.current_pos += 1
        size = self.cfg.block
        payload = memoryview(self.current_frame)[block * size : (block + 1) * size]
        self.stats.data_packets += 1
        self.stats.data_bytes += len(payload)
        body = wire.Data(self.current, block, len(self.current_frame), payload).encode()
        return self._seal(Kind.DATA, body)

    def _adjust(self, now: float) -> None:
        """Back off when the median receiver reports loss; creep back to the cap otherwise."""
        self.next_adjust = now + self.cfg.adjust_s
        recent = [loss for loss, t in self.reports.values() if now - t < self.cfg.report_s]
        if not recent:
            return
        median = statistics.median(recent)
        rate = self.rate
        if median > self.cfg.backoff_loss:
            rate = max(self.cfg.rate_bps * self.cfg.min_rate_fraction,
                       rate * self.cfg.backoff_factor)  # fmt: skip
        elif median < self.cfg.recover_loss:
            rate = min(self.cfg.rate_bps, rate + self.cfg.recover_step * self.cfg.rate_bps)
        if rate != self.rate:
            self.rate = rate
            self.stats.rate_changes.append((now, rate))


def _insert(items: list[int], x: int) -> None:
    """Insert ``x`` into the sorted list ``items`` unless it is there."""
    i = bisect.bisect_left(items, x)
    if i == len(items) or items[i] != x:
        items.insert(i, x)


def _remove(items: list[int], x: int) -> None:
    """Remove ``x`` from the sorted list ``items`` if it is there."""
    i = bisect.bisect_left(items, x)
    if i < len(items) and items[i] == x:
        del items[i]


def _runs(items: Sequence[int]) -> Iterator[tuple[int, int]]:
    start = prev = None
    for x in items:
        if start is None:
            start = prev = x
        elif x == prev + 1:  # type: ignore[operator]
            prev = x
        else:
            yield start, prev - start + 1  # type: ignore[operator]
            start = prev = x
    if start is not None:
        yield start, prev - start + 1  # type: ignore[operator]
