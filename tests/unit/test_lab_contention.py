"""What the host's cores do together against one alone (``ogsim.lab.netns.contention``): the
summary of its rounds, a short real measurement, and how the lab hands it to the simulator."""

from __future__ import annotations

import pytest

from ogsim.lab.netns import contention
from ogsim.lab.netns.calibration import LabHw


def _round(alone: float, together: float, cpu_together: float = 2.0) -> dict:
    return {
        "alone": {"workers": 1, "bytes": alone, "wall_s": 1.0, "cpu_s": 1.0, "steal_share": 0.0},
        "together": {
            "workers": 2,
            "bytes": together,
            "wall_s": 1.0,
            "cpu_s": cpu_together,
            "steal_share": 0.01,
        },
    }


def test_the_busy_cores_are_the_median_round_of_together_against_alone() -> None:
    got = contention.summarise([_round(100, 160), _round(100, 200), _round(100, 150)])
    assert got["busy_cores"] == pytest.approx(1.6)
    assert got["busy_cores_rounds"] == [1.6, 2.0, 1.5]
    # 2 CPU seconds for 160 bytes against 1 for 100: 1.25× the CPU per byte
    assert got["cpu_per_byte_together_vs_alone"] == pytest.approx(1.25)
    assert got["cores"] == 2


def test_the_busy_cores_never_exceed_the_workers() -> None:
    assert contention.summarise([_round(100, 230)])["busy_cores"] == 2.0


def test_a_short_measurement_on_this_host_gives_a_round_per_pair() -> None:
    rounds = contention.measure(seconds=0.05, rounds=2, cores=2)
    assert [r["together"]["workers"] for r in rounds] == [2, 2]
    got = contention.summarise(rounds)
    assert 0 < got["busy_cores"] <= 2
    assert all(r["alone"]["bytes"] > 0 and r["together"]["bytes"] > 0 for r in rounds)


def test_the_lab_hands_the_busy_cores_to_the_simulator_only_when_measured() -> None:
    assert "shared_cpus_busy" not in LabHw(cpus=2).sim()
    assert LabHw(cpus=2, busy_cores=1.37).sim()["shared_cpus_busy"] == 1.37
    assert LabHw(cpus=2, busy_cores=2.4).sim()["shared_cpus_busy"] == 2.0
