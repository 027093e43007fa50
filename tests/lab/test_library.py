"""The whole scenario library on the namespace lab: every scenario runs with all its
expectations holding, or is refused up front with the reason listed here.

The simulator runs the same files in ``tests/sim/test_scenarios.py``.  A scenario-time bound
(``makespan_below: 40min``) is the one expectation a scaled-down lab reports not applicable;
everything else — statuses, codes, methods, fallbacks, counts, order and concurrency of
commands, boots — must hold on both backends.  Bounded by the scenarios' own lab scale
(images of a few MiB).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from ogsim.expect import evaluate
from ogsim.lab.capabilities import check, probe
from ogsim.lab.netns import run
from ogsim.lab.netns.backend import LATE
from ogsim.results import Results
from ogsim.scenario import load_scenario
from ogsim.simulator import simulate

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.slow, pytest.mark.timeout(900)]

SCENARIOS = sorted((Path(__file__).resolve().parents[2] / "scenarios").glob("*.yaml"))

REFUSED = {
    "s15-campus-1000": "runs at most 120",
    "s19-repository-restart-slow-disk": "not emulated",
    "s22-create-image": "meant for sim",
    "s24-stock-1.1.1d-strict": "meant for sim",
    "vm-4pc-restore-and-boot": "meant for sim, libvirt",
    "vm-uefi-mixed": "meant for sim, libvirt",
}
"""Scenarios the netns lab refuses whatever the host, and why."""

ELSEWHERE = {
    "s26-chunked-differential-deploy": "tests/lab/test_netns_chunked.py (with its byte counts)",
    "s27-chunkcast-clone-and-cache": "tests/lab/test_netns_chunkcast.py (with its chunkcast checks)",
}
"""Scenarios run on the netns lab by their own test (one lab run each in the CI budget)."""

COVERED = {
    "s05-torrent-cache-35": "seed-35pc-torrent-cache: the same 35-PC classroom restored by "
    "TORRENT-CACHE (a 33-peer swarm; the other two fall back), ~160 s of CI's lab time saved",
}
"""Scenarios whose lab run another library scenario's already is (statuses, methods, swarm or
session size); the simulator still runs them (``tests/sim/test_scenarios.py``)."""


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_the_library_on_netns(path: Path, tmp_path: Path) -> None:
    sc = load_scenario(path)
    if sc.name in ELSEWHERE:
        pytest.skip(f"run by {ELSEWHERE[sc.name]}")
    if sc.name in COVERED:
        pytest.skip(f"its lab run is {COVERED[sc.name]}")
    verdict = check(sc, "netns", probe())
    if sc.name in REFUSED:
        assert any(REFUSED[sc.name] in r for r in verdict.refusals), verdict.refusals
        return
    if not verdict.ok:  # this host lacks a kernel feature: say which
        pytest.skip("; ".join(verdict.refusals))
    results = run(sc, None, tmp_path)
    # a fault the scenario puts mid-transfer that came after it did not test what the file says
    late = [e.text for e in results.events if LATE in e.text]
    assert not late, "\n".join(late)
    checks = evaluate(results, sc.spec.expect)
    failed = [c.diff() for c in checks if c.applicable and not c.ok]
    assert not failed, "\n".join(failed)
    for c in checks:
        if not c.applicable:
            assert c.name.startswith("makespan") and "(wall)" not in c.name, c.name
    assert results.host is not None and results.metrics.extra["time"]["wall_s"] > 0
    # the command queue's order on each computer is the simulator's, and a computer never ran
    # two commands at once
    assert _sequences(results) == _sequences(simulate(sc))
    for name, jobs in _jobs(results).items():
        for (_, end), (start, _) in itertools.pairwise(jobs):
            assert start >= end - 0.01, f"{name} ran two commands at once: {jobs}"


def _jobs(r: Results) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {}
    for op in r.operations:
        for c in op.computers:
            if c.status not in ("refused", "not_started") and c.finished is not None:
                out.setdefault(c.name, []).append((c.started, c.finished))
    return {n: sorted(v) for n, v in out.items()}


def _sequences(r: Results) -> dict[str, list[int]]:
    """Each computer's operations in the order they started on it."""
    out: dict[str, list[tuple[float, int]]] = {}
    for op in r.operations:
        for c in op.computers:
            if c.status not in ("refused", "not_started"):
                out.setdefault(c.name, []).append((c.started, op.index))
    return {n: [i for _, i in sorted(v)] for n, v in out.items()}
