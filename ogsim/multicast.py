"""Multicast as udpcast does it: start barrier, FEC, repair, pacing to the slowest receiver.

One ``McastSession`` per (source, port, image file), started by the first receiver's request
(OpenGnSys's START_MULTICAST).  It starts when ``nclients`` receivers have joined or ``maxwait``
seconds after the first join; late receivers cannot join and fail the start timeout
(MCASTERRORSESSION → JOIN → 60).  Running, it is one fluid flow over the source uplink (and the
router once, if any receiver is routed) paced to the slowest receiver's link and pipeline;
FEC ``IxR/S`` adds R/S to the wire, and stripes FEC cannot repair are retransmitted to the whole
group, so repair grows with loss and with N.  The pace follows udpcast's slice protocol
(:mod:`ogsim.udpcast`): each slice waits for every receiver's acknowledgement (exposed RTTs, and
as many more rounds as its unluckiest receiver needs: :func:`ogsim.udpcast.loss_rounds`, which
grows with N and loss), and receivers whose disks have a measured per-slice rate spread
(``hw.disk.slice_rates``) hold the group to the expected slowest of N.  When
``backends.sim.slice_stall_chance`` is set, each slice also pays the expected re-ask wait of a
slice some receiver did not answer in time (:func:`ogsim.udpcast.slice_stall_time`).  A silent
receiver (crash, link down) stalls the session until udp-sender drops it; a receiver that hears
nothing for MCASTWAIT fails RECEIVE (57 into the cache, 59 into a partition — the core maps
kinds to codes).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING

from ogref.core.events import FailureKind
from ogref.model import Image, MulticastSession
from ogsim.disk import cache_write_rate, direct_restore_rate, ratio, slowest_keep
from ogsim.loop import Timer
from ogsim.network import Flow
from ogsim.udpcast import (
    IN_FLIGHT,
    exposed_ack,
    group_keep,
    loss_rounds,
    paced_rate,
    slice_bytes,
    slice_stall_time,
)

if TYPE_CHECKING:
    from ogsim.chunkcast_session import CastSession
    from ogsim.client import SimClient
    from ogsim.node import Source
    from ogsim.simulator import Simulation


def fec_params(text: str) -> tuple[int, int, int]:
    """``8x8/128`` → (interleave, redundancy, stripe size); ``none`` → no redundancy, every
    packet its own stripe."""
    if text == "none":
        return 0, 0, 1
    a, rest = text.split("x")
    b, c = rest.split("/")
    return int(a), int(b), int(c)


def stripe_failure(loss: float, redundancy: int, stripe: int) -> float:
    """Probability that a receiver loses more packets of a stripe than FEC can rebuild."""
    if loss <= 0:
        return 0.0
    n = stripe + redundancy
    ok = sum(math.comb(n, k) * loss**k * (1 - loss) ** (n - k) for k in range(redundancy + 1))
    return max(0.0, 1.0 - ok)


def repair_factor(losses: list[float], redundancy: int, stripe: int) -> float:
    """Extra wire bytes per payload byte for retransmissions to the group (grows with N, loss)."""
    return repair(losses, redundancy, stripe)[0]


def repair(losses: list[float], redundancy: int, stripe: int) -> tuple[float, float]:
    """(extra wire bytes per payload byte, probability a stripe needs a retransmission round)."""
    if not losses:
        return 0.0, 0.0
    calm_stripe = 1.0
    calm_packet = 1.0
    for p in losses:
        calm_stripe *= 1.0 - stripe_failure(p, redundancy, stripe)
        calm_packet *= 1.0 - p
    s = 1.0 - calm_stripe  # some receiver needs a retransmission for this stripe
    u = min(0.95, 1.0 - calm_packet)  # share of the stripe missing at some receiver
    return min(20.0, s * u / (1.0 - u)), s


class RxState(StrEnum):
    WAITING = "waiting"
    RECEIVING = "receiving"
    SILENT = "silent"
    DROPPED = "dropped"
    DONE = "done"
    FAILED = "failed"


class Receiver:
    """One client's udp-receiver in a session (into the CACHE or straight into a partition)."""

    def __init__(
        self,
        client: SimClient,
        direct: bool,
        on_ok: Callable[[float], None],
        on_fail: Callable[[FailureKind, str], None],
        on_start: Callable[[], None],
    ) -> None:
        self.client = client
        self.direct = direct
        self.on_ok = on_ok
        self.on_fail = on_fail
        self.on_start = on_start
        self.state = RxState.WAITING
        self.session: McastSession | CastSession | None = None
        self.silent_since = 0.0
        self.timed_out = False  # its udp-receiver gave up; the sender may still wait for it

    # the client's job interface
    def refresh(self) -> None:
        """The client changed (link, loss, disk): tell the session."""
        if self.session is not None:
            self.session.receiver_changed(self)

    def cancel(self) -> None:
        """The client crashed: it goes silent for good."""
        if self.session is not None:
            self.session.receiver_changed(self)

    @property
    def moved(self) -> float:
        s = self.session
        return 0.0 if s is None else s.moved_of(self)


