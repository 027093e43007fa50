"""Fluid bandwidth sharing: links, flows and max-min fair rates (progressive filling).

A ``Flow`` is a job of ``size`` bytes that crosses shared ``Link``s (the repository uplink, the
repository's disk, the router) and has its own ``cap`` (the receiver's link, disk and
decompression pipeline, TCP's loss limit…).  Whenever flows come, go or change, rates are
recomputed once per instant (max-min fair, per-flow caps honoured), progress is integrated, and
only the next completion is scheduled.  A flow with no links is a local job (a restore from the
cache) whose rate is its cap.  What the bytes mean is the transports' business, not this module's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ogsim.loop import Loop, Timer

_EPS = 1e-9


@dataclass(eq=False)
class Link:
    """A shared capacity (bytes/s); ``up`` False means nothing passes."""

    name: str
    capacity: float
    up: bool = True
    track: bool = False
    series_t: list[float] = field(default_factory=list)
    series_rate: list[float] = field(default_factory=list)

    @property
    def available(self) -> float:
        return self.capacity if self.up else 0.0


@dataclass(eq=False)
class Flow:
    """A fluid transfer or local job.

    ``size``/``remaining`` and ``rate``/``cap`` count payload bytes; each payload byte costs
    ``wire`` bytes on the links it crosses (protocol overhead, FEC, retransmissions).
    """

    size: float
    links: tuple[Link, ...]
    cap: float
    on_done: Callable[[Flow], None]
    label: str = ""
    wire: float = 1.0
    remaining: float = 0.0
    rate: float = 0.0
    started: float = 0.0
    active: bool = False
    tiny: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        self.remaining = self.size
        # what is left below this is rounding: the flow is done
        self.tiny = _EPS * max(1.0, self.size)

    @property
    def moved(self) -> float:
        return self.size - self.remaining


class Network:
    """The set of active flows and their max-min fair rates."""

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        self.flows: dict[Flow, None] = {}  # insertion order keeps runs deterministic
        self._linked: dict[Flow, None] = {}  # the flows with links, in the same order
        self.links: list[Link] = []
        self._last = 0.0
        self._settle: Timer | None = None
        self._next: Timer | None = None
        self.recomputes = 0

    def link(self, name: str, capacity: float, track: bool = False) -> Link:
        """Create a shared link."""
        link = Link(name, capacity, track=track)
        self.links.append(link)
        return link

    # ------------------------------------------------------------------ flows

    def start(self, flow: Flow) -> Flow:
        """Add a flow; rates are recomputed at the end of this instant."""
        self._advance()
        flow.active = True
        flow.started = self.loop.now
        self.flows[flow] = None
        if flow.links:
            self._linked[flow] = None
        if flow.remaining <= _EPS:
            flow.remaining = 0.0
        self.changed()
        return flow

    def stop(self, flow: Flow) -> None:
        """Remove a flow without completing it (aborted transfer)."""
        if not flow.active:
            return
        self._advance()
        flow.active = False
        flow.rate = 0.0
        self.flows.pop(flow, None)
        self._linked.pop(flow, None)
        self.changed()

    def set_cap(self, flow: Flow, cap: float) -> None:
        """Change a flow's own cap."""
        if flow.active and cap != flow.cap:
            self._advance()
            flow.cap = cap
            self.changed()
        else:
            flow.cap = cap

    def set_wire(self, flow: Flow, wire: float) -> None:
        """Change the wire bytes a flow spends per payload byte."""
        if wire != flow.wire:
            self._advance()
            flow.wire = wire
            self.changed()

    def set_link(
        self, link: Link, *, up: bool | None = None, capacity: float | None = None
    ) -> None:
        """Bring a link up or down, or change its capacity."""
        self._advance()
        if up is not None:
            link.up = up
        if capacity is not None:
            link.capacity = capacity
        self.changed()

    def changed(self) -> None:
        """Recompute rates once, after every other event of this instant."""
        if self._settle is None:
            self._settle = self.loop.after(0.0, self._recompute)

    # ------------------------------------------------------------------ internals

    def _advance(self) -> None:
        now = self.loop.now
        dt = now - self._last
        if dt > 0:
            for f in self.flows:
                if f.rate > 0:
                    f.remaining -= f.rate * dt
        self._last = now

    def _recompute(self) -> None:
        self._settle = None
        self.recomputes += 1
        now = self.loop.now
        # progress (as _advance) and completion in one pass over the flows
        dt = now - self._last
        self._last = now
        done: list[Flow] = []
        for f in self.flows:
            rate = f.rate
            if rate > 0:
                if dt > 0:
                    f.remaining -= rate * dt
                # what is left would take less than the clock can count: done (else time
                # stands still)
                if f.remaining <= f.tiny or now + f.remaining / rate <= now:
                    done.append(f)
            elif f.remaining <= f.tiny:
                done.append(f)
        if done:
            for f in done:
                f.remaining = 0.0
                f.active = False
                f.rate = 0.0
                self.flows.pop(f, None)
                self._linked.pop(f, None)
            for f in done:
                f.on_done(f)
            if self._settle is None:
                self._settle = self.loop.after(0.0, self._recompute)
            return
        self._fill()
        for link in self.links:
            if link.track:
                total = sum(f.rate * f.wire for f in self._linked if link in f.links)
                if not link.series_rate or link.series_rate[-1] != total:
                    link.series_t.append(self.loop.now)
                    link.series_rate.append(total)
        if self._next is not None:
            self._next.cancel()
            self._next = None
        soonest = float("inf")
        for f in self.flows:
            if f.rate > 0:
                t = f.remaining / f.rate
                if t < soonest:
                    soonest = t
        if soonest < float("inf"):
            self._next = self.loop.after(soonest, self._recompute)

    def _fill(self) -> None:
        """Max-min fair rates with per-flow caps (progressive filling).

        A local job (no links) shares nothing: it gets its cap, as the filling would give it
        (it would be frozen at its cap once the level reaches it, changing no link's share), so
        it skips the filling; the linked flows are filled in the same order as with it."""
        left: dict[Link, float] = {}
        count: dict[Link, float] = {}
        pending: list[Flow] = []
        for f in self.flows:
            f.rate = 0.0
            if f.cap <= 0:
                continue
            if not f.links:
                f.rate = f.cap
                continue
            if any(not lk.up or lk.capacity <= 0 for lk in f.links):
                continue
            pending.append(f)
            for lk in f.links:
                left[lk] = lk.capacity
                count[lk] = count.get(lk, 0.0) + f.wire
        pending.sort(key=lambda f: f.cap)
        while pending:
            level = float("inf")
            for lk, n in count.items():
                if n > 1e-12:
                    share = max(0.0, left[lk]) / n
                    if share < level:
                        level = share
            if pending[0].cap <= level:
                # every flow capped below the fair level gets its cap
                i = 0
                while i < len(pending) and pending[i].cap <= level:
                    i += 1
                frozen, pending = pending[:i], pending[i:]
                for f in frozen:
                    f.rate = f.cap
                    for lk in f.links:
                        left[lk] -= f.cap * f.wire
                        count[lk] -= f.wire
                continue
            # the most loaded links saturate: their flows get the level
            tight = {
                lk for lk, n in count.items() if n > 1e-12 and left[lk] / n <= level * (1 + 1e-12)
            }
            keep: list[Flow] = []
            for f in pending:
                if any(lk in tight for lk in f.links):
                    f.rate = level
                    for lk in f.links:
                        left[lk] -= level * f.wire
                        count[lk] -= f.wire
                else:
                    keep.append(f)
            pending = keep
