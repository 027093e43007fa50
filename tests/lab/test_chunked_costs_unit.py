"""The chunked deploy's cost measurement and its lab-vs-sim bench, without a lab: the per-chunk
costs from fetch lines, syncfs and restore rows; the stages of a run; a fit on an N = 1 run
that makes the simulator reproduce that run's stages (no root)."""

from __future__ import annotations

from ogsim.lab.netns.calibration import LabHw
from ogsim.lab.netns.chunk_costs import summarise
from ogsim.lab.netns.chunked_bench import fit, sim_of, stages
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
    for s in ("start+inspect", "fetch", "restore"):
        assert abs(sim[s][0] - st[s][0]) < 0.01 * st[s][0], (s, sim[s], st[s])
