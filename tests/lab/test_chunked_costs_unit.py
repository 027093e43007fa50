"""The chunked deploy's cost measurement and its lab-vs-sim bench, without a lab: the per-chunk
costs from fetch lines, syncfs and restore rows; the stages of a run; a fit on an N = 1 run
that makes the simulator reproduce that run's stages (no root)."""

from __future__ import annotations

from ogsim.lab.netns.calibration import LabHw
from ogsim.lab.netns.chunk_costs import summarise
from ogsim.lab.netns.chunked_bench import (
    fit,
    sim_of,
    stage_cpu,
    stages,
    summary,
    summary_text,
    table,
)
from ogsim.lab.netns.cpu import cpu_between
from ogsim.results import ComputerResult, OperationResult, Phase, Results

MB = 1e6


def test_costs_from_lines() -> None:
    # 4 ms of request latency and 1 ms of CPU per chunk on top of 80 kB of wire each
    wire = 80_000 * 1.05 * 8 / 100e6
    fetch = [
        {
            "chunks": k,
            "bytes": 80_000 * k,
            "seconds": 0.1 + k * (wire + 0.004),
            "client_cpu": 0.02 + k * 0.0007,
            "server_cpu": k * 0.0003,
        }
        for k in (8, 32, 96)
    ]
    raw = {
        "fetch": fetch,
        "listing": [{"dirs": 80, "seconds": 0.08}],
        "syncfs": [{"bytes": b, "seconds": 0.01 + b / 400e6} for b in (1e6, 4e6, 16e6)],
        "restore": [{"used": 100 * MB, "seconds": 0.5, "cpu": 0.2}],
    }
    got = summarise(raw, 0.05)
    assert abs(got["chunk_request_s"] - 0.004) < 1e-5
    assert abs(got["fetch_fixed_s"] - 0.1) < 1e-3
    assert abs(got["chunk_cpu_s"] - 0.001) < 1e-5
    assert abs(got["list_s"] - 0.001) < 1e-6
    assert abs(got["syncfs_s"] - 0.01) < 1e-4 and abs(got["syncfs_rate"] - 400e6) < 1e6
    assert got["restore_rate"] == 200 * MB and got["restore_cpu"] == 0.4


def _lab(inspect: float, fetch: float, restore: float, made: dict) -> Results:
    t1 = 0.05 + inspect
    t2 = t1 + fetch
    t3 = t2 + restore
    pc = ComputerResult(
        name="pc11",
        phases=[
            Phase(name="inspect", start=0.05, end=t1),
            Phase(name="fetch", start=t1, end=t2),
            Phase(name="restore", start=t2, end=t3, detail="CACHE UNICAST"),
        ],
        status="ok",
        started=0.02,
        finished=t3 + 0.03,
        bytes_moved=made["added"],
    )
    op = OperationResult(index=0, kind="restore", at=0.0, computers=[pc], makespan=t3 + 0.03)
    r = Results(scenario="s26", backend="netns", seed=7, operations=[op])
    r.metrics.extra["images"] = {"ubuntu-v2": made}
    return r


def test_a_fit_on_n1_reproduces_its_stages() -> None:
    made = {"stored": 44_000_000, "data": 137_000_000, "used": 99_000_000,
            "added": 2_800_000, "format": "chunked", "base": "ubuntu"}  # fmt: skip
    lab = _lab(0.5, 0.4, 1.0, made)
    st = stages(lab)
    assert st["start+inspect"] == [0.55] and st["fetch"] == [0.4] and st["restore"] == [1.0]
    costs = {"chunk_request_s": 0.0003, "chunk_cpu_s": 0.0015, "list_s": 0.001,
             "syncfs_s": 0.01, "restore_cpu": 0.4}  # fmt: skip
    hw, chunks = fit(costs, [lab], LabHw(write_rate=500e6, dirty_bytes=2e9, smb_overhead=0.06))
    sim = stages(sim_of(lab, 1, hw, chunks))
    for s in ("start+inspect", "fetch", "restore", "report"):
        assert abs(sim[s][0] - st[s][0]) < 0.01 * st[s][0], (s, sim[s], st[s])


