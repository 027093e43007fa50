"""udpcast's slice protocol as a pace: slices, acknowledgement rounds, the slowest receiver.

udp-sender cuts the stream into *slices* of up to ``MAX_SLICE_SIZE`` = 1024 blocks of 1456 bytes
(udpcast ``udpcast.h``; cmd.html: 16–1024 blocks); after each slice it asks every receiver for an
acknowledgement and retransmits what is missing; a receiver holds at most two unacknowledged
slices (``receivedata.c`` drops it when the sender is more than two slices ahead), so a slice is
done when the *last* receiver has absorbed it, within a window of ``IN_FLIGHT`` slices.  Each
receiver writes each slice at its own, varying speed: this module turns a disk's per-slice
write-rate distribution (measured on hardware: :func:`measure_slice_rates`) into the fraction of
its sustained rate a group of N receivers keeps — the expected time of the slowest of N window
sums against one receiver's mean — and the exposed acknowledgement time per slice (RTT ×
``slice_rtt_factor`` rounds, hidden behind the next slice's sending when it is shorter).  FEC and
the retransmission volume stay in :mod:`ogsim.multicast`.

Retransmission rounds (``senddata.c``): after a slice the sender multicasts a REQACK; a receiver
that misses blocks answers RETRANSMIT, the sender re-sends what any receiver missed and asks
again, so a slice takes as many rounds as its *unluckiest* receiver needs (:func:`loss_rounds`).
A receiver never speaks unasked (``receivedata.c``): when it does not answer, the sender re-asks
after 1.1 × its average wait, and after the tenth re-ask waits at least one second each time
(:data:`QUICK_RETRIES`, :data:`RETRY_FLOOR_S`).  :func:`slice_stall_time` is that mechanism as a
model: each receiver, independently per slice, fails to answer in time with probability q, and a
slice in which any of N receivers fails costs the session D more seconds — S·D·(1 − (1 − q)^N)
over S slices (scenario knobs ``backends.sim.slice_stall_chance`` and ``slice_stall``; off by
default: no hardware measurement gives q or D, see docs/simulator-models.md).
:func:`stall_rate_needed` turns a published slowdown into the per-receiver rate of one-second
stalls it would take — a diagnostic.  Pure functions and one measurement helper; no events.
"""

from __future__ import annotations

import functools
import json
import math
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

BLOCK_BYTES = 1456  # udpcast's default block (packet payload)
MAX_SLICE_BLOCKS = 1024  # MAX_SLICE_SIZE in udpcast.h
IN_FLIGHT = 2  # slices a receiver may hold unacknowledged before udp-sender waits (or drops it)
# In full-duplex ("switched network", FLAG_SN) mode — udp-sender turns it on by itself when the
# interface reports full duplex, and Clonezilla may force it with --full-duplex — the default
# slice is 112 blocks and is never adapted (senddata.c; adaptation runs only without FLAG_SN).
# Measured here: udp-sender 20120424 over veth reports "slice=0112".
FULL_DUPLEX_SLICE_BLOCKS = 112
RECEIVER_FIFO_BLOCKS = 4096  # udp-receiver's buffer (fifo.c); a new slice waits for 1024 free
QUICK_RETRIES = 10  # REQACKs re-sent after 1.1 × the average wait ...
RETRY_FLOOR_S = 1.0  # ... then each further wait lasts at least one second (senddata.c)
QUANTILES = 40  # a measured distribution is reduced to this many equiprobable values

# The lab host's disk, per udpcast slice (1024 × 1456 B, each write followed by fdatasync),
# 200 samples, 2026-12-04 (``python -m ogsim.udpcast /work/...``): the only per-slice write-rate
# distribution measured here.  Relative to the sustained rate (see ``normalised``).  Raw samples:
# reports/published/lab-bench/slice-write-rates.json.
LAB_SLICE_RATES_PATH = (
    Path(__file__).resolve().parent.parent
    / "reports"
    / "published"
    / "lab-bench"
    / "slice-write-rates.json"
)


def slice_bytes(blocks: int = MAX_SLICE_BLOCKS) -> float:
    """Payload bytes of one slice."""
    return float(blocks * BLOCK_BYTES)


