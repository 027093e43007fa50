"""A one-host lab's shared disk (``backends.sim.shared_disk``): the computers' writeback — a
restore's final fsync, a chunked update's syncfs — crosses the host's one disk, max-min fair,
and the kernel's CPU for it shares the host's cores with the computers' CPU work; unset,
nothing changes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ogref.site import read_yaml
from ogsim.results import Results
from ogsim.scenario import build_scenario
from ogsim.simulator import simulate

S26 = Path(__file__).resolve().parents[2] / "scenarios" / "s26-chunked-differential-deploy.yaml"
GIB = 1 << 30
RATE = 400e6  # the shared disk, bytes/s
DIRTY = 4 * GIB


def _raw(n: int, disk: dict[str, Any] | None, **sim: Any) -> dict[str, Any]:
    raw = copy.deepcopy(read_yaml(S26))
    room = raw["classrooms"][0]
    room["computers"]["count"] = n
    hw = room["defaults"]["hw"]
    hw["disk"]["dirty"] = DIRTY
    hw["chunks"] = {"restore": "800MB/s"}
    raw["backends"]["sim"] = {**sim, **({"shared_disk": disk} if disk is not None else {})}
    return raw


def _run(raw: dict[str, Any]) -> Results:
    return simulate(build_scenario(raw, source="shared disk"))


def _span(r: Results, pc: int, name: str, nth: int = 0) -> float:
    p = [p for p in r.operations[0].computers[pc].phases if p.name == name][nth]
    return p.end - p.start


def test_two_restores_writing_back_through_the_shared_disk_each_get_half() -> None:
    disk = {"rate": f"{RATE / 1e6:g}MB/s"}
    one = _span(_run(_raw(1, disk)), 0, "restore")
    two = _run(_raw(2, disk))
    alone = DIRTY / RATE  # the restore's final fsync alone: its dirty bytes at the disk's rate
    for pc in (0, 1):
        # processing (each its own) + both fsyncs at half the disk each
        assert abs(_span(two, pc, "restore") - one - alone) < 1e-6
    # each its own disk (the default): the second computer costs the first nothing
    own = [_span(_run(_raw(n, None)), 0, "restore") for n in (1, 2)]
    assert own[0] == own[1]
    processing = 40 * GIB / 800e6
    assert abs(one - (processing + alone)) < 1e-6 * one
    assert abs(own[0] - (processing + DIRTY / 110e6)) < 1e-6 * own[0]  # its disk: 110 MB/s


def _staggered(disk: dict[str, Any] | None, at: float, **sim: Any) -> Results:
    """pc01 restored at 0, pc02 at ``at``: pc02's update writes back beside pc01's restore."""
    raw = _raw(2, disk, **sim)
    op = raw["operations"][0]
    first = copy.deepcopy(op)
    first["restore"]["to"] = {"computers": ["pc01"]}
    second = copy.deepcopy(op)
    second["at"] = f"{at}s"
    second["restore"]["to"] = {"computers": ["pc02"]}
    raw["operations"] = [first, second]
    raw["expect"] = []
    return _run(raw)


def _end(r: Results, op: int, name: str) -> float:
    return next(p.end for p in r.operations[op].computers[0].phases if p.name == name)


def test_a_fetch_beside_a_writeback_is_slower_by_the_computed_amount() -> None:
    disk = {"rate": f"{RATE / 1e6:g}MB/s"}
    alone = _staggered(disk, 1000.0)  # far apart: nothing shared
    fetch_alone = _phase(alone, 1, "fetch")
    restore_end = _end(alone, 0, "restore")
    fsync_start = restore_end - DIRTY / RATE  # pc01's writeback: 10.7 s of the disk alone
    # pc02 starts so that its update's syncfs (1 GiB of chunks) begins 2 s into pc01's fsync
    flush_alone = GIB / RATE
    syncfs_offset = _end(alone, 1, "fetch") - flush_alone - alone.operations[1].at
    at = fsync_start + 2.0 - syncfs_offset
    both = _staggered(disk, at)
    # both write back at half the disk: pc02's 1 GiB takes twice as long, pc01's fsync as long
    # as its bytes plus pc02's
    assert abs(_phase(both, 1, "fetch") - fetch_alone - flush_alone) < 1e-6
    assert abs(_end(both, 0, "restore") - restore_end - flush_alone) < 1e-6
    # without the shared disk each writes back on its own disk at its own rate
    own = _staggered(None, at)
    assert abs(_end(own, 0, "restore") - _end(_staggered(None, 1000.0), 0, "restore")) < 1e-6


def _phase(r: Results, op: int, name: str, nth: int = 0) -> float:
    p = [p for p in r.operations[op].computers[0].phases if p.name == name][nth]
    return p.end - p.start


def test_the_writebacks_kernel_cpu_slows_another_computers_inspection() -> None:
    """With ``shared_disk.cpu`` the writeback's kernel CPU (bytes ÷ cpu seconds of one core)
    shares the host's ``shared_cpus`` cores with the other computers' CPU work: an inspection
    step (one core's work) beside it, on one core, gets half."""
    disk = {"rate": "100GB/s", "cpu": f"{RATE / 1e6:g}MB/s"}  # the disk is no limit: the CPU is
    alone = _staggered(disk, 1000.0, shared_cpus=1)
    cpu_s = DIRTY / RATE
    fsync_start = _end(alone, 0, "restore") - cpu_s
    inspect = _phase(alone, 1, "inspect")
    assert abs(inspect - 1.0) < 1e-9  # s26's classroom: 1 s per inspection step
    both = _staggered(disk, fsync_start + 1.0, shared_cpus=1)
    # its three inspection steps (6 s) all fall in the writeback's 10.7 s: half the core each
    for nth in range(3):
        assert abs(_phase(both, 1, "inspect", nth) - 2 * inspect) < 1e-6
    # and the writeback lost the half core for them: 3 core-seconds later
    assert abs(_end(both, 0, "restore") - _end(alone, 0, "restore") - 3 * inspect) < 1e-6
    # the same without the writeback's CPU: the disk alone, nothing on the core
    quiet = _staggered({"rate": "100GB/s"}, fsync_start + 1.0, shared_cpus=1)
    assert abs(_phase(quiet, 1, "inspect") - inspect) < 1e-9


def test_unset_the_results_are_those_of_before() -> None:
    """``shared_disk: null`` is the default: a one-host lab's s26 as the published check ran it
    (hardware and costs of run C, 2026-12-04) gives the simulator's numbers of then."""
    from ogsim.lab.netns.bench import lab_sized
    from ogsim.lab.netns.calibration import LabHw
    from ogsim.lab.netns.chunked_bench import scenario, stages

    made = {"stored": 43477662, "data": 137363456, "used": 99368960, "added": 2759062,
            "format": "chunked", "base": "ubuntu", "files": 42}  # fmt: skip
    hw = LabHw(inspect_s=0.0913384122003462, postconf_s=0.0, decompress_rate=178.5e6,
               write_rate=853464071.675873, dirty_bytes=2392955699.2000003, smb_overhead=0.059,
               cpus=2)  # fmt: skip
    chunks = {"setup": "0.0578s", "request": "0.00016s", "cpu": "0.00382s", "list": "0.00049s",
              "syncfs": "0.0000s", "restore": "211.129MB/s", "restore_cpu": 0.915,
              "report": "0.0285s", "inspect_cpu": 0.988, "fetch_cpu": 0.629,
              "report_cpu": 0.926}  # fmt: skip
    want = {1: 1.3754, 4: 2.9679}  # reports/published/lab-bench/chunked-s26-traced-c.json
    for n, total in want.items():
        lab = Results(scenario="s26", backend="netns", seed=7)
        lab.metrics.extra["images"] = {"ubuntu-v2": made}
        sized = lab_sized(scenario(n), lab)
        raw = sized.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
        room = raw["classrooms"][0]["defaults"]
        room["hw"] = {"link": room["hw"]["link"], **hw.hw(), "chunks": chunks}
        raw["repositories"][0]["hw"] = {**raw["repositories"][0]["hw"], **hw.repo_hw()}
        raw["backends"]["sim"] = {**hw.sim(), "shared_disk": None}
        got = stages(simulate(build_scenario(raw, source="before")))
        assert got["total"] == total, (n, got)
