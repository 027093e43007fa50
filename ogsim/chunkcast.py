"""A model of chunkcast (ogLab's receiver-driven multicast, docs/chunkcast.md) for the simulator:
late joiners, per-receiver disk rates and loss, duplicate data — at the granularity of objects
and blocks, fast enough for thousands of receivers.

What it keeps of the protocol: one sender pacing the union of what active receivers lack, in
the elevator's order (ascending from a cursor, wrapping); a receiver that joins at any time takes
any object it lacks from then on; a lost block makes the object *partial* and only the missing
blocks are asked again — the repair of an object costs the union of the blocks its receivers
miss; a receiver whose disk is slow accepts a whole object only while its buffer has room, so it
is served in later sweeps without slowing the others; a receiver is complete when it lacks
nothing and its disk has written everything.  Once a sweep is over, objects a receiver lacks
part of (repairs) go before other whole objects, in their own ascending order (the sender's
rule); a wrap with repairs waits for the requests of what the sweep's end lost: ``repair_s``,
the protocol's own latency from a lost block to its request (the object's in-flight window,
then the receiver's next request tick — :data:`REPAIR_S`, from the protocol's constants, not
fitted).  What it leaves
out: the announce's queue echo (suppression is assumed perfect), rate backoff (loss is assumed
random, not congestion), CPU (the lab's processes share its cores; a process starting mid-session
slows the others there, not here).  Start-up times (process start, manifest) are parameters;
the bench counts from the session's announce, so they are 0 there (:func:`fit`).

:func:`simulate` runs one session; :func:`predict_rows` predicts the lab bench's chunkcast rows
(:mod:`ogsim.lab.netns.mcast_bench`) from the same image and conditions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BLOCK = 1428  # payload bytes per DATA datagram (wire.DEFAULT_BLOCK)
DATAGRAM = BLOCK + 44 + 28  # + chunkcast header and MAC, + UDP/IP
FLIGHT_S = 0.02  # ReceiverConfig.flight_s: an object whose data just came is still being sent
REQUEST_S = 0.05  # SenderConfig.request_s: a receiver's request interval, jittered × U(0.5, 1.5)
# a lost block's request goes out after the in-flight window and the wait for the next tick:
# the mean residual of a U(0.5, 1.5) × REQUEST_S interval is REQUEST_S × (13/12) / 2
REPAIR_S = FLIGHT_S + REQUEST_S * 13 / 24


@dataclass(frozen=True)
class CastImage:
    """What travels: ``objects`` frames of ``frame_bytes`` in all, ``data_bytes`` written."""

    objects: int
    frame_bytes: int
    data_bytes: int

    def frames(self) -> np.ndarray:
        base = self.frame_bytes // self.objects
        out = np.full(self.objects, base, dtype=np.int64)
        out[: self.frame_bytes - base * self.objects] += 1
        return out


@dataclass(frozen=True)
class CastReceiver:
    join_s: float = 0.0
    write_Bps: float = math.inf  # noqa: N815 - bytes per second of data written
    loss: float = 0.0  # of the sender's datagrams
    buffer: int = 256 * 2**20  # data bytes held unwritten at most


@dataclass(frozen=True)
class CastParams:
    rate_bps: float = 90e6  # the session's cap (wire bits per second)
    sender_startup_s: float = 0.5  # launch to first datagram
    receiver_startup_s: float = 0.3  # join to first request (process start, manifest)
    request_s: float = 0.1
    repair_s: float = REPAIR_S  # a repair round's wait for the requests (see the module)


@dataclass
class CastResult:
    done_s: np.ndarray  # per receiver, from the sender's launch (inf: never)
    duplicate_bytes: np.ndarray  # payload bytes each received while it had them already
    sent_bytes: int = 0
    sweeps: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    steps: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def simulate(
    image: CastImage, receivers: Sequence[CastReceiver], params: CastParams, *, seed: int = 0
) -> CastResult:
    """One session to its end: when each receiver completes, and its duplicate bytes."""
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    rng = np.random.default_rng(seed)
    n, k = len(receivers), image.objects
    frames = image.frames()
    blocks = np.maximum(1, -(-frames // BLOCK))
    data = np.full(k, image.data_bytes // k, dtype=np.float64)
    missing = np.tile(blocks, (n, 1)).astype(np.int32)  # blocks each receiver lacks
    join = np.array([r.join_s for r in receivers])
    ready = join + params.receiver_startup_s + params.request_s  # its first request is in
    write = np.array([r.write_Bps for r in receivers])
    loss = np.array([r.loss for r in receivers])
    buffer = np.array([r.buffer for r in receivers], dtype=np.float64)
    backlog = np.zeros(n)  # data bytes accepted, not yet written
    done = np.full(n, math.inf)
    dup = np.zeros(n, dtype=np.int64)
    wire = params.rate_bps / 8 * BLOCK / DATAGRAM  # payload bytes per second
    t = params.sender_startup_s
    cursor = 0
    res = CastResult(done, dup)
    left = np.ones(n, dtype=bool)  # not complete

    def drain(dt: float) -> None:
        nonlocal backlog
        if dt > 0:  # dt = 0 would make inf × 0 = NaN for the receivers that write at no cost
            backlog = np.maximum(0.0, backlog - write * dt)

    lacking = np.full(n, k, dtype=np.int64)  # objects each receiver still lacks

    def finish(now: float) -> None:
        newly = left & (lacking == 0) & (ready <= now)
        if newly.any():
            done[newly] = now + backlog[newly] / write[newly]
            left[newly] = False

    fast = ~np.isfinite(write)
    order = np.argsort(ready, kind="stable")
    joined = 0  # receivers of ``order`` already active
    need_fast = np.zeros(k, dtype=np.int64)  # active fast receivers lacking each object
    part_fast = np.zeros(k, dtype=np.int64)  # … lacking only some of its blocks (a repair)
    slow_ids: list[int] = []

    def activate(now: float) -> None:
        nonlocal joined
        while joined < n and ready[order[joined]] <= now:
            r = int(order[joined])
            joined += 1
            if fast[r]:
                need_fast[:] += missing[r] > 0
            else:
                slow_ids.append(r)

    def run_fast(objs: np.ndarray) -> None:
        """Send a run of objects in one go (no slow receiver is live, nobody joins during it)."""
        nonlocal t, cursor
        ids = np.flatnonzero(left & (ready <= t))
        sub = missing[np.ix_(ids, objs)]
        blk = blocks[objs]
        frac = sub / blk
        union = np.rint(blk * (1 - np.prod(1 - frac, axis=0))).astype(np.int64)
        union = np.maximum(union, sub.max(axis=0))
        payload = np.minimum(frames[objs], union * BLOCK)
        cum = np.cumsum(payload / wire)
        starts = t + cum - payload / wire
        nxt = float(ready[order[joined]]) if joined < n else math.inf
        m = max(1, int(np.searchsorted(starts, nxt, side="left")))
        objs, sub, union, payload, cum = objs[:m], sub[:, :m], union[:m], payload[:m], cum[:m]
        blk = blk[:m]
        takers = sub > 0
        new = np.where(takers, rng.binomial(sub, loss[ids][:, None]), 0)
        part_fast[objs] += ((new > 0) & (new < blk)).sum(axis=0) - ((sub > 0) & (sub < blk)).sum(
            axis=0
        )
        missing[np.ix_(ids, objs)] = new
        comp = takers & (new == 0)
        need_fast[objs] -= comp.sum(axis=0)
        lacking[ids] -= comp.sum(axis=1)
        ending = lacking[ids] == 0
        last = np.where(comp.any(axis=1), m - 1 - np.argmax(comp[:, ::-1], axis=1), -1)
        present = np.ones_like(takers)
        if ending.any():
            present[ending] = np.arange(m)[None, :] <= last[ending][:, None]
            done[ids[ending]] = t + cum[np.maximum(last[ending], 0)]
            left[ids[ending]] = False
        had = present & (sub == 0)
        part = present & takers & (sub < blk)
        dup[ids] += (had * payload).sum(axis=1)
        dup[ids] += (part * np.maximum(0, union - sub) * BLOCK).sum(axis=1)
        res.sent_bytes += int(payload.sum())
        res.steps += m
        t += float(cum[-1])
        cursor = int(objs[-1]) + 1

    rcursor = 0  # after the first sweep, repairs go first, in ascending order from here

    def repairs() -> np.ndarray:
        """Objects an active receiver lacks part of (a repair, whoever else lacks all of it)."""
        sub = missing[np.flatnonzero(left & (ready <= t))]
        return ((sub > 0) & (sub < blocks[None, :])).any(axis=0)

    def wrap() -> bool:
        """The sweep wraps; with repairs, what its end lost is asked for a little later."""
        nonlocal t, cursor, rcursor
        res.sweeps += 1
        cursor = rcursor = 0
        if not repairs().any():
            return False
        drain(params.repair_s)
        t += params.repair_s
        finish(t)
        return True

    def first_repair(rep: np.ndarray) -> np.ndarray:
        idx = np.flatnonzero(rep[rcursor:])
        return rcursor + idx if idx.size else np.flatnonzero(rep)

    while left.any():
        activate(t)
        if not any(left[r] for r in slow_ids):
            gap = (float(ready[order[joined]]) - t) if joined < n else math.inf
            fit = int(min(256, max(1, gap * wire / max(1.0, float(frames.mean())) + 2)))
            rep = part_fast > 0 if res.sweeps else None  # only fast receivers are live
            if rep is not None and rep.any():  # after a sweep, repairs first
                whole_cursor = cursor
                run_fast(first_repair(rep)[:fit])
                cursor, rcursor = whole_cursor, cursor
                continue
            wanted = np.flatnonzero(need_fast[cursor:] > 0)
            if not wanted.size and (need_fast > 0).any():
                if wrap():
                    continue
                wanted = np.flatnonzero(need_fast > 0)
            if wanted.size:
                # about as many objects as fit before the next join (the run is cut there)
                run_fast(cursor + wanted[:fit])
                continue
        active = left & (ready <= t)
        room = buffer - backlog
        obj, is_repair = None, False
        if res.sweeps:
            rep = repairs()
            if rep.any():
                obj, is_repair = int(first_repair(rep)[0]), True
        if obj is None:
            obj = _next(need_fast, missing, slow_ids, left, room, data, blocks, cursor)
            if obj is not None and obj < cursor and wrap():
                continue
        if obj is None:
            # nothing asked now: the next join, or room freed on a slow disk
            waits = [float(ready[order[joined]]) if joined < n else math.inf]
            live_slow = [r for r in slow_ids if left[r]]
            for r in live_slow:
                need = data[missing[r] > 0]
                if need.size:
                    waits.append(t + max(0.001, float((need.min() - room[r]) / write[r])))
            nxt = min(waits)
            if not math.isfinite(nxt):
                break
            drain(nxt - t)
            t = nxt
            finish(t)
            continue
        if is_repair:
            rcursor = obj + 1
        else:
            cursor = obj + 1
        col = missing[:, obj]
        takers = active & (col > 0) & ((col < blocks[obj]) | (room >= data[obj]))
        # the blocks sent: the union of what the takers miss (whole if one lacks it all)
        frac = col[takers] / blocks[obj]
        union = round(blocks[obj] * (1 - np.prod(1 - frac))) if takers.any() else 0
        union = max(union, int(col[takers].max()) if takers.any() else 0)
        payload = min(int(frames[obj]), union * BLOCK)
        dt = payload / wire
        res.sent_bytes += payload
        res.steps += 1
        # receivers that had it count the datagrams as duplicates (their own count)
        dup[active & (col == 0)] += payload
        partial = takers & (col < blocks[obj])
        dup[partial] += np.maximum(0, union - col[partial]) * BLOCK
        # each taker loses each of its blocks with its loss rate
        lost = rng.binomial(col[takers], loss[takers])
        fast_part = fast & active & (col > 0) & (col < blocks[obj])
        part_fast[obj] -= int(fast_part.sum())
        whole_now = takers & (col == blocks[obj])
        backlog[whole_now] += data[obj]
        completed = takers & fast
        need_fast[obj] -= int(completed.sum())
        missing[takers, obj] = lost
        still = missing[:, obj] > 0
        part_fast[obj] += int((fast & active & still & (missing[:, obj] < blocks[obj])).sum())
        need_fast[obj] += int((completed & still).sum())
        lacking[takers & ~still] -= 1
        drain(dt)
        t += dt
        finish(t)
    res.wall_s = time.perf_counter() - start_wall
    res.cpu_s = time.process_time() - start_cpu
    return res


def _next(
    need_fast: np.ndarray,
    missing: np.ndarray,
    slow_ids: list[int],
    left: np.ndarray,
    room: np.ndarray,
    data: np.ndarray,
    blocks: np.ndarray,
    cursor: int,
) -> int | None:
    """The elevator's next object: the first asked-for one at or after ``cursor``, wrapping.
    Fast receivers ask for all they lack; a slow one for what fits its buffer."""
    wanted = need_fast > 0
    for r in slow_ids:
        if left[r]:
            row = missing[r]
            wanted = wanted | ((row > 0) & ((row < blocks) | (room[r] >= data)))
    idx = np.flatnonzero(wanted[cursor:])
    if idx.size:
        return int(cursor + idx[0])
    idx = np.flatnonzero(wanted[:cursor])
    return int(idx[0]) if idx.size else None


# ---------------------------------------------------------------------- the lab's rows


def fit(t1_lab: float, image: CastImage, sender_startup_s: float) -> CastParams:
    """The model's parameters for a lab: the sender's measured start-up, and the effective rate
    that makes one receiver's time T(1) the lab's (the lab's pipeline — Python, CPU shared with
    the other engineers' work — is slower than the session's cap)."""
    transfer = max(0.1, t1_lab - sender_startup_s)
    rate = image.frame_bytes * 8 / transfer * DATAGRAM / BLOCK
    return CastParams(min(rate, 90e6), sender_startup_s, 0.0, 0.0)


def predict_rows(
    rows: Sequence[dict[str, Any]],
    image: CastImage,
    slow_Bps: float,  # noqa: N803
) -> list[dict[str, Any]]:
    """For each chunkcast row of the bench, the model's times next to the lab's (``slow_Bps``:
    the slow receiver's disk, bytes of data per second).  Fitted on the base N = 1 row."""
    base1 = next(r for r in rows if r["tool"] == "chunkcast" and r["scenario"] == "base"
                 and r["n"] == 1)  # fmt: skip
    startup = base1.get("sender_startup_s")
    params = fit(base1["makespan"], image, 1.0 if startup is None else startup)
    out = []
    for r in rows:
        if r["tool"] != "chunkcast":
            continue
        recv = []
        for i in range(r["n"]):
            join = 0.0
            if i == r["late"]:  # when it heard the session (its own start-up is not the model's)
                heard = r.get("heard") or []
                join = heard[i] if i < len(heard) and heard[i] is not None else r["joined"][i]
            write = slow_Bps if i == r["slow"] else math.inf
            loss = 0.01 if "loss" in r["scenario"] else 0.0
            buffer = 16 * 2**20 if i == r["slow"] else 256 * 2**20
            recv.append(CastReceiver(join, write, loss, buffer))
        sim = simulate(image, recv, params)
        times = [float(x) for x in sim.done_s]
        out.append({"scenario": r["scenario"], "n": r["n"], "lab": r["times"], "sim": times,
                    "rate_bps": params.rate_bps, "startup_s": params.sender_startup_s,
                    "sim_duplicate_bytes": [int(d) for d in sim.duplicate_bytes],
                    "lab_duplicate_bytes": r["duplicate_bytes"]})  # fmt: skip
    return out


def skewed(n: int, spread_s: float, seed: int = 0) -> list[CastReceiver]:
    """``n`` receivers joining uniformly over ``spread_s`` seconds."""
    rng = np.random.default_rng(seed)
    return [CastReceiver(float(j)) for j in np.sort(rng.uniform(0, spread_s, n))]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ogsim.chunkcast``: the model's scale runs (80 receivers joining over 30 s,
    1,000 with skewed starts), with the wall time each took."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m ogsim.chunkcast")
    p.add_argument("--image-mib", type=int, default=1024)
    p.add_argument("--loss", type=float, default=0.01)
    a = p.parse_args(argv)
    data = a.image_mib * 2**20
    image = CastImage(objects=max(1, data // (128 * 1024)), frame_bytes=data * 6 // 10,
                      data_bytes=data)  # fmt: skip
    for n, spread in ((80, 30.0), (1000, 30.0), (1000, 120.0)):
        recv = [CastReceiver(r.join_s, loss=a.loss) for r in skewed(n, spread)]
        res = simulate(image, recv, CastParams())
        last_join = max(r.join_s for r in recv)
        print(f"{n} receivers joining over {spread:.0f} s, {a.image_mib} MiB, loss {a.loss:.0%}: "
              f"last done at {res.done_s.max():.1f} s (last join {last_join:.1f} s), "
              f"{res.sweeps} sweeps, sent {res.sent_bytes / image.frame_bytes:.2f}× the image; "
              f"simulated in {res.wall_s:.2f} s ({res.cpu_s:.2f} s of CPU)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