class SessionState(StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"
    DEAD = "dead"


class McastSession:
    """One udp-sender session."""

    def __init__(
        self, sim: Simulation, source: Source, params: MulticastSession, image: Image
    ) -> None:
        self.sim = sim
        self.source = source
        self.params = params
        self.image = image
        self.state = SessionState.WAITING
        self.receivers: list[Receiver] = []
        self.flow: Flow | None = None
        self.overhead = 1.0
        self.rounds = 0.0  # expected retransmission rounds per slice (the unluckiest receiver's)
        self.first_join = -1.0
        self.started_at = -1.0
        _, self.redundancy, self.stripe = fec_params(source.fec)
        self.fec = self.redundancy / self.stripe
        self._barrier: Timer | None = None
        self.label = f"mcast {source.name}:{params.port} {image.name}"

    # ------------------------------------------------------------------ joining

    def join(self, rx: Receiver) -> None:
        """A receiver asks to join (after its client's request reached the repository)."""
        sim = self.sim
        policy = sim.scenario.site.policy
        rx.session = self
        routed = self.source.crosses_router(rx.client)
        if self.state is not SessionState.WAITING or (routed and not self.source.router.multicast):
            why = (
                "the session was already running"
                if self.state is not SessionState.WAITING
                else "multicast is not routed to this subnet"
            )
            sim.loop.after(float(policy.mcast_error_session), self._start_timeout, rx, why)
            return
        self.receivers.append(rx)
        now = sim.loop.now
        if self.first_join < 0:
            self.first_join = now
            self._barrier = sim.loop.after(
                float(self.params.max_wait) + self.source.mcast_start_s, self._start, "maxwait"
            )
        sim.loop.after(
            float(policy.mcast_error_session), self._start_timeout, rx, "no session started"
        )
        if len(self.receivers) >= self.params.nclients:
            # udp-sender's start-up and rendezvous before the first slice (0 by default)
            sim.loop.after(self.source.mcast_start_s, self._start, "nclients")

    def _start_timeout(self, rx: Receiver, why: str) -> None:
        if rx.state is RxState.WAITING and rx.client.alive:
            rx.state = RxState.FAILED
            policy = self.sim.scenario.site.policy
            rx.on_fail(FailureKind.JOIN, f"start timeout {policy.mcast_error_session}s: {why}")

    def moved_of(self, rx: Receiver) -> float:
        """Bytes ``rx`` has received so far (the session's flow: all receive alike)."""
        return 0.0 if self.flow is None else self.flow.moved

    # ------------------------------------------------------------------ running

    def _start(self, trigger: str) -> None:
        if self.state is not SessionState.WAITING:
            return
        if not self.source.up:
            self.state = SessionState.DEAD
            return
        self.state = SessionState.RUNNING
        self.started_at = self.sim.loop.now
        if self._barrier is not None:
            self._barrier.cancel()
        live = [r for r in self.receivers if r.client.alive and r.state is RxState.WAITING]
        for r in live:
            r.state = RxState.RECEIVING
            r.on_start()
        self.sim.log_event(f"{self.label}: started ({trigger}) with {len(live)} receivers")
        links = [self.source.uplink]
        if self.source.read is not None:
            links.append(self.source.read)
        if any(self.source.crosses_router(r.client) for r in live):
            links.append(self.source.router.link)
        self._update_overhead()
        self.flow = Flow(
            float(self.image.stored_size),
            tuple(links),
            0.0,
            self._done,
            label=self.label,
            wire=self.overhead,
        )
        self.flow.cap = self._cap()
        self.sim.net.start(self.flow)
        for r in live:
            if not r.client.link_up:
                self.receiver_changed(r)

    def _active(self) -> list[Receiver]:
        return [r for r in self.receivers if r.state in (RxState.RECEIVING, RxState.SILENT)]

    def _update_overhead(self) -> None:
        losses = [
            r.client.loss + self.source.loss for r in self._active() if r.state is RxState.RECEIVING
        ]
        extra, _ = repair(losses, self.redundancy, self.stripe)
        self.overhead = 1.0 + self.fec + extra
        # per receiver: a stripe FEC cannot rebuild is re-sent (its missing packets, each lost
        # again with the receiver's loss); the slice waits for the unluckiest receiver
        stripes = max(1.0, self.sim.scenario.sim.slice_blocks / self.stripe)
        self.rounds = loss_rounds(
            [(stripe_failure(p, self.redundancy, self.stripe), p) for p in losses], stripes
        )

    def _cap(self) -> float:
        active = self._active()
        if not self.source.up or not active or any(r.state is RxState.SILENT for r in active):
            return 0.0
        disks = [r.client.disk for r in active]
        keep = slowest_keep(disks)
        cap = self.params.rate_mbit * 1e6 / 8 / self.overhead  # --max-bitrate counts FEC too
        cpu = self.sim.host_cpu
        direct = sum(1 for r in active if r.direct)
        if cpu is not None and direct:
            # a one-host lab: every DIRECT receiver decompresses on the same cores, and udpcast
            # paces the session to the slowest of them
            cap = min(cap, cpu.available / direct * ratio(self.image))
        slowest = self._slice_keep(active)
        for r in active:
            c = r.client
            cap = min(cap, c.hw.link_rate / self.overhead)
            if slowest is not None:  # measured per-slice spread: the group's expected slowest
                written = slowest * keep
                data = min(written, c.disk.hw.decompress_rate) if r.direct else written
                pipe = data * ratio(self.image) if r.direct else data
            elif r.direct:
                pipe = direct_restore_rate(c.disk, self.image, stall_keep=keep)
            else:
                pipe = cache_write_rate(c.disk, stall_keep=keep)
            cap = min(cap, pipe)
        return self._with_acks(cap, active)

    def _slice_keep(self, active: list[Receiver]) -> float | None:
        """The disk-bound write rate (bytes/s) of a slice-synchronised group whose disks have a
        measured per-slice spread: the fastest kind's rate × the expected-slowest fraction."""
        if not any(r.client.hw.slice_rates for r in active):
            return None
        groups: dict[tuple[tuple[float, ...], float], int] = {}
        for r in active:
            key = (r.client.hw.slice_rates or (1.0,), r.client.disk.write)
            groups[key] = groups.get(key, 0) + 1
        spec = tuple(sorted((rel, w, n) for (rel, w), n in groups.items()))
        return max(w for _, w, _ in spec) * group_keep(spec, IN_FLIGHT)

    def _with_acks(self, cap: float, active: list[Receiver]) -> float:
        """The pace after each slice's acknowledgement rounds (plus the retransmission rounds)
        and, when ``slice_stall_chance`` is set, the expected re-ask wait of a slice some
        receiver did not answer in time (:func:`ogsim.udpcast.slice_stall_time`, per slice)."""
        sim = self.sim.scenario.sim
        if cap <= 0:
            return cap
        payload = slice_bytes(sim.slice_blocks)
        wait = 0.0
        if sim.slice_rtt_factor > 0:
            rtt = 2 * max(r.client.hw.delay_s + self.source.delay_to(r.client) for r in active)
            rounds = sim.slice_rtt_factor * (1.0 + self.rounds)
            wait = exposed_ack(rtt, rounds, payload / cap)
        if sim.slice_stall_chance > 0:
            answering = sum(1 for r in active if r.state is RxState.RECEIVING)
            wait += slice_stall_time(1.0, sim.slice_stall, sim.slice_stall_chance, answering)
        return paced_rate(cap, payload, wait)

    def refresh(self) -> None:
        """Recompute the session's pace (membership, loss or a disk changed)."""
        if self.state is not SessionState.RUNNING or self.flow is None:
            return
        self._update_overhead()
        self.sim.net.set_wire(self.flow, self.overhead)
        self.sim.net.set_cap(self.flow, self._cap())

    def receiver_changed(self, rx: Receiver) -> None:
        """A receiver's client changed: silence, return, loss or disk."""
        c = rx.client
        loop = self.sim.loop
        if rx.state is RxState.WAITING:
            if not c.alive:
                rx.state = RxState.FAILED
                if rx in self.receivers:
                    self.receivers.remove(rx)
            return
        if rx.state is RxState.RECEIVING and (not c.alive or not c.link_up):
            rx.state = RxState.SILENT
            rx.silent_since = loop.now
            loop.after(self.sim.scenario.sim.drop_after, self._drop, rx, loop.now)
            policy = self.sim.scenario.site.policy
            loop.after(float(policy.mcast_wait), self._receive_timeout, rx, loop.now)
        elif rx.state is RxState.SILENT and c.alive and c.link_up and not rx.timed_out:
            rx.state = RxState.RECEIVING
        self.refresh()

    def _drop(self, rx: Receiver, since: float) -> None:
        if rx.state is RxState.SILENT and rx.silent_since == since:
            rx.state = RxState.FAILED if rx.timed_out else RxState.DROPPED
            self.sim.log_event(f"{self.label}: dropped {rx.client.name}")
            self.refresh()

    def _receive_timeout(self, rx: Receiver, since: float) -> None:
        if rx.state in (RxState.SILENT, RxState.DROPPED) and rx.silent_since == since:
            # the receiver gives up; the sender keeps waiting for it until it drops it
            rx.timed_out = True
            if rx.state is RxState.DROPPED:
                rx.state = RxState.FAILED
            if rx.client.alive:
                wait = self.sim.scenario.site.policy.mcast_wait
                rx.on_fail(FailureKind.RECEIVE, f"no data for {wait}s (receive timeout)")

    def source_down(self) -> None:
        """The sender died (repository restart): every receiver times out."""
        if self.state is SessionState.WAITING:
            self.state = SessionState.DEAD
            return
        if self.state is not SessionState.RUNNING or self.flow is None:
            return
        self.state = SessionState.DEAD
        self.sim.net.stop(self.flow)
        now = self.sim.loop.now
        wait = float(self.sim.scenario.site.policy.mcast_wait)
        for r in self._active():
            r.state = RxState.SILENT
            r.silent_since = now
            self.sim.loop.after(wait, self._receive_timeout, r, now)

    def _done(self, flow: Flow) -> None:
        self.state = SessionState.DONE
        for r in self.receivers:
            if r.state is RxState.RECEIVING:
                r.state = RxState.DONE
                r.on_ok(float(self.image.stored_size))