def normalised(rates: Sequence[float]) -> tuple[float, ...]:
    """Per-slice rates as multiples of the sustained rate (bytes over total time: the
    harmonic mean), reduced to ``QUANTILES`` equiprobable values; sorted."""
    xs = sorted(float(r) for r in rates if r > 0)
    if not xs:
        return (1.0,)
    sustained = len(xs) / sum(1.0 / r for r in xs)
    if len(xs) > QUANTILES:
        xs = [xs[int((i + 0.5) * len(xs) / QUANTILES)] for i in range(QUANTILES)]
        sustained = len(xs) / sum(1.0 / r for r in xs)
    return tuple(round(r / sustained, 6) for r in xs)


@functools.lru_cache(maxsize=64)
def _window_times(rel: tuple[float, ...], window: int) -> tuple[tuple[float, ...], float]:
    """The distribution (sorted equiprobable values) of one receiver's time to absorb
    ``window`` slices, in units of one slice at the sustained rate, and its mean."""
    times = [1.0 / q for q in rel]
    sums = [0.0]
    for _ in range(window):
        sums = [a + b for a in sums for b in times]
        if len(sums) > 4096:  # keep it cheap: back to equiprobable quantiles
            sums.sort()
            sums = [sums[int((i + 0.5) * len(sums) / 1024)] for i in range(1024)]
    sums.sort()
    return tuple(sums), sum(sums) / len(sums)


@functools.lru_cache(maxsize=4096)
def group_keep(groups: tuple[tuple[tuple[float, ...], float, int], ...], window: int) -> float:
    """Fraction of the *fastest group's* sustained rate a slice-synchronised session keeps.

    ``groups``: (relative per-slice rates, sustained write rate in bytes/s, receivers) — one entry
    per kind of disk among the receivers.  A window of ``window`` slices ends when the slowest
    receiver has written it: E[max_i T_i] with each receiver's T_i drawn independently.  The
    session's disk-bound rate is ``window / E[max T]`` slices per unit; returned as a fraction of
    the fastest group's rate (1.0 for one receiver with a constant rate)."""
    best = max(w for _, w, _ in groups)
    dists = []
    for rel, w, n in groups:
        values, _ = _window_times(rel, window)
        scale = best / w  # a slower disk takes longer, in units of the fastest's slice time
        dists.append(([v * scale for v in values], n))
    # P(max ≤ x) = Π_g F_g(x)^n_g, a step function: E[max] = ∫ 1 − P(max ≤ x) dx
    points = sorted({v for vs, _ in dists for v in vs})
    idx = [0] * len(dists)
    expected = 0.0
    prev = 0.0
    below = 0.0  # P(max ≤ prev)
    for x in points:
        expected += (1.0 - below) * (x - prev)
        prob = 1.0
        for g, (vs, n) in enumerate(dists):
            i = idx[g]
            while i < len(vs) and vs[i] <= x:
                i += 1
            idx[g] = i
            prob *= (i / len(vs)) ** n
        below = prob
        prev = x
    return window / expected if expected > 0 else 1.0


def exposed_ack(rtt_s: float, rounds: float, slice_send_s: float) -> float:
    """Seconds per slice the sender waits for acknowledgements beyond sending: ``rounds`` RTTs
    per slice, overlapped with sending the next slice (two are in flight)."""
    return max(0.0, rounds * rtt_s - slice_send_s * (IN_FLIGHT - 1))


def paced_rate(rate: float, slice_payload: float, ack_s: float) -> float:
    """A rate (bytes/s) after each slice of ``slice_payload`` bytes pays ``ack_s`` seconds."""
    if rate <= 0 or ack_s <= 0:
        return rate
    return slice_payload / (slice_payload / rate + ack_s)


def slice_miss(loss: float, blocks: int) -> float:
    """Probability that a receiver losing each packet with probability ``loss`` misses at least
    one of a slice's ``blocks`` packets (without FEC)."""
    if loss <= 0 or blocks <= 0:
        return 0.0
    return 1.0 - (1.0 - min(loss, 1.0)) ** blocks


