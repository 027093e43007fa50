"""udpcast's slice protocol (acknowledgement rounds, slowest receiver of N) and the repository
model for unicast (per-stream SMB CPU, the server's cores, disk read and page cache)."""

from __future__ import annotations

from typing import Any

import pytest

from ogsim.simulator import simulate
from ogsim.synthetic import synthetic
from ogsim.udpcast import exposed_ack, group_keep, normalised, paced_rate, slice_bytes

SPREAD = normalised([100.0, 200.0, 300.0, 400.0])


def _makespan(n: int, method: str, **kw: Any) -> float:
    sc = synthetic(n, method, data="1GB", stored="1GB", **kw)
    return simulate(sc).metrics.makespan_s


def test_one_receiver_keeps_its_sustained_rate_and_more_receivers_wait_for_the_slowest() -> None:
    assert group_keep(((SPREAD, 1.0, 1),), 2) == pytest.approx(1.0)
    assert group_keep((((1.0,), 1.0, 50),), 2) == pytest.approx(1.0)  # constant disks: flat
    keeps = [group_keep(((SPREAD, 1.0, n),), 2) for n in (1, 2, 8, 32)]
    assert keeps == sorted(keeps, reverse=True) and keeps[-1] < 0.7
    # a wider window (more slices in flight) averages the spread out
    assert group_keep(((SPREAD, 1.0, 8),), 4) > group_keep(((SPREAD, 1.0, 8),), 1)
    # a slower kind of disk among the receivers paces the group below the fast ones
    assert group_keep((((1.0,), 2.0, 4), ((1.0,), 1.0, 1)), 2) == pytest.approx(0.5)


def test_acknowledgement_rounds_cost_what_the_next_slice_cannot_hide() -> None:
    assert exposed_ack(0.010, 1.0, 0.012) == 0.0
    assert exposed_ack(0.050, 1.0, 0.012) == pytest.approx(0.038)
    assert paced_rate(100.0, 100.0, 1.0) == pytest.approx(50.0)
    assert slice_bytes(16) == 16 * 1456


def test_slice_rtt_factor_slows_a_session_of_small_slices() -> None:
    small = {"slice_blocks": 16}
    t0 = _makespan(4, "MULTICAST-CACHE", sim={**small, "slice_rtt_factor": 0})
    t1 = _makespan(4, "MULTICAST-CACHE", sim=small)
    t3 = _makespan(4, "MULTICAST-CACHE", sim={**small, "slice_rtt_factor": 3})
    assert t0 < t1 < t3


def test_multicast_grows_with_n_only_when_the_disks_vary_per_slice() -> None:
    flat = [_makespan(n, "MULTICAST-CACHE") for n in (1, 8)]
    spread = [_makespan(n, "MULTICAST-CACHE", slice_rates=[100, 200, 300, 400]) for n in (1, 8)]
    assert flat[1] == pytest.approx(flat[0], rel=1e-3)
    assert spread[0] == pytest.approx(flat[0], rel=0.02)  # N = 1: the sustained rate
    assert spread[1] > 1.1 * spread[0]


def test_repository_limits_one_smb_stream_and_all_of_them_on_its_cores() -> None:
    # 1 GbE everywhere; one stream carries at most 200 Mbit/s on the server's CPU
    one = {"smb_stream": "200Mbit", "smb_cpus": 8}
    assert _makespan(1, "UNICAST-CACHE", repo_hw=one) > 2.5 * _makespan(1, "UNICAST-CACHE")
    # two cores: four streams share 400 Mbit/s, not 800
    t2 = _makespan(4, "UNICAST-CACHE", repo_hw={"smb_stream": "200Mbit", "smb_cpus": 2})
    t8 = _makespan(4, "UNICAST-CACHE", repo_hw=one)
    assert t2 > 1.6 * t8


def test_repository_disk_is_read_unless_the_image_fits_its_page_cache() -> None:
    slow_disk = {"read": "400Mbit"}
    cold = _makespan(4, "UNICAST-CACHE", repo_hw=slow_disk)
    warm = _makespan(4, "UNICAST-CACHE", repo_hw={**slow_disk, "page_cache": "2GB"})
    assert cold > 2 * warm