def _traced(lab: Results, cores: dict[str, float]) -> Results:
    """``lab`` with a cgroup CPU trace: each stage burns ``cores`` cores, nothing between."""
    pc = lab.operations[0].computers[0]
    fetch, restore = pc.phases[1], pc.phases[2]
    spans = [(0.0, fetch.start, cores["start+inspect"]), (fetch.start, fetch.end, cores["fetch"]),
             (restore.start, restore.end, cores["restore"])]  # fmt: skip
    trace, used, t = [[0.0, 0.0]], 0.0, 0.0
    for a, b, c in spans:
        while t < b - 1e-9:
            step = min(0.01, b - t)
            used += step * c if t >= a - 1e-9 else 0.0
            t += step
            trace.append([round(t, 6), round(used, 6)])
    assert pc.finished is not None
    trace.append([pc.finished, used])
    lab.metrics.extra["cpu_trace"] = trace
    return lab


def test_cpu_between_interpolates_a_cumulative_trace() -> None:
    trace = [(0.0, 0.0), (1.0, 0.5), (2.0, 2.5)]
    assert cpu_between(trace, 0.5, 1.5) == 0.25 + 1.0
    assert cpu_between(trace, -1.0, 0.0) == 0.0 and cpu_between(trace, 2.0, 9.0) == 0.0
    assert cpu_between([], 0.0, 1.0) == 0.0


def test_a_traced_fit_shares_the_hosts_cores_among_computers() -> None:
    """With the host's whole CPU per stage measured at N = 1, the fitted simulator reproduces
    N = 1 and, with four computers on two cores, stretches each CPU-heavy stage by the cores
    the four ask for over the two there are — not fitted on any N = 4 run."""
    made = {"stored": 44_000_000, "data": 137_000_000, "used": 99_000_000,
            "added": 2_800_000, "format": "chunked", "base": "ubuntu"}  # fmt: skip
    cores = {"start+inspect": 1.0, "fetch": 0.8, "restore": 1.2}
    lab = _traced(_lab(0.5, 0.4, 1.0, made), cores)
    got = stage_cpu(lab)
    for s, c in cores.items():
        assert abs(got[s][0] - c * stages(lab)[s][0]) < 0.02, (s, got[s])
    costs = {"chunk_request_s": 0.0003, "chunk_cpu_s": 0.0015, "list_s": 0.001,
             "syncfs_s": 0.01, "restore_cpu": 0.4}  # fmt: skip
    # no dirty bytes: no final fsync, which the simulator runs through the host's shared unit
    hw, chunks = fit(costs, [lab], LabHw(write_rate=500e6, dirty_bytes=0, smb_overhead=0.06))
    assert chunks["restore_cpu"] > 1.0 and chunks["fetch_cpu"] > 0.8 and chunks["inspect_cpu"] > 1
    one = stages(sim_of(lab, 1, hw, chunks))
    st = stages(lab)
    for s in ("start+inspect", "fetch", "restore", "report"):
        assert abs(one[s][0] - st[s][0]) < 0.01 * st[s][0], (s, one[s], st[s])
    four = stages(sim_of(lab, 4, hw, chunks))
    # four inspections of ≈ 1 core on 2 cores: about twice as long; the restore 1.2 → 2.4
    assert 1.8 < _ratio(four, one, "start+inspect") < 2.1
    assert 2.2 < _ratio(four, one, "restore") < 2.6
    assert 1.3 < _ratio(four, one, "fetch") < 1.7  # 0.8 of its 0.4 s is CPU: shared 4 on 2


def _ratio(a: dict, b: dict, s: str) -> float:
    return float(a[s][0] / b[s][0])


