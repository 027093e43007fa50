"""``python -m ogsim.lab.netns.chunked_bench``: s26 (a chunked differential image deployed to
caches holding its base) on the namespace lab and on the simulator, side by side in one run.

1. The lab host's costs are measured (:mod:`ogsim.lab.netns.chunk_costs`: per-chunk SMB
   request latency, per-directory listing, syncfs; :func:`~ogsim.lab.netns.calibration.
   measure_write_rate`) — or reused (``--costs``).
2. s26 runs on the lab with **one** computer (``--fit-runs`` times), the run's cgroup's CPU
   traced every ``--trace`` seconds; from those alone the rest is fitted (means): the
   inspection step (start to fetch less the listings, per step), the chunked restore's rate
   (used bytes ÷ its span), the update's setup (its span less the wire and the per-chunk
   latency), the report; and from the trace each stage's CPU — the host's whole, agent, smbd,
   service — as the cores it kept busy (``inspect_cpu``, ``fetch_cpu`` and ``cpu`` per chunk,
   ``restore_cpu``, ``report_cpu``), which the simulator shares among computers on the host's
   ``shared_cpus`` cores.  The trace also keeps the host's busy CPU: what the host spent
   outside the cgroup over a stage, less its background measured around the run (the kernel's
   threads working for the run: loop devices, softirqs), counts as that stage's CPU too
   (``--no-kernel``: not).  The restore's final fsync and the update's syncfs go through the
   host's one disk (``backends.sim.shared_disk``: its rate and the kernel's CPU per byte of
   writeback, measured alone by :func:`~ogsim.lab.netns.chunk_costs.measure_writeback`;
   ``--no-shared-disk``: at the disk's rate through the host's shared capacity, as before).
   Without a trace (``--trace 0``): the micro-benchmark's per-chunk CPU and in-process
   restore cores, and the restore's fsync apart.
   Before the lab runs, what the host's two cores do together against one alone is measured
   on the host alone (:mod:`ogsim.lab.netns.contention`: CPU-bound workers doing a restore's
   chunk processing, one alone then one per core): the simulator's ``shared_cpus_busy``
   (``--no-contention``: not; measured again after the runs, for information).
3. s26 runs on the lab as written (four computers) ``--check-runs`` times — the check, nothing
   fitted from it.
4. The simulator, given the images each lab run made (``lab_sized``) and the lab host's
   hardware, predicts each run; the report gives lab vs sim per stage (start+inspect, fetch,
   restore, report: the mean over the computers, the lab's min–max, the lab's CPU seconds) and
   the makespan with their ratio, each run's, and for the checked runs the lab's median and
   spread against the simulator's — and against the previous model's (no shared disk, each
   stage's CPU the cgroup's only), from the same lab runs.

``--scale`` runs the netns lab at another scale than s26's 0.002 (bigger images: fixed costs
weigh less).  Writes ``chunked.json`` and ``chunked.md`` in ``--out``.  Root.  Hold the bench
lock.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ogref.site import read_yaml
from ogsim.chunks import chunk_count, directories
from ogsim.lab.netns.calibration import LabHw, dirty_limit, measure_write_rate
from ogsim.results import Results
from ogsim.scenario import Scenario, build_scenario

S26 = Path(__file__).resolve().parents[3] / "scenarios" / "s26-chunked-differential-deploy.yaml"
STAGES = ("start+inspect", "fetch", "restore", "report")
INSPECTIONS = 3  # target, image, cache (UNICAST-CACHE)


def scenario(n: int, raw: dict[str, Any] | None = None) -> Scenario:
    """s26 with ``n`` computers (as written: 4)."""
    doc = copy.deepcopy(raw if raw is not None else read_yaml(S26))
    doc["classrooms"][0]["computers"]["count"] = n
    return build_scenario(doc, source=f"<s26 N={n}>")


def stages(r: Results) -> dict[str, Any]:
    """Per stage, each ok computer's seconds — ``start+inspect``: the operation's start to the
    fetch (the agent's start, the inspections, the core's decisions), ``fetch``, ``restore``,
    ``report``: the restore's end to the computer's end — and the makespan."""
    op = r.operations[0]
    out: dict[str, Any] = {s: [] for s in STAGES}
    for c in op.computers:
        if c.status != "ok" or c.finished is None:
            continue
        fetch = next(p for p in c.phases if p.name == "fetch")
        restore = next(p for p in c.phases if p.name == "restore")
        out["start+inspect"].append(round(fetch.start - op.at, 4))
        out["fetch"].append(round(fetch.end - fetch.start, 4))
        out["restore"].append(round(restore.end - restore.start, 4))
        out["report"].append(round(c.finished - restore.end, 4))
    out["total"] = round(float(op.makespan or 0.0), 4)
    return out


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def stage_cpu(r: Results, column: int = 1) -> dict[str, list[float]]:
    """Per stage, each ok computer's CPU seconds of the lab run's cgroup (agents, smbd, the
    service: every process the run started) over that stage's interval — meaningful per
    computer only with one computer (``[]`` without a trace, a run without ``cpu_trace``).
    ``column`` 2: the host's busy CPU seconds instead (everything), 3: the host's kernel CPU
    seconds, 4: the cgroup's kernel CPU seconds (``[]`` if not traced)."""
    from ogsim.lab.netns.cpu import cpu_between

    rows = r.metrics.extra.get("cpu_trace") or []
    trace = [(float(x[0]), float(x[column])) for x in rows if len(x) > column]
    op = r.operations[0]
    out: dict[str, list[float]] = {s: [] for s in STAGES}
    if len(trace) < 2:
        return out
    for c in op.computers:
        if c.status != "ok" or c.finished is None:
            continue
        fetch = next(p for p in c.phases if p.name == "fetch")
        restore = next(p for p in c.phases if p.name == "restore")
        bounds = {
            "start+inspect": (op.at, fetch.start),
            "fetch": (fetch.start, fetch.end),
            "restore": (restore.start, restore.end),
            "report": (restore.end, c.finished),
        }
        for s, (a, b) in bounds.items():  # fmt: skip
            out[s].append(round(cpu_between(trace, a, b), 4))
    return out


