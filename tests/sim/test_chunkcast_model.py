"""The simulator's chunkcast model: receivers joining late, a slow disk and loss behave as the
protocol does (tests/unit/test_chunkcast_protocol.py shows the protocol itself), and 1,000
receivers with skewed starts all complete."""

from __future__ import annotations

import math

import pytest

from ogsim.chunkcast import (
    FLIGHT_S,
    REQUEST_S,
    CastImage,
    CastParams,
    CastReceiver,
    simulate,
    skewed,
)

# a NaN in the model (inf × 0 for a receiver that writes at no cost) is a defect, not a warning
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

IMAGE = CastImage(objects=200, frame_bytes=15_000_000, data_bytes=25 * 2**20)
P = CastParams(rate_bps=90e6, sender_startup_s=0.2, receiver_startup_s=0.1)


def test_many_receivers_take_as_long_as_one_without_loss() -> None:
    one = simulate(IMAGE, [CastReceiver()], P).done_s
    many = simulate(IMAGE, [CastReceiver() for _ in range(50)], P).done_s
    assert math.isclose(many.max(), one[0], rel_tol=1e-6)
    # the whole image at the session's payload rate, plus start-up
    assert 15e6 * 8 / 90e6 < one[0] < 15e6 * 8 / 90e6 * 1.1 + 0.3


def test_a_late_joiner_completes_about_one_transfer_after_joining_and_costs_nothing() -> None:
    alone = simulate(IMAGE, [CastReceiver()], P).done_s[0]
    res = simulate(IMAGE, [CastReceiver(), CastReceiver(), CastReceiver(alone / 2)], P)
    assert res.done_s[:2].max() <= alone * 1.001
    assert res.done_s[2] - alone / 2 <= alone * 1.05
    assert res.duplicate_bytes.sum() == 0


def test_a_slow_disk_does_not_slow_the_others() -> None:
    alone = simulate(IMAGE, [CastReceiver()], P).done_s[0]
    slow = CastReceiver(write_Bps=IMAGE.data_bytes / alone / 4, buffer=4 * 2**20)
    res = simulate(IMAGE, [CastReceiver(), slow, CastReceiver()], P)
    assert max(res.done_s[0], res.done_s[2]) <= alone * 1.001
    assert res.done_s[1] >= 3.5 * alone


def test_loss_costs_repairs_of_the_union_of_what_receivers_miss() -> None:
    clean = simulate(IMAGE, [CastReceiver() for _ in range(4)], P)
    lossy = simulate(IMAGE, [CastReceiver(loss=0.01) for _ in range(4)], P, seed=2)
    assert clean.sent_bytes < lossy.sent_bytes < clean.sent_bytes * 1.15
    assert lossy.done_s.max() <= clean.done_s.max() * 1.15


def test_a_thousand_receivers_with_skewed_starts_all_complete() -> None:
    recv = [CastReceiver(r.join_s, loss=0.01) for r in skewed(1000, 30.0)]
    res = simulate(IMAGE, recv, P)
    assert bool((res.done_s < math.inf).all())
    joins = [r.join_s for r in recv]
    assert all(d > j for d, j in zip(res.done_s, joins, strict=True))


def test_a_repair_round_waits_for_the_protocols_request_latency() -> None:
    clean = simulate(IMAGE, [CastReceiver() for _ in range(4)], P)
    lossy = [CastReceiver(loss=0.01) for _ in range(4)]
    eager = simulate(IMAGE, lossy, CastParams(90e6, 0.2, 0.1, repair_s=0.0), seed=2)
    waits = simulate(IMAGE, lossy, P, seed=2)
    assert waits.sweeps == eager.sweeps >= 1
    assert waits.done_s.max() - eager.done_s.max() >= P.repair_s * waits.sweeps * 0.99
    assert clean.sweeps == 0


def test_the_repair_latency_is_the_protocols() -> None:
    pytest.importorskip("zstandard")  # the protocol's modules need the lab extras
    from ogref.transports.chunkcast.receiver import ReceiverConfig
    from ogref.transports.chunkcast.sender import SenderConfig

    assert ReceiverConfig().flight_s == FLIGHT_S
    assert SenderConfig().request_s == REQUEST_S


def test_a_lossy_receiver_is_repaired_before_a_late_joiners_whole_objects() -> None:
    # the sender's rule: once a sweep is over, the objects a receiver lost part of go before
    # the late joiner's other whole objects (whole, when the late joiner lacks them too: ~40 %
    # of them at 1 % loss), not in one elevator pass with them (then: 1.5× alone)
    lossy = CastReceiver(loss=0.01)
    alone = simulate(IMAGE, [lossy], P, seed=4).done_s[0]
    res = simulate(IMAGE, [lossy, CastReceiver(alone / 2)], P, seed=4)
    assert res.done_s[0] <= alone * 1.3
    assert res.done_s[1] > res.done_s[0] + alone * 0.2
