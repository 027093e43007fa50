"""The event loop of the simulator: a clock and a heap of timed callbacks.

Purpose-built instead of SimPy, by measurement: 200,000 one-timeout SimPy processes run at
~77k/s on these machines, the same timers as heap callbacks at ~250k/s (3.3× faster).  More
important, the models are fluid (rates recomputed at discrete instants, one timer for the next
completion), so they need timers, not processes.  Ties are broken by insertion order, so a run is deterministic.  No models here.

A *daemon* timer (a torrent client's periodic re-announce) is not work: it never keeps the loop
running by itself.  Once only daemon timers are left, each of those runs once more (it may find
work and schedule other timers); a daemon timer scheduled after that point ends the run.  So a
model whose only activity left is polling ends instead of polling forever.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any


class Timer:
    """A scheduled callback; ``cancel()`` stops it from running."""

    __slots__ = ("args", "cancelled", "daemon", "fn", "loop", "time")

    def __init__(
        self,
        time: float,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        loop: Loop | None = None,
        daemon: bool = False,
    ) -> None:
        self.time = time
        self.fn = fn
        self.args = args
        self.cancelled = False
        self.loop = loop
        self.daemon = daemon

    def cancel(self) -> None:
        """Do not run this callback (no effect once it ran)."""
        if not self.cancelled and not self.daemon and self.loop is not None:
            self.loop._work -= 1
        self.cancelled = True


class Loop:
    """A discrete-event clock (seconds)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.events = 0
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = 0
        self._work = 0  # pending (not cancelled) timers that are not daemons

    def at(self, time: float, fn: Callable[..., Any], *args: Any, daemon: bool = False) -> Timer:
        """Run ``fn(*args)`` at ``time`` (never in the past); see the module doc for ``daemon``."""
        timer = Timer(time if time > self.now else self.now, fn, args, self, daemon)
        self._seq += 1
        if not daemon:
            self._work += 1
        heapq.heappush(self._heap, (timer.time, self._seq, timer))
        return timer

    def after(
        self, delay: float, fn: Callable[..., Any], *args: Any, daemon: bool = False
    ) -> Timer:
        """Run ``fn(*args)`` after ``delay`` seconds."""
        now = self.now
        timer = Timer(now + delay if delay > 0.0 else now, fn, args, self, daemon)
        self._seq += 1
        if not daemon:
            self._work += 1
        heapq.heappush(self._heap, (timer.time, self._seq, timer))
        return timer

    def run(self, until: float | None = None) -> float:
        """Run until no work is left (or ``until``); return the final time."""
        heap = self._heap
        last_call: int | None = None  # daemons scheduled after this sequence number had theirs
        held: list[tuple[float, int, Timer]] = []
        while heap:
            time, seq, timer = heap[0]
            if until is not None and time > until:
                self.now = until
                for entry in held:  # not run yet: still due after ``until``
                    heapq.heappush(heap, entry)
                break
            heapq.heappop(heap)
            if timer.cancelled:
                continue
            if self._work == 0:  # only daemon timers left
                if last_call is None:
                    last_call = self._seq
                if seq > last_call:
                    held.append((time, seq, timer))
                    continue
            elif last_call is not None:  # a daemon found work: the held ones run again later
                last_call = None
                for entry in held:
                    entry[2].time = max(entry[0], self.now)
                    heapq.heappush(heap, (entry[2].time, entry[1], entry[2]))
                held.clear()
                heapq.heappush(heap, (time, seq, timer))
                continue
            self.now = time
            self.events += 1
            if not timer.daemon:
                self._work -= 1
            timer.loop = None  # ran: cancelling it now changes nothing
            timer.fn(*timer.args)
        return self.now