def test_the_checked_runs_each_ratio_and_the_median() -> None:
    made = {"stored": 44_000_000, "data": 137_000_000, "used": 99_000_000,
            "added": 2_800_000, "format": "chunked", "base": "ubuntu"}  # fmt: skip
    rows = []
    for i, (lab_s, sim_s) in enumerate([(2.0, 2.2), (3.0, 2.2), (2.5, 2.2)]):
        st = stages(_lab(0.5, 0.4, lab_s, made))
        sim = stages(_lab(0.5, 0.4, sim_s, made))
        rows.append({"n": 4, "run": i + 1, "lab": st, "sim": sim, "fitted": False,
                     "cpu_idle_mean": 0.05, "cpu_cores_used": 1.5, "cpu_wait_share": 0.6,
                     "host_other_cores": 0.4})  # fmt: skip
    summ = summary(rows)
    assert summ["restore"]["ratios"] == [1.1, 0.733, 0.88]
    assert summ["restore"]["lab_median"] == 2.5 and summ["restore"]["lab_spread"] == [2.0, 3.0]
    assert summ["restore"]["median_ratio"] == 0.88
    text = table(rows) + summary_text(summ)
    assert "| 4 | check 2, idle 0.05, run 1.50 cores, waited 0.60, else 0.40 cores" in text
    assert (
        "| restore | 2.000, 3.000, 2.500 | 2.500 (2.000–3.000) | 2.200 | 1.10, 0.73, 0.88 |" in text
    )


def test_writeback_costs_from_lines() -> None:
    from ogsim.lab.netns.chunk_costs import summarise_writeback

    # the kernel's copy, 2 ns of CPU per byte (500 MB per core-second), then 20 ms and 1 GB/s
    # of the disk; one slow round per size (the median ignores it)
    rows = [{"bytes": b, "seconds": 0.02 + b * 2e-9 + b / 1e9 + slow, "other_cpu": b * 2e-9,
             "background_cores": 0.0, "io_stall": b / 1e9}
            for b in (16e6, 48e6, 96e6) for slow in (0.0, 0.0, 0.5)]  # fmt: skip
    got = summarise_writeback(rows)
    assert got["writeback_rate"] == 1e9 and got["writeback_cpu_rate"] == 500e6
    assert got["writeback_fixed_s"] == 0.02 and got["writeback_io_stall_s_per_mb"] == 0.001
    assert summarise_writeback([]) == {}


def test_the_labs_shared_disk_reaches_the_simulator_only_when_measured() -> None:
    assert "shared_disk" not in LabHw(cpus=2).sim()
    hw = LabHw(cpus=2, disk_rate=600e6, writeback_cpu_rate=1.5e9, writeback_fixed_s=0.03)
    assert hw.sim()["shared_disk"] == {"rate": "600.000MB/s", "cpu": "1500.000MB/s",
                                       "fixed": "0.0300s"}  # fmt: skip
    # alone: the kernel's copy (0.04 s), the disk (0.1 s), the fixed part
    assert abs(hw.writeback_s(60e6) - 0.17) < 1e-12 and LabHw().writeback_s(60e6) == 0.0


def _hosted(lab: Results, kernel: dict[str, float], background: float) -> Results:
    """``lab``'s cgroup trace with the host's beside it: ``kernel`` cores of kernel work
    outside the cgroup per stage, ``background`` cores of it all along, and half a core of
    other programs' user time (not the kernel's: not counted)."""
    pc = lab.operations[0].computers[0]
    bounds = [(0.0, pc.phases[1].start, kernel["start+inspect"]),
              (pc.phases[1].start, pc.phases[1].end, kernel["fetch"]),
              (pc.phases[2].start, pc.phases[2].end, kernel["restore"])]  # fmt: skip

    def outside(t: float) -> float:
        return sum(max(0.0, min(t, b) - a) * k for a, b, k in bounds) + background * t

    # columns: time, the cgroup's CPU, the host's busy CPU, the host's kernel CPU, the cgroup's
    # kernel CPU (a third of its own)
    trace = lab.metrics.extra["cpu_trace"]
    # (and the tracer's own tenth of a core, kernel time outside the cgroup, taken off)
    lab.metrics.extra["cpu_trace"] = [
        [t, c, round(c + outside(t) + 0.6 * t, 6), round(c / 3 + outside(t) + 0.1 * t, 6),
         round(c / 3, 6), round(0.1 * t, 6)]
        for t, c in trace
    ]  # fmt: skip
    lab.metrics.extra["background_cores"] = background
    return lab


