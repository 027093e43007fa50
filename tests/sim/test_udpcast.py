"""udpcast's slice protocol (acknowledgement rounds, slowest receiver of N) and the repository
model for unicast (per-stream SMB CPU, the server's cores, disk read and page cache)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ogref.units import parse_size
from ogsim.hdd import hdd_sustained_rates, slowest_of
from ogsim.simulator import simulate
from ogsim.synthetic import synthetic
from ogsim.udpcast import (
    exposed_ack,
    group_keep,
    loss_rounds,
    normalised,
    paced_rate,
    slice_bytes,
    slice_miss,
    slice_stall_share,
    slice_stall_time,
    stall_rate_needed,
)

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


def test_a_slice_takes_as_many_retransmission_rounds_as_its_unluckiest_receiver() -> None:
    assert loss_rounds([]) == 0.0 and loss_rounds([(0.0, 0.0), (0.0, 0.0)]) == 0.0
    # one receiver, one packet: a geometric number of extra rounds, mean p / (1 − p)
    assert loss_rounds([(0.2, 0.2)]) == pytest.approx(0.25)
    # two receivers, one packet: Σ_k 1 − (1 − p^k)^2 = 2·p/(1−p) − p²/(1−p²)
    p = 0.3
    assert loss_rounds([(p, p)] * 2) == pytest.approx(2 * p / (1 - p) - p * p / (1 - p * p))
    # the maximum of N: more than one receiver's, less than their sum, growing with N and loss
    by_n = [loss_rounds([(0.01, 0.01)] * n, 112) for n in (1, 2, 8, 32)]
    assert by_n == sorted(by_n) and by_n[1] > by_n[0]
    assert by_n[-1] < 32 * by_n[0]
    assert loss_rounds([(0.02, 0.02)] * 8, 112) > loss_rounds([(0.01, 0.01)] * 8, 112)
    # only the missing packets are at risk again: 5 % loss on 1024-packet slices at 32
    # receivers costs a handful of rounds, not the hundreds a constant per-round miss would
    assert 3 < loss_rounds([(0.05, 0.05)] * 32, 1024) < 8


def test_a_slice_is_missed_when_any_of_its_packets_is() -> None:
    assert slice_miss(0.0, 112) == 0.0
    assert slice_miss(0.01, 1) == pytest.approx(0.01)
    assert slice_miss(0.001, 112) == pytest.approx(1 - 0.999**112)


def test_the_stall_rate_a_slowdown_needs_reproduces_that_slowdown() -> None:
    q = stall_rate_needed(100.0, 500.0, 32, 10_000, 1.0)
    assert q is not None and 0 < q < 1
    assert (1 - (1 - q) ** 32) * 10_000 * 1.0 == pytest.approx(400.0)
    assert stall_rate_needed(100.0, 90.0, 32, 10_000) == 0.0
    assert stall_rate_needed(100.0, 1e9, 32, 10_000) is None  # more than a stall per slice


def test_loss_rounds_cost_more_acknowledgement_time_with_more_receivers() -> None:
    # 16-block slices, no FEC, 0.5 % loss: the acknowledgement rounds no longer hide behind
    # sending; what they add (slice_rtt_factor 1 against 0) grows with N, because a slice waits
    # for the unluckiest receiver's retransmissions

    def run(n: int, sim: dict[str, Any]) -> float:
        sc = synthetic(n, "MULTICAST-CACHE", data="1GB", stored="1GB", loss="0.5%", sim=sim)
        repo = dataclasses.replace(sc.site.repositories[0], multicast_fec="none")
        sc = dataclasses.replace(sc, site=dataclasses.replace(sc.site, repositories=(repo,)))
        return simulate(sc).metrics.makespan_s

    def ack_cost(n: int) -> float:
        return run(n, {"slice_blocks": 16}) - run(n, {"slice_blocks": 16, "slice_rtt_factor": 0})

    assert ack_cost(16) > 1.2 * ack_cost(2) > 0


def test_page_cache_smoothing_leaves_the_slowest_published_drive_of_32() -> None:
    rates = hdd_sustained_rates()
    assert slowest_of(1) == pytest.approx(1.0)
    assert slowest_of(2, (1.0, 2.0)) == pytest.approx((0.25 * 0.5 + 0.75 * 1.0) / 0.75)
    slow = [slowest_of(n) for n in (2, 8, 32)]
    assert slow == sorted(slow) and slow[-1] < max(rates) / min(rates)
    assert 1.05 < slow[-1] < 1.12


def test_slice_stalls_cost_nothing_without_a_chance_and_a_share_of_every_slice_with_one() -> None:
    assert slice_stall_time(10_000, 0.02, 0.0, 32) == 0.0  # q = 0: off, whatever N
    assert slice_stall_time(10_000, 0.02, 0.05, 0) == 0.0  # nobody to wait for
    assert slice_stall_time(10_000, 0.02, 0.05, 1) == pytest.approx(10_000 * 0.02 * 0.05)
    assert slice_stall_share(0.5, 2) == pytest.approx(0.75)  # 1 − P(both answer)
    assert slice_stall_share(1.0, 3) == 1.0
    # the limit: every slice waits once, S·D, never more
    assert slice_stall_time(10_000, 0.02, 0.01, 10_000) == pytest.approx(200.0, rel=1e-9)


@given(
    q=st.floats(min_value=1e-6, max_value=0.999),
    n=st.integers(min_value=1, max_value=500),
)
def test_slice_stall_time_grows_with_n_ever_more_slowly_towards_s_times_d(q: float, n: int) -> None:
    t = [slice_stall_time(1000.0, 0.5, q, k) for k in (n, n + 1, n + 2)]
    assert t[0] <= t[1] <= t[2] <= 1000.0 * 0.5
    assert t[1] - t[0] >= t[2] - t[1] - 1e-9  # concave: each receiver adds less than the last
    assert t[1] > t[0] or t[0] == pytest.approx(500.0)  # strictly, until it saturates


def test_scenario_slice_stalls_slow_a_session_by_their_expected_cost() -> None:
    # 4 receivers, 112-block slices, 1 GB: the session is one fluid flow whose pace includes,
    # per slice, D·(1 − (1 − q)^N); everything else (join, inspection, the restore from the
    # cache) is the same in both runs, so the difference is S·D·(1 − (1 − q)^N) up to the
    # event clock's float rounding — 0.1 % of it is far above that and far below what a
    # wrong N (3 or 5: ±20 %) or a per-receiver sum (N·q: +15 %) would give
    sim = {"slice_blocks": 112}
    stalls = {**sim, "slice_stall_chance": "5%", "slice_stall": "20ms"}
    plain = _makespan(4, "MULTICAST-CACHE", sim=sim)
    stalled = _makespan(4, "MULTICAST-CACHE", sim=stalls)
    slices = parse_size("1GB") / slice_bytes(112)
    expected = slice_stall_time(slices, 0.020, 0.05, 4)
    assert stalled - plain == pytest.approx(expected, rel=1e-3)
    # default: off, the results are the same as with q = 0 written out
    assert _makespan(4, "MULTICAST-CACHE", sim={**sim, "slice_stall_chance": 0}) == plain