def stage_kernel(r: Results) -> dict[str, list[float]]:
    """Per stage, each ok computer's CPU seconds the host spent in the kernel outside the run's
    cgroup over that stage (the host's system, irq and softirq time less the cgroup's system
    time and the tracer's own CPU), less the host's background of it
    (``metrics.extra.background_cores``, measured just before the run) — the kernel's threads
    working for the run: the loop devices'
    workers, writeback, the network's softirqs.  Other programs' user time (the host is
    shared) is not in it.  ``[]`` without a host trace."""
    own, host, tracer = stage_cpu(r, 4), stage_cpu(r, 3), stage_cpu(r, 5)
    if not all(host[s] for s in STAGES):
        return {s: [] for s in STAGES}
    background = float(r.metrics.extra.get("background_cores") or 0.0)
    st = stages(r)
    for s in STAGES:  # traces without the tracer's own CPU: none taken off
        tracer[s] = tracer[s] or [0.0] * len(host[s])
    return {s: [round(max(0.0, h - c - m - background * d), 4)
                for h, c, m, d in zip(host[s], own[s], tracer[s], st[s], strict=True)]
            for s in STAGES}  # fmt: skip


def fit(
    costs: dict[str, Any], runs: list[Results], base: LabHw, *, kernel: bool = True
) -> tuple[LabHw, dict[str, Any]]:
    """The lab host's hardware from the measured costs and the N = 1 runs (their means):
    ``(hw, chunks)`` where ``chunks`` is the classroom's ``hw.chunks`` mapping.

    With the runs' CPU traces (``cpu_trace``) each stage's CPU is the host's whole (the run's
    cgroup over the stage): the inspection's, the update's (per chunk, from its start, at the
    cores it kept busy) and the restore's cores are those, which the simulator shares among
    concurrent computers on the host's ``shared_cpus`` cores; without traces, the
    micro-benchmark's per-chunk CPU and in-process restore cores.  The report (the restore's
    end to the computer's end) is the runs' mean, a CPU step at the cores it kept busy.

    With ``kernel`` and the host's busy CPU in the traces, each stage's CPU also counts what
    the host spent outside the cgroup for it (:func:`stage_kernel`: the loop devices' workers,
    the network's softirqs), less the writeback the shared disk already counts
    (``base.disk_rate`` with ``writeback_cpu_rate``)."""
    made = runs[0].metrics.extra["images"]["ubuntu-v2"]
    each = [stages(r) for r in runs]
    st = {s: [x for e in each for x in e[s]] for s in STAGES}
    used_cpu = [stage_cpu(r) for r in runs]
    cpu = {s: [x for e in used_cpu for x in e[s]] for s in STAGES}
    traced = all(cpu[s] for s in STAGES)
    image = scenario(1).site.repository("repo").image("ubuntu-v2")
    image = dataclasses.replace(
        image,
        stored_size=made["stored"],
        used_size=made.get("used", 0),
        data_size=made["data"],
        added_size=made["added"],
    )
    n = chunk_count(image, made["added"])
    listing = directories(n) * costs["list_s"]
    hw = copy.deepcopy(base)
    hw.inspect_s = max(0.0, (_mean(st["start+inspect"]) - listing) / INSPECTIONS)
    hw.postconf_s = 0.0
    used = made.get("used") or made["data"]
    # the restore's final fsync as the simulator runs it on a one-host lab: through the host's
    # shared disk when measured (``disk_rate``), else at the disk's rate through the host's
    # shared capacity (like a DIRECT restore's sync)
    dirty = min(used, hw.dirty_bytes)
    if hw.disk_rate > 0:
        fsync = hw.writeback_s(dirty)
        flush = hw.writeback_s(min(made["added"], hw.dirty_bytes))
    else:
        fsync = dirty / min(hw.write_rate, hw.cpus * hw.decompress_rate)
        flush = min(made["added"], hw.dirty_bytes) / hw.write_rate
    processing = max(1e-3, _mean(st["restore"]) - fsync)
    rate = used / processing
    wire = made["added"] * (1 + hw.smb_overhead) / (100e6 / 8)
    rest = n * costs["chunk_request_s"] + costs["syncfs_s"] + flush
    if traced and kernel:
        k_runs = [stage_kernel(r) for r in runs]
        kern = {s: [x for e in k_runs for x in e[s]] for s in STAGES}
        if all(kern[s] for s in STAGES):
            wb = hw.writeback_cpu_rate if hw.disk_rate > 0 else 0.0
            counted = {"restore": dirty / wb if wb else 0.0,
                       "fetch": min(made["added"], hw.dirty_bytes) / wb if wb else 0.0}  # fmt: skip
            cpu = {s: [c + max(0.0, k - counted.get(s, 0.0))
                       for c, k in zip(cpu[s], kern[s], strict=True)] for s in STAGES}  # fmt: skip
    chunks: dict[str, Any] = {}
    if traced:
        # the host's whole CPU per stage (N = 1): cores = CPU seconds ÷ the stage's span
        cores = float(hw.cpus)
        per_chunk = _mean(cpu["fetch"]) / max(1, n)
        fetch_span = max(1e-3, _mean(st["fetch"]) - rest)
        setup = max(0.0, _mean(st["fetch"]) - wire - rest)
        inspect_span = max(1e-3, INSPECTIONS * hw.inspect_s)
        chunks["inspect_cpu"] = round(min(cores, max(0.01, _mean(cpu["start+inspect"])
                                                    / inspect_span)), 3)  # fmt: skip
        chunks["fetch_cpu"] = round(min(cores, max(0.01, n * per_chunk / fetch_span)), 3)
        report_span = max(1e-3, _mean(st["report"]))
        chunks["report_cpu"] = round(min(cores, max(0.01, _mean(cpu["report"]) / report_span)), 3)
        restore_cpu = min(cores, max(0.01, _mean(cpu["restore"]) / processing))
    else:
        per_chunk = max(costs["chunk_cpu_s"], 0.0)  # alone, the CPU work overlaps the wire
        setup = max(0.0, _mean(st["fetch"]) - max(wire, n * per_chunk) - rest)
        restore_cpu = costs.get("restore_cpu") or 1.0
    chunks = {
        "setup": f"{setup:.4f}s",
        "request": f"{costs['chunk_request_s']:.5f}s",
        "cpu": f"{per_chunk:.5f}s",
        "list": f"{costs['list_s']:.5f}s",
        "syncfs": f"{costs['syncfs_s']:.4f}s",
        "restore": f"{rate / 1e6:.3f}MB/s",
        "restore_cpu": round(restore_cpu, 3),
        "report": f"{_mean(st['report']):.4f}s",
        **chunks,
    }
    return hw, chunks


