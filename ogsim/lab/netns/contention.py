"""``python -m ogsim.lab.netns.contention``: what this host's cores do together, against one alone.

A one-host lab's computers share the host's cores (``backends.sim.shared_cpus``), and the
simulator shares each stage's CPU work — measured at N = 1 — max-min fair over them.  That is
right only if two cores busy at once each do what one does alone.  On a virtual machine they
need not: two vCPUs may be one physical core's two threads, share a last-level cache and
memory bandwidth, or lose time to the hypervisor's other guests (steal), and which of these
holds can change while the guest runs.  At N = 4 the lab's s26 cost 0.93–1.40× the CPU seconds
of four N = 1 runs, moving between quarter-hours on an otherwise idle host
(reports/published/chunked-sim.md).

This measures it on the host alone, with no lab and no N > 1 run of anything: a CPU-bound
worker doing a chunked restore's processing (zstd decompression of the lab's kind of chunk,
its BLAKE3 name, the copy into a buffer) runs for ``seconds`` alone, then one such worker per
core runs for ``seconds`` at once; the bytes all of them processed against the one's alone is
the cores' worth of work the host does when every core is busy — the simulator's
``backends.sim.shared_cpus_busy``.  Rounds alternate alone/together; the median is reported with
each round's figures, the CPU seconds per byte together against alone, and the CPU time stolen
by the hypervisor (``/proc/stat`` steal) during each.  No root needed.  Measures only.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier
from typing import Any

from ogsim.lab.netns.cpu import host_steal_s

CHUNKS = 32  # 4 MiB of chunks per pass: beyond the L2, as a restore's stream is


def _frames(seed: int = 7) -> list[tuple[bytes, int]]:
    """The lab's kind of chunk (half text-like words, half random bytes), zstd-compressed:
    (frame, uncompressed size) pairs."""
    from ogref.runtime.chunked import chunk
    from ogsim.lab.netns.chunk_costs import chunk_data

    rng = random.Random(seed)
    out = []
    for _ in range(CHUNKS):
        data = chunk_data(rng)
        out.append((chunk.compress(data), len(data)))
    return out


def _work(
    frames: list[tuple[bytes, int]], seconds: float, barrier: Barrier, pipe: Connection
) -> None:
    """One worker: after the barrier, decompress, name and copy chunks for ``seconds``; sends
    (bytes processed, wall seconds, CPU seconds)."""
    from ogref.runtime.chunked import chunk

    buf = bytearray(max(size for _, size in frames))
    barrier.wait()
    t0, c0 = time.monotonic(), time.process_time()
    done = 0
    while time.monotonic() - t0 < seconds:
        for frame, size in frames:
            data = chunk.decompress(frame, size)
            chunk.digest(data)
            buf[:size] = data
            done += size
    pipe.send((done, time.monotonic() - t0, time.process_time() - c0))
    pipe.close()


def _run(frames: list[tuple[bytes, int]], workers: int, seconds: float) -> dict[str, float]:
    """``workers`` workers at once: their bytes, wall and CPU seconds (sums) and the steal."""
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(workers + 1)
    pipes, procs = [], []
    for _ in range(workers):
        ours, theirs = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_work, args=(frames, seconds, barrier, theirs), daemon=True)
        p.start()
        theirs.close()
        pipes.append(ours)
        procs.append(p)
    steal0 = host_steal_s()
    barrier.wait()
    got = [pipe.recv() for pipe in pipes]
    steal = host_steal_s() - steal0
    for p in procs:
        p.join()
    wall = max(g[1] for g in got)
    return {
        "workers": workers,
        "bytes": float(sum(g[0] for g in got)),
        "wall_s": round(wall, 4),
        "cpu_s": round(sum(g[2] for g in got), 4),
        "steal_share": round(steal / (wall * (os.cpu_count() or 1)), 4),
    }


def measure(seconds: float = 1.0, rounds: int = 3, cores: int | None = None) -> list[dict]:
    """``rounds`` pairs of runs, one worker alone then one per core (``cores``, default every
    core) at once; each round's two runs."""
    cores = cores or os.cpu_count() or 1
    frames = _frames()
    _run(frames, 1, min(0.2, seconds))  # warm: imports, page faults of the frames
    out = []
    for _ in range(rounds):
        out.append({"alone": _run(frames, 1, seconds), "together": _run(frames, cores, seconds)})
    return out


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The cores' worth of one worker's work that every core busy at once does (the median over
    the rounds of the bytes together per second against alone's, at most the workers), the
    CPU seconds per byte together against alone, and the steal shares."""
    busy, cost = [], []
    for r in rounds:
        a, t = r["alone"], r["together"]
        rate_alone = a["bytes"] / a["wall_s"]
        busy.append(min(float(t["workers"]), t["bytes"] / t["wall_s"] / rate_alone))
        cost.append((t["cpu_s"] / t["bytes"]) / (a["cpu_s"] / a["bytes"]))
    return {
        "busy_cores": round(statistics.median(busy), 3),
        "busy_cores_rounds": [round(b, 3) for b in busy],
        "cpu_per_byte_together_vs_alone": round(statistics.median(cost), 3),
        "steal_share_alone": [r["alone"]["steal_share"] for r in rounds],
        "steal_share_together": [r["together"]["steal_share"] for r in rounds],
        "cores": rounds[0]["together"]["workers"] if rounds else 0,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ogsim.lab.netns.contention")
    p.add_argument("--seconds", type=float, default=1.0, help="each run's length")
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args(argv)
    rounds = measure(a.seconds, a.rounds)
    print(json.dumps({"rounds": rounds, "summary": summarise(rounds)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
