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