def loss_rounds(receivers: Sequence[tuple[float, float]], units: float = 1.0) -> float:
    """Expected retransmission rounds one slice costs beyond its first transmission.

    ``receivers``: per receiver, ``(first, again)``: the chance one of the slice's ``units``
    (an FEC stripe, or a packet without FEC) fails its first transmission at that receiver, and
    the chance a retransmitted packet is lost again.  udp-sender re-sends, each round, what any
    receiver still lacks, so receiver i needs G_i extra rounds with
    P(G_i ≥ k) = 1 − (1 − first·again^(k−1))^units, and the slice waits for the last of them:
    E[max G_i] = Σ_{k≥1} (1 − Π_i P(G_i < k)).  0 without loss; grows with N and with loss,
    and — unlike a constant per-round miss — the rounds shrink fast because only the missing
    packets are at risk again."""
    groups = Counter(
        (min(max(f, 0.0), 1.0), min(max(a, 0.0), 0.999)) for f, a in receivers if f > 0
    )
    if not groups or units <= 0:
        return 0.0
    total = 0.0
    for k in range(1, 10_000):
        log_calm = 0.0
        for (first, again), n in groups.items():
            unit_bad = first * again ** (k - 1)
            log_calm += -math.inf if unit_bad >= 1.0 else n * units * math.log1p(-unit_bad)
        term = -math.expm1(log_calm)  # P(some receiver needs a k-th extra round)
        total += term
        if term < 1e-12:
            break
    return total


def slice_stall_share(chance: float, receivers: int) -> float:
    """Probability that a slice stalls: some of ``receivers`` receivers, each independently with
    probability ``chance``, fails to answer its REQACK in time — 1 − (1 − q)^N.  0 for q = 0 or
    no receiver; grows with N, concave, towards 1."""
    if chance <= 0 or receivers < 1:
        return 0.0
    if chance >= 1:
        return 1.0
    return -math.expm1(receivers * math.log1p(-chance))


def slice_stall_time(slices: float, stall_s: float, chance: float, receivers: int) -> float:
    """Expected seconds ``slices`` slices lose to re-ask waits of ``stall_s`` each, when every
    receiver independently fails to answer a slice's REQACK with probability ``chance``:
    S·D·(1 − (1 − q)^N).  Near-linear in N while N·q ≪ 1, bending towards S·D."""
    return slices * stall_s * slice_stall_share(chance, receivers)


def stall_rate_needed(
    t_one: float, t_many: float, receivers: int, slices: float, stall_s: float = RETRY_FLOOR_S
) -> float | None:
    """Per-receiver, per-slice probability of a sender stall of ``stall_s`` that would stretch
    ``t_one`` into ``t_many`` with ``receivers`` independent receivers (a slice stalls when any
    of them stalls it: (1 − (1 − q)^N) × slices × stall_s = t_many − t_one).  None when even a
    stall on every slice would not suffice.  A diagnostic (what a measurement would have to
    show), never a model input."""
    extra = t_many - t_one
    if extra <= 0:
        return 0.0
    share = extra / (slices * stall_s)
    if share >= 1.0 or receivers < 1:
        return None
    return 1.0 - (1.0 - share) ** (1.0 / receivers)


def measure_slice_rates(
    path: Path, samples: int = 200, blocks: int = MAX_SLICE_BLOCKS
) -> list[float]:
    """Write ``samples`` udpcast slices to ``path`` (each followed by fdatasync) and return each
    slice's write rate in bytes/s; the file is removed.  A disk measurement, not a model."""
    size = blocks * BLOCK_BYTES
    buf = os.urandom(size)
    rates = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(samples):
            t = time.perf_counter()
            os.write(fd, buf)
            os.fdatasync(fd)
            rates.append(size / (time.perf_counter() - t))
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return rates


@functools.lru_cache(maxsize=1)
def lab_slice_rates() -> tuple[float, ...]:
    """The lab host's measured per-slice write rates (bytes/s), as published."""
    data = json.loads(LAB_SLICE_RATES_PATH.read_text())
    return tuple(float(x) for x in data["rates_bytes_s"])


def main(argv: list[str] | None = None) -> int:
    """``python -m ogsim.udpcast FILE [SAMPLES]``: measure a disk's per-slice write rates."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m ogsim.udpcast FILE [SAMPLES]", file=sys.stderr)
        return 4
    rates = measure_slice_rates(Path(args[0]), int(args[1]) if len(args) > 1 else 200)
    rel = normalised(rates)
    print(
        json.dumps(
            {
                "slice_bytes": slice_bytes(),
                "median_bytes_s": statistics.median(rates),
                "sustained_bytes_s": len(rates) / sum(1 / r for r in rates),
                "rates_bytes_s": [round(r) for r in rates],
                "relative_quantiles": rel,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