def test_the_kernels_cpu_outside_the_cgroup_counts_as_the_stages() -> None:
    """The host's kernel CPU less the cgroup's and the background is the kernel's work for the
    run (loop devices, softirqs): it adds to each stage's cores, less the writeback the shared
    disk counts itself; the fitted simulator still reproduces N = 1, and four computers on two
    cores then stretch each stage by what they all ask for."""
    from ogsim.lab.netns.chunked_bench import host_split, run_work, stage_kernel

    made = {"stored": 44_000_000, "data": 137_000_000, "used": 99_000_000,
            "added": 2_800_000, "format": "chunked", "base": "ubuntu"}  # fmt: skip
    cores = {"start+inspect": 0.6, "fetch": 0.5, "restore": 0.7}
    kernel = {"start+inspect": 0.1, "fetch": 0.2, "restore": 0.3}
    lab = _hosted(_traced(_lab(0.5, 0.4, 1.0, made), cores), kernel, 0.25)
    split = host_split(lab)
    assert abs(split["others_user"] - 0.5) < 0.01  # the other programs' half core
    # the run's work: the cgroup's and the kernel's outside it, over the operation
    want = sum(cores[s] * stages(lab)[s][0] + kernel[s] * stages(lab)[s][0] for s in cores)
    assert abs((run_work(lab) or 0.0) - want) < 0.03, (run_work(lab), want)
    got = stage_kernel(lab)
    for s, k in kernel.items():
        assert abs(got[s][0] - k * stages(lab)[s][0]) < 0.02, (s, got[s])
    costs = {"chunk_request_s": 0.0003, "chunk_cpu_s": 0.0015, "list_s": 0.001,
             "syncfs_s": 0.01, "restore_cpu": 0.4}  # fmt: skip
    base = LabHw(write_rate=500e6, dirty_bytes=2e9, smb_overhead=0.06, cpus=2,
                 disk_rate=600e6, writeback_cpu_rate=1e9)  # fmt: skip
    hw, with_kernel = fit(costs, [lab], base)
    _, cgroup_only = fit(costs, [lab], base, kernel=False)
    # the restore's kernel CPU (0.3 s) less its writeback's (99 MB at 1 GB/s per core)
    processing = 1.0 - 99e6 / 600e6 - 99e6 / 1e9
    want = (0.7 + 0.3 - 0.099) / processing
    assert abs(with_kernel["restore_cpu"] - want) < 0.02, with_kernel
    assert with_kernel["restore_cpu"] > cgroup_only["restore_cpu"]
    assert with_kernel["inspect_cpu"] > cgroup_only["inspect_cpu"]
    one = stages(sim_of(lab, 1, hw, with_kernel))
    st = stages(lab)
    for s in ("start+inspect", "fetch", "restore", "report"):
        assert abs(one[s][0] - st[s][0]) < 0.01 * st[s][0], (s, one[s], st[s])
    four = stages(sim_of(lab, 4, hw, with_kernel))
    less = stages(sim_of(lab, 4, *fit(costs, [lab], base, kernel=False)))
    assert four["restore"][0] > less["restore"][0] and four["total"] > less["total"]


def test_the_timeline_says_whether_a_writeback_can_meet_a_fetch() -> None:
    from ogsim.lab.netns.chunked_bench import overlap

    made = {"stored": 44_000_000, "data": 137_000_000, "used": 99_000_000,
            "added": 2_800_000, "format": "chunked", "base": "ubuntu"}  # fmt: skip
    # start+inspect 0.55, fetch 0.4, restore 1.0 (from _lab's 0.05 start)
    assert overlap(_lab(0.5, 0.4, 1.0, made)) == [0.95, 1.95]
