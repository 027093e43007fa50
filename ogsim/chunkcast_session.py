"""A chunkcast session in the simulator (``MCASTPROTOCOL=CHUNKCAST``): the event loop's side of
:mod:`ogsim.chunkcast`'s model, in place of udpcast's :class:`~ogsim.multicast.McastSession`.

It keeps udpcast's start rule (OpenGnSys's session fields keep their meaning: the first data
waits for ``nclients`` receivers or ``maxwait`` seconds after the first request) and the
engine's timeouts (MCASTERRORSESSION for a receiver that never hears a session; MCASTWAIT for
one that goes silent), and otherwise does what the protocol does: a receiver may join while the
session runs, each completes on its own (a slow disk or a lossy link delays only itself), and
nobody waits for a silent one.  When each receiver completes is the model's answer
(:func:`ogsim.chunkcast.simulate`), re-run from the session's start whenever its membership or a
receiver's disk or loss changes (the replay keeps every receiver that has been in it, so what
has happened stays as it was).

Approximations: each receiver's write rate is its pipeline (DIRECT: decompress and write; into
the CACHE: the store's writes) and its link, as data bytes per second; the sender's rate is the
session's cap and the source's uplink, shared with nobody (other flows on that uplink are not
slowed by it, nor it by them); a receiver whose link drops keeps what it has and completes that
much later if the link returns within MCASTWAIT; a chunk is at most 1/4096 of the image (the
model's objects are coarsened on large images: loss is still per datagram); a MASTER's session
starts after it has cut its partition (the partition's size at its disk's read rate; a cached
image would need no cut: not told apart).  It decides nothing the core does not.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ogref.core.events import FailureKind
from ogref.model import Image, MulticastSession
from ogsim.chunkcast import CastImage, CastParams, CastReceiver, simulate
from ogsim.disk import cache_write_rate, direct_restore_rate, ratio
from ogsim.loop import Timer
from ogsim.multicast import Receiver, RxState, SessionState

if TYPE_CHECKING:
    from ogsim.node import Source
    from ogsim.simulator import Simulation

CHUNK = 128 * 1024  # the chunked images' average chunk (data bytes)
MAX_OBJECTS = 4096  # the model's objects per image at most (coarser on large images)


def cast_image(image: Image) -> CastImage:
    """What a session of ``image`` moves, in the model's terms."""
    data = max(1, image.data_size)
    objects = max(1, min(MAX_OBJECTS, data // CHUNK))
    return CastImage(objects, max(objects, image.stored_size), data)


class CastSession:
    """One chunkcast session (the repository's sender, or a MASTER's)."""

    def __init__(
        self, sim: Simulation, source: Source, params: MulticastSession, image: Image
    ) -> None:
        self.sim = sim
        self.source = source
        self.params = params
        self.image = image
        self.cast = cast_image(image)
        self.state = SessionState.WAITING
        self.receivers: list[Receiver] = []
        self.flow = None  # no fluid flow: the model computes each receiver's end
        self.first_join = -1.0
        self.started_at = -1.0
        self.joined: dict[Receiver, float] = {}  # when each was heard (session time)
        self.ends: dict[Receiver, float] = {}  # planned completion (simulation time)
        self.delay: dict[Receiver, float] = {}  # silence it has to make up for
        self._timers: dict[Receiver, Timer] = {}
        self._barrier: Timer | None = None
        self._replan: Timer | None = None
        self.label = f"chunkcast {source.name}:{params.port} {image.name}"
        # a MASTER cuts its partition into chunks before it serves them (read-bound: the chunks
        # are compressed on all its cores meanwhile)
        master = sim.clients.get(source.name)
        self.cut_s = (
            image.data_size / master.disk.read if master is not None and master.disk.read else 0.0
        )
        self.start_s = source.mcast_start_s + self.cut_s

    # ------------------------------------------------------------------ joining

    def join(self, rx: Receiver) -> None:
        """A receiver asks for the session (its client's request reached the sender)."""
        sim = self.sim
        policy = sim.scenario.site.policy
        rx.session = self
        routed = self.source.crosses_router(rx.client)
        if routed and not self.source.router.multicast:
            why = "multicast is not routed to this subnet"
            sim.loop.after(float(policy.mcast_error_session), self._start_timeout, rx, why)
            return
        self.receivers.append(rx)
        now = sim.loop.now
        if self.state is SessionState.RUNNING:  # a late joiner: it takes what it lacks from now
            self._admit(rx, now)
            self._plan_soon()
            return
        # a clone's targets get their command once the MASTER has cut its partition (the
        # service holds them until its "ready"): their start timeout runs from then
        sim.loop.after(
            float(policy.mcast_error_session) + self.cut_s,
            self._start_timeout,
            rx,
            "no session started",
        )
        if self.first_join < 0:
            self.first_join = now
            self._barrier = sim.loop.after(
                float(self.params.max_wait) + self.start_s, self._start, "maxwait"
            )
        if len(self.receivers) >= self.params.nclients:
            sim.loop.after(self.start_s, self._start, "nclients")

    def _start_timeout(self, rx: Receiver, why: str) -> None:
        if rx.state is RxState.WAITING and rx.client.alive:
            rx.state = RxState.FAILED
            policy = self.sim.scenario.site.policy
            rx.on_fail(FailureKind.JOIN, f"start timeout {policy.mcast_error_session}s: {why}")

    def _admit(self, rx: Receiver, now: float) -> None:
        rx.state = RxState.RECEIVING
        self.joined[rx] = now - self.started_at
        rx.on_start()

    def _start(self, trigger: str) -> None:
        if self.state is not SessionState.WAITING:
            return
        if not self.source.up:
            self.state = SessionState.DEAD
            return
        self.state = SessionState.RUNNING
        self.started_at = now = self.sim.loop.now
        if self._barrier is not None:
            self._barrier.cancel()
        live = [r for r in self.receivers if r.client.alive and r.state is RxState.WAITING]
        for r in live:
            self._admit(r, now)
        self.sim.log_event(f"{self.label}: started ({trigger}) with {len(live)} receivers")
        self._plan()

    # ------------------------------------------------------------------ the model

    def _write_Bps(self, rx: Receiver) -> float:  # noqa: N802 - bytes per second
        """Data bytes per second ``rx`` can take: its pipeline and its link."""
        c = rx.client
        r = ratio(self.image)
        stored = direct_restore_rate(c.disk, self.image) if rx.direct else cache_write_rate(c.disk)
        return min(stored, c.hw.link_rate) / r if r > 0 else math.inf

    def _plan_soon(self) -> None:
        """Re-run the model once this instant's events are in (joins come in bursts)."""
        if self._replan is None:
            self._replan = self.sim.loop.after(0.0, self._plan)

    def _plan(self) -> None:
        self._replan = None
        if self.state is not SessionState.RUNNING:
            return
        members = [r for r in self.receivers if r in self.joined]
        if not members:
            return
        rate = min(self.params.rate_mbit * 1e6, self.source.uplink.capacity * 8)
        recv = [
            CastReceiver(self.joined[r], self._write_Bps(r), min(0.99, r.client.loss + self.source.loss))
            for r in members
        ]  # fmt: skip
        res = simulate(self.cast, recv, CastParams(rate, 0.0, 0.0, 0.0), seed=self.sim.seed)
        now = self.sim.loop.now
        for r, done in zip(members, res.done_s, strict=True):
            if r.state is not RxState.RECEIVING:
                continue
            end = self.started_at + float(done) + self.delay.get(r, 0.0)
            if not math.isfinite(end):
                continue  # never completes: its receive timeout will tell
            self._schedule(r, max(now, end))

    def _schedule(self, rx: Receiver, end: float) -> None:
        old = self._timers.pop(rx, None)
        if old is not None:
            old.cancel()
        self.ends[rx] = end
        self._timers[rx] = self.sim.loop.at(end, self._complete, rx)

    def _complete(self, rx: Receiver) -> None:
        self._timers.pop(rx, None)
        if rx.state is not RxState.RECEIVING:
            return
        rx.state = RxState.DONE
        rx.on_ok(float(self.image.stored_size))
        if all(r.state not in (RxState.RECEIVING, RxState.SILENT) for r in self.receivers):
            self.state = SessionState.DONE  # the sender ends (idle): the next request starts anew

    def moved_of(self, rx: Receiver) -> float:
        """Bytes received so far (progress): linear from its join to its planned end."""
        if rx not in self.joined or rx not in self.ends:
            return 0.0
        if rx.state is RxState.DONE:
            return float(self.image.stored_size)
        begin = self.started_at + self.joined[rx]
        span = max(1e-9, self.ends[rx] - begin)
        done = min(1.0, max(0.0, (self.sim.loop.now - begin) / span))
        return done * float(self.image.stored_size)

    # ------------------------------------------------------------------ changes

    def refresh(self) -> None:
        """A receiver's loss or disk changed: the model again."""
        self._plan_soon()

    def receiver_changed(self, rx: Receiver) -> None:
        """A receiver's client changed: silence (crash, link down), return, loss or disk."""
        c = rx.client
        loop = self.sim.loop
        if rx.state is RxState.WAITING:
            if not c.alive and rx in self.receivers:
                rx.state = RxState.FAILED
                self.receivers.remove(rx)
            return
        if rx.state is RxState.RECEIVING and (not c.alive or not c.link_up):
            rx.state = RxState.SILENT
            rx.silent_since = loop.now
            timer = self._timers.pop(rx, None)
            if timer is not None:
                timer.cancel()
            policy = self.sim.scenario.site.policy
            loop.after(float(policy.mcast_wait), self._receive_timeout, rx, loop.now)
            return
        if rx.state is RxState.SILENT and c.alive and c.link_up and not rx.timed_out:
            rx.state = RxState.RECEIVING  # it kept what it had: it ends that much later
            self.delay[rx] = self.delay.get(rx, 0.0) + loop.now - rx.silent_since
        self._plan_soon()

    def _receive_timeout(self, rx: Receiver, since: float) -> None:
        if rx.state is RxState.SILENT and rx.silent_since == since:
            rx.timed_out = True
            rx.state = RxState.FAILED
            if rx.client.alive:
                wait = self.sim.scenario.site.policy.mcast_wait
                rx.on_fail(FailureKind.RECEIVE, f"no data for {wait}s (receive timeout)")

    def source_down(self) -> None:
        """The sender died (repository restart): every receiver times out."""
        if self.state is SessionState.WAITING:
            self.state = SessionState.DEAD
            return
        if self.state is not SessionState.RUNNING:
            return
        self.state = SessionState.DEAD
        now = self.sim.loop.now
        wait = float(self.sim.scenario.site.policy.mcast_wait)
        for r in self.receivers:
            if r.state is RxState.RECEIVING:
                timer = self._timers.pop(r, None)
                if timer is not None:
                    timer.cancel()
                r.state = RxState.SILENT
                r.silent_since = now
                self.sim.loop.after(wait, self._receive_timeout, r, now)
