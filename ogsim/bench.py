"""``make bench-sim``: wall time, events/s and peak RSS of the simulator per method.

Runs a 1,000-PC × 30 GiB restore under each of the five methods (``--large`` adds the
10,000-PC campus), each in a fresh process so peak RSS is per run.  Prints numbers only; it never
asserts a time (targets: ≤ 10 s per method at 1,000 PCs, ≤ 2 min at 10,000, ≤ 2 GiB RSS;
TORRENT-CACHE, the slow one, ≤ 2 s at 1,000 and ≤ 30 s at 10,000).  Beside each wall time: its
ratio to the published figure (reports/published/benchmarks.md: 2026-11-27, and for TORRENT-CACHE
the figures of 2026-12-04 before issue 16's speed goal was worked on) and the host's load
average, which such a ratio depends on; ``--before`` adds the fair ratio, CPU seconds side by side.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import time

from ogref.model import ALL_METHODS

TARGETS = {1000: 10.0, 10000: 120.0}
TORRENT_TARGETS = {1000: 2.0, 10000: 30.0}
# published wall seconds (benchmarks.md), the reference for the printed ratio: 2026-11-27, and
# TORRENT-CACHE's of 2026-12-04 after the swarm's second pass (main d1ea98d, load 5.4 and 3.2)
BEFORE = {
    (1000, "UNICAST-CACHE"): 0.21,
    (1000, "UNICAST-DIRECT"): 0.12,
    (1000, "MULTICAST-CACHE"): 0.22,
    (1000, "MULTICAST-DIRECT"): 0.12,
    (1000, "TORRENT-CACHE"): 3.09,
    (10000, "TORRENT-CACHE"): 43.4,
}


def _one(args: tuple[int, str, str]) -> dict[str, float | str | int]:
    n, method, size = args
    from ogsim.simulator import simulate
    from ogsim.synthetic import synthetic

    t0 = time.perf_counter()
    scenario = synthetic(n, method, data=size, stored=size)
    t1 = time.perf_counter()
    c1 = time.process_time()
    results = simulate(scenario)
    t2 = time.perf_counter()
    cpu = time.process_time() - c1
    m = results.metrics
    return {
        "n": n,
        "method": method,
        "build_s": t1 - t0,
        "sim_s": t2 - t1,
        "cpu_s": cpu,
        "events": m.events,
        "events_per_s": m.events / (t2 - t1) if t2 > t1 else 0.0,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "makespan_s": m.makespan_s,
        "ok": m.ok,
    }


_BEFORE_RUN = """
import json, sys, time
from ogsim.simulator import simulate
from ogsim.synthetic import synthetic
n, method, size = int(sys.argv[1]), sys.argv[2], sys.argv[3]
sc = synthetic(n, method, data=size, stored=size)
t, c = time.perf_counter(), time.process_time()
r = simulate(sc)
print(json.dumps({"sim_s": time.perf_counter() - t, "cpu_s": time.process_time() - c,
                  "makespan_s": r.metrics.makespan_s}))
"""


def _before(tree: str, n: int, method: str, size: str) -> dict[str, float]:
    """The same run on an earlier source tree (``git archive REV | tar -x -C DIR``), in a
    fresh interpreter that imports ogsim from there."""
    import json
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": tree}
    out = subprocess.run(
        [sys.executable, "-c", _BEFORE_RUN, str(n), method, size],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=tree,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print a table."""
    ap = argparse.ArgumentParser(prog="python -m ogsim.bench", description=__doc__)
    ap.add_argument("--n", type=int, action="append", help="computer counts (default 1000)")
    ap.add_argument("--large", action="store_true", help="also run the 10,000-PC campus")
    ap.add_argument("--size", default="30GiB", help="image size (data = stored)")
    ap.add_argument("--method", action="append", help="methods (default: all five)")
    ap.add_argument(
        "--before",
        metavar="DIR",
        help="an earlier source tree (e.g. `git archive 5be269c | tar -x -C DIR`): each case "
        "also runs there, just before, and the CPU-time ratio now/before is printed (a ratio "
        "measured side by side; the wall ratio to the published figures depends on the load)",
    )
    args = ap.parse_args(argv)
    counts = args.n or [1000]
    if args.large and 10000 not in counts:
        counts.append(10000)
    methods = args.method or [str(m) for m in ALL_METHODS]
    print(f"ogsim benchmark: image {args.size}, one fresh process per run")
    head = (
        f"{'N':>6}  {'method':<17} {'wall s':>8} {'build s':>8} {'events':>9} "
        f"{'events/s':>10} {'peak RSS':>9} {'makespan':>10} {'ok':>6} {'before':>7} "
        f"{'ratio':>6} {'load':>5} {'cpu s':>7} {'cpu before':>10} {'cpu ratio':>9}  target"
    )
    print(head)
    print("-" * len(head))
    ctx = mp.get_context("spawn")
    for n in counts:
        for method in methods:
            prev = _before(args.before, n, method, args.size) if args.before else None
            with ctx.Pool(1, maxtasksperchild=1) as pool:
                r = pool.apply(_one, ((n, method, args.size),))
            cpu = float(r["cpu_s"])
            side = (
                f"{cpu:>7.2f} {prev['cpu_s']:>10.2f} {cpu / prev['cpu_s']:>9.2f}"
                if prev
                else f"{cpu:>7.2f} {'-':>10} {'-':>9}"
            )
            target = (TORRENT_TARGETS if method == "TORRENT-CACHE" else TARGETS).get(n)
            before = BEFORE.get((n, method))
            wall = float(r["sim_s"])
            ratio = f"{wall / before:>6.2f}" if before else f"{'-':>6}"
            old = f"{before:>6.2f}s" if before else f"{'-':>7}"
            within = (
                ""
                if target is None
                else (f"≤ {target:.0f}s {'met' if float(r['sim_s']) <= target else 'MISSED'}")
            )
            print(
                f"{n:>6}  {method:<17} {float(r['sim_s']):>8.2f} {float(r['build_s']):>8.2f} "
                f"{int(r['events']):>9} {float(r['events_per_s']):>10,.0f} "
                f"{float(r['rss_mb']):>7.0f}MB {float(r['makespan_s']):>9.0f}s "
                f"{int(r['ok']):>6} {old} {ratio} {os.getloadavg()[0]:>5.1f} {side}  {within}"
            )


if __name__ == "__main__":
    main()
