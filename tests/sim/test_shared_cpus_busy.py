"""A one-host lab's cores that slow each other when all are busy (``backends.sim.
shared_cpus_busy``, measured by ``ogsim.lab.netns.contention``): concurrent CPU work gets the
busy cores' worth shared among it; one computer alone, within its own cores, is unaffected."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from ogref.errors import ConfigError
from ogref.site import read_yaml
from ogsim.results import Results
from ogsim.scenario import build_scenario
from ogsim.simulator import simulate

S26 = Path(__file__).resolve().parents[2] / "scenarios" / "s26-chunked-differential-deploy.yaml"
GIB = 1 << 30
RATE = 800e6  # the chunked restore's processing, bytes/s at one core


def _raw(n: int, **sim: Any) -> dict[str, Any]:
    raw = copy.deepcopy(read_yaml(S26))
    room = raw["classrooms"][0]
    room["computers"]["count"] = n
    hw = room["defaults"]["hw"]
    hw["disk"]["dirty"] = 0
    hw["decompress"] = f"{RATE / 1e6:g}MB/s"  # the host's core, in the CPU link's units
    hw["chunks"] = {"restore": f"{RATE / 1e6:g}MB/s", "restore_cpu": 1.0}
    raw["backends"]["sim"] = sim
    raw["expect"] = []
    return raw


def _restore(n: int, **sim: Any) -> list[float]:
    r: Results = simulate(build_scenario(_raw(n, **sim), source="busy cores"))
    return [
        next(p.end - p.start for p in c.phases if p.name == "restore")
        for c in r.operations[0].computers
    ]


def test_two_restores_on_two_contended_cores_each_get_half_the_busy_cores() -> None:
    free = _restore(2, shared_cpus=2)
    busy = _restore(2, shared_cpus=2, shared_cpus_busy=1.5)
    processing = free[0]  # each its own core: as alone
    assert free[0] == pytest.approx(_restore(1, shared_cpus=2)[0], rel=1e-9)
    for t in busy:  # 1.5 cores' work shared by two: 0.75 core each
        assert t == pytest.approx(processing / 0.75, rel=1e-6)


def test_one_restore_within_its_core_is_not_slowed_by_the_contention() -> None:
    assert _restore(1, shared_cpus=2, shared_cpus_busy=1.2) == pytest.approx(
        _restore(1, shared_cpus=2), rel=1e-9
    )


@pytest.mark.parametrize(
    ("sim", "says"),
    [
        ({"shared_cpus_busy": 1.5}, "needs shared_cpus"),
        ({"shared_cpus": 2, "shared_cpus_busy": 2.5}, "more than shared_cpus"),
    ],
)
def test_busy_cores_need_the_cores_and_cannot_exceed_them(sim: dict, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        build_scenario(_raw(2, **sim), source="busy cores")