def sim_of(lab: Results, n: int, hw: LabHw, chunks: dict[str, Any]) -> Results:
    """The simulator's run of s26 with ``n`` computers, the images ``lab`` made and the lab
    host's hardware."""
    from ogsim.lab.netns.bench import lab_sized
    from ogsim.simulator import simulate

    sized = lab_sized(scenario(n), lab)
    raw = json.loads(
        json.dumps(sized.spec.model_dump(mode="json", by_alias=True, exclude_none=True))
    )
    room = raw["classrooms"][0]["defaults"]
    room["hw"] = {"link": room["hw"]["link"], **hw.hw(), "chunks": chunks}
    raw["repositories"][0]["hw"] = {**raw["repositories"][0]["hw"], **hw.repo_hw()}
    raw["backends"]["sim"] = hw.sim()
    return simulate(build_scenario(raw, source=f"<s26 N={n}, lab-sized>"), None)


def table(rows: list[dict[str, Any]]) -> str:
    """The side-by-side table: lab (mean, min–max) vs sim per stage and total, sim/lab."""
    out = [
        "| N | lab run | stage | lab (mean, min–max over PCs) s | lab CPU s: cgroup + kernel "
        "| sim s | sim / lab |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        idle = row.get("cpu_idle_mean")
        how = ("fitted" if row.get("fitted") else "check") + f" {row.get('run', '')}".rstrip()
        if idle is not None:
            how += f", idle {idle:.2f}{' (CPU-bound)' if row.get('cpu_bound') else ''}"
        if row.get("cpu_cores_used") is not None:
            how += f", run {row['cpu_cores_used']:.2f} cores, waited {row['cpu_wait_share']:.2f}"
        if row.get("host_other_cores") is not None:
            how += f", else {row['host_other_cores']:.2f} cores"
        if row.get("io_stall_share") is not None:
            how += f", I/O stall {row['io_stall_share']:.2f}"
        if row.get("host_cores"):
            h = row["host_cores"]
            how += f", kernel {h['kernel_outside']:.2f}, others {h['others_user']:.2f} cores"
        if row.get("work_vs_n_times_n1"):
            how += f", work {row['work_vs_n_times_n1']:.2f}× N × N = 1's"
        if row.get("load_before_after"):
            how += ", load {:.2f} → {:.2f}".format(*row["load_before_after"])
        for s in (*STAGES, "total"):
            lab, sim = row["lab"][s], row["sim"][s]
            used = row.get("lab_cpu", {}).get(s) or []
            kern = (row.get("lab_kernel_cpu") or {}).get(s) or []
            cpu = f"{_mean(used):.3f}" if used else "-"
            cpu += f" + {_mean(kern):.3f}" if kern else ""
            if s == "total":
                cell, ls, ss = f"{lab:.3f} (makespan)", lab, sim
            else:
                ls, ss = _mean(lab), _mean(sim)
                cell = f"{ls:.3f} ({min(lab):.3f}–{max(lab):.3f})" if lab else "-"
            ratio = f"{ss / ls:.2f}" if ls else "-"
            name = f"**{s}**" if s == "total" else s
            out.append(f"| {row['n']} | {how} | {name} | {cell} | {cpu} | {ss:.3f} | {ratio} |")
    return "\n".join(out)


def other_cores(extra: dict[str, Any], cpus: int) -> float | None:
    """Cores the host spent on anything but the run's cgroup while it ran (other work, and
    kernel threads such as the loop devices' writers): busy cores less the run's."""
    idle, used = extra.get("cpu_idle_mean"), extra.get("cpu_cores_used")
    if idle is None or used is None:
        return None
    return round(max(0.0, cpus * (1.0 - idle) - used), 2)


def host_split(r: Results) -> dict[str, float]:
    """The host's cores over the traced run: the cgroup's, the kernel's outside it, and other
    programs' user time (the host is shared: what the lab did not ask for); ``{}`` untraced."""
    tr = [x for x in r.metrics.extra.get("cpu_trace") or [] if len(x) >= 5]
    tr = [x for x in tr if len(x) == len(tr[0])] if tr else tr
    if len(tr) < 2 or tr[-1][0] <= tr[0][0]:
        return {}
    a, b = tr[0], tr[-1]
    d = [(y - x) / (b[0] - a[0]) for x, y in zip(a, b, strict=True)]
    tracer = d[5] if len(d) > 5 else 0.0
    kernel = d[3] - d[4] - tracer
    return {"cgroup": round(d[1], 3), "kernel_outside": round(kernel, 3),
            "others_user": round(max(0.0, d[2] - d[1] - kernel - tracer), 3)}  # fmt: skip


def run_work(r: Results) -> float | None:
    """CPU seconds the run cost the host over its operation (its start to its makespan): the
    cgroup's and the kernel's outside it (less the tracer's own and the kernel's background, as
    :func:`stage_kernel`); None without a host trace."""
    from ogsim.lab.netns.cpu import cpu_between

    tr = [x for x in r.metrics.extra.get("cpu_trace") or [] if len(x) >= 5]
    if len(tr) < 2:
        return None
    op = r.operations[0]
    a, b = op.at, op.at + float(op.makespan or 0.0)

    def grew(col: int) -> float:
        return cpu_between([(x[0], x[col]) for x in tr], a, b) if len(tr[0]) > col else 0.0

    background = float(r.metrics.extra.get("background_cores") or 0.0) * (b - a)
    return round(grew(1) + max(0.0, grew(3) - grew(4) - grew(5) - background), 4)


def overlap(r: Results) -> list[float]:
    """The lab run's last fetch end and first restore end (s from the operation's start): a
    restore's final writeback cannot overlap another computer's fetch when the first is after
    the second."""
    st = stages(r)
    fetched = [a + b for a, b in zip(st["start+inspect"], st["fetch"], strict=True)]
    restored = [a + b for a, b in zip(fetched, st["restore"], strict=True)]
    return [round(max(fetched), 3), round(min(restored), 3)] if fetched else []


def background_cores(seconds: float = 1.0) -> float:
    """The host's cores in the kernel over ``seconds`` (run between lab runs: what other work
    costs the kernel there)."""
    from ogsim.lab.netns.cpu import host_kernel_s

    b, t = host_kernel_s(), time.monotonic()
    time.sleep(seconds)
    return (host_kernel_s() - b) / (time.monotonic() - t)


def _median(xs: list[float]) -> float:
    ys = sorted(xs)
    m = len(ys) // 2
    return ys[m] if len(ys) % 2 else (ys[m - 1] + ys[m]) / 2


def summary(rows: list[dict[str, Any]], sim: str = "sim") -> dict[str, Any]:
    """The checked runs (nothing fitted on them): per stage and for the makespan, each run's
    sim / lab, and the lab's median with its spread (min–max) against the simulator's (its
    prediction under the rows' key ``sim``)."""
    checks = [r for r in rows if not r["fitted"]]
    out: dict[str, Any] = {}
    for s in (*STAGES, "total"):
        labs = [r["lab"][s] if s == "total" else _mean(r["lab"][s]) for r in checks]
        sims = [r[sim][s] if s == "total" else _mean(r[sim][s]) for r in checks]
        if not labs:
            continue
        med = _median(labs)
        out[s] = {"lab": [round(x, 3) for x in labs], "sim": [round(x, 3) for x in sims],
                  "ratios": [round(b / a, 3) if a else None for a, b in zip(labs, sims, strict=True)],
                  "lab_median": round(med, 3), "lab_spread": [round(min(labs), 3), round(max(labs), 3)],
                  "sim_median": round(_median(sims), 3),
                  "median_ratio": round(_median(sims) / med, 3) if med else None}  # fmt: skip
    return out


def summary_text(summ: dict[str, Any]) -> str:
    out = ["| stage | lab per run s | lab median (min–max) s | sim s | sim / lab per run "
           "| sim / lab median |", "|---|---|---|---|---|---|"]  # fmt: skip
    for s, d in summ.items():
        runs = ", ".join(f"{x:.3f}" for x in d["lab"])
        ratios = ", ".join(f"{x:.2f}" for x in d["ratios"] if x is not None)
        lo, hi = d["lab_spread"]
        out.append(f"| {s} | {runs} | {d['lab_median']:.3f} ({lo:.3f}–{hi:.3f}) "
                   f"| {d['sim_median']:.3f} | {ratios} | {d['median_ratio']:.2f} |")  # fmt: skip
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ogsim.lab.netns.chunked_bench")
    p.add_argument("--out", type=Path, default=Path("reports/lab-chunked"))
    p.add_argument("--n", type=int, default=4, help="computers of the checked run (s26: 4)")
    p.add_argument("--costs", type=Path, help="a chunk_costs.json to reuse (else measured)")
    p.add_argument("--fit-runs", type=int, default=2, help="N = 1 lab runs fitted on (mean)")
    p.add_argument("--check-runs", type=int, default=3, help="N = --n lab runs checked")
    p.add_argument("--scale", type=float, help="netns scale (s26: 0.002)")
    p.add_argument("--trace", type=float, default=0.01,
                   help="seconds between samples of the run cgroup's CPU (0: no trace)")  # fmt: skip
    p.add_argument("--no-kernel", action="store_true",
                   help="each stage's CPU the run's cgroup only (not the host's CPU outside "
                        "it, the kernel's threads working for the run)")  # fmt: skip
    p.add_argument("--no-contention", action="store_true",
                   help="the host's cores each do one core's work when all are busy (do not "
                        "measure what they do together, ogsim.lab.netns.contention)")  # fmt: skip
    p.add_argument("--no-shared-disk", action="store_true",
                   help="the writeback at the disk's rate through the host's shared capacity "
                        "(the previous model) even when the costs measured the host's disk")  # fmt: skip
    a = p.parse_args(argv)
    if os.geteuid() != 0:
        print("chunked_bench: needs root (network namespaces, loop devices)", file=sys.stderr)
        return 2
    from ogsim.lab.netns import LabOptions, contention, run
    from ogsim.lab.netns.chunk_costs import measure

    a.out.mkdir(parents=True, exist_ok=True)
    load = [list(os.getloadavg())]
    if a.costs:
        costs = json.loads(a.costs.read_text())["params"]
    else:
        costs = measure(a.out / "costs")["params"]
    base = LabHw(
        write_rate=measure_write_rate(a.out),
        # the restore's writeback (the loop devices' kernel threads, outside the run's cgroup:
        # at N = 4 the host's other cores and I/O stall show it) stays the byte-counted step
        # through the host's shared capacity; with ``dirty_bytes`` 0 every stage would be only
        # its cgroup CPU (measured 2026-12-04 20:00: the N = 4 restore 0.35× the lab's)
        dirty_bytes=dirty_limit(),
        inspect_s=0.0,
        postconf_s=0.0,
        # reports/published/lab-calibration.md (third pass): SMB's framing, the CACHE
        # restore's rate (the unit of the host's shared capacity)
        smb_overhead=0.059,
        decompress_rate=178.5e6,
    )
    if costs.get("writeback_rate") and not a.no_shared_disk:
        # the host's one disk and its kernel writeback threads, measured alone (N = 1)
        base.disk_rate = float(costs["writeback_rate"])
        base.writeback_cpu_rate = float(costs.get("writeback_cpu_rate") or 0.0)
        base.writeback_fixed_s = float(costs.get("writeback_fixed_s") or 0.0)
    # what the host's cores do together against one alone, on the host alone, just before
    # the lab runs (an input: it moves between quarter-hours here) and, for information, after
    busy: list[dict[str, Any]] = [contention.summarise(contention.measure())]
    if not a.no_contention:
        base.busy_cores = float(busy[0]["busy_cores"])
    opts = LabOptions(scale=a.scale, cpu_trace=a.trace or None)
    loads: list[list[float]] = []

    def lab_run(n: int, where: Path) -> Results:
        # the host's kernel cores without the lab (other work), just before it: after a pause
        # (the last lab's deferred kernel work), the median of five 0.2-s samples
        time.sleep(1.5)
        idle = sorted(background_cores(0.2) for _ in range(5))[2]
        before = os.getloadavg()[0]
        r = run(scenario(n), None, where, opts)
        loads.append([round(before, 2), round(os.getloadavg()[0], 2)])
        r.metrics.extra["background_cores"] = round(idle, 3)
        return r

    ones = [lab_run(1, a.out / f"lab-n1-{i}") for i in range(a.fit_runs)]
    checks = [lab_run(a.n, a.out / f"lab-n{a.n}-{i}") for i in range(a.check_runs)]
    hw, chunks = fit(costs, ones, base, kernel=not a.no_kernel)
    # the previous model (no shared disk, the cgroup's CPU only) from the same lab runs
    old = dataclasses.replace(base, disk_rate=0.0, busy_cores=0.0)
    prev = fit(costs, ones, old, kernel=False) if base.disk_rate or not a.no_kernel else None
    rows = []
    labs = [*((1, i, r) for i, r in enumerate(ones)), *((a.n, i, r) for i, r in enumerate(checks))]
    for (n, i, lab), la in zip(labs, loads, strict=True):
        sim = sim_of(lab, n, hw, chunks)
        x = lab.metrics.extra
        rows.append({"n": n, "run": i + 1, "lab": stages(lab), "sim": stages(sim),
                     "lab_cpu": stage_cpu(lab), "fitted": n == 1, "load_before_after": la,
                     "images": x["images"]["ubuntu-v2"], "cpu_idle_mean": x.get("cpu_idle_mean"),
                     "cpu_bound": x.get("cpu_bound"), "cpu_cores_used": x.get("cpu_cores_used"),
                     "cpu_wait_share": x.get("cpu_wait_share"),
                     "host_other_cores": other_cores(x, hw.cpus),
                     "io_stall_share": x.get("io_stall_share"),
                     "background_cores": x.get("background_cores"),
                     "last_fetch_end_first_restore_end": overlap(lab),
                     "host_cores": host_split(lab), "work_cpu_s": run_work(lab),
                     "lab_kernel_cpu": stage_kernel(lab),
                     "cpu_steal_share": x.get("cpu_steal_share")})  # fmt: skip
        if hw.busy_cores > 0:
            rows[-1]["sim_uncontended"] = stages(
                sim_of(lab, n, dataclasses.replace(hw, busy_cores=0.0), chunks)
            )
        if prev is not None:
            rows[-1]["sim_prev"] = stages(sim_of(lab, n, *prev))
    busy.append(contention.summarise(contention.measure()))
    load.append(list(os.getloadavg()))
    # what four cost the host against four times what one cost (the sim shares the N = 1 work)
    one = [r["work_cpu_s"] for r in rows if r["n"] == 1 and r["work_cpu_s"]]
    for r in rows:
        if r["n"] > 1 and r["work_cpu_s"] and one:
            r["work_vs_n_times_n1"] = round(r["work_cpu_s"] / (r["n"] * _mean(one)), 3)
    summ = summary(rows)
    summ_prev = summary(rows, "sim_prev") if prev is not None else {}
    summ_free = summary(rows, "sim_uncontended") if hw.busy_cores > 0 else {}
    scale = a.scale or scenario(1).spec.backends.netns.scale  # type: ignore[union-attr]
    doc = {"costs": costs, "lab_hw": hw.as_dict(), "chunks_hw": chunks, "rows": rows,
           "summary": summ, "scale": scale, "loadavg_start_end": load,
           "summary_previous_model": summ_prev, "summary_uncontended": summ_free,
           "contention_before_after": busy,
           "chunks_hw_previous_model": prev[1] if prev is not None else None}  # fmt: skip
    (a.out / "chunked.json").write_text(json.dumps(doc, indent=1))
    text = (
        f"s26 lab vs sim at netns scale {scale} (N = 1 fitted: {a.fit_runs} runs; N = {a.n} "
        f"checked: {a.check_runs} runs); load average {load[0][0]:.2f} → {load[1][0]:.2f}\n\n"
        f"{table(rows)}\n\nN = {a.n}, each checked run and the median:\n\n"
        f"{summary_text(summ)}\n\n"
        + (
            f"The same lab runs, the previous model (no shared disk, each stage's CPU the "
            f"run's cgroup only):\n\n"
            f"{summary_text(summ_prev)}\n\n"
            if summ_prev
            else ""
        )
        + (
            f"The same lab runs, the host's cores uncontended (each does one core's work when "
            f"both are busy):\n\n{summary_text(summ_free)}\n\n"
            if summ_free
            else ""
        )
        + f"host cores busy together (contention, before → after): "
        f"{busy[0]['busy_cores']} → {busy[1]['busy_cores']} of {busy[0]['cores']} "
        f"(rounds {busy[0]['busy_cores_rounds']} → {busy[1]['busy_cores_rounds']}; CPU per "
        f"byte together/alone {busy[0]['cpu_per_byte_together_vs_alone']} → "
        f"{busy[1]['cpu_per_byte_together_vs_alone']})\n"
        + f"shared disk: {json.dumps(hw.sim().get('shared_disk'))}\n"
        f"hw.chunks: {json.dumps(chunks)}\ninspect step {hw.inspect_s:.4f} s, "
        f"disk write {hw.write_rate / 1e6:.0f} MB/s, dirty {hw.dirty_bytes / 2**20:.0f} MiB\n"
    )
    (a.out / "chunked.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
