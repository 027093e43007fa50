"""The swarm model: packet loss limits each block's TCP connection (Mathis et al.), and a
reference small swarm runs exactly as on main d1ea98d (a pin for speed work on the scheduler)."""

from __future__ import annotations

from pathlib import Path

from ogsim.results import Results
from ogsim.scenario import load_scenario
from ogsim.simulator import simulate
from ogsim.synthetic import synthetic
from ogsim.unicast import tcp_loss_cap


def _download_s(r: Results) -> float:
    phases = [p for c in r.operations[0].computers for p in c.phases if p.name == "download"]
    return max(p.end for p in phases) - min(p.start for p in phases)


def test_loss_caps_each_peer_connection_at_the_mathis_rate() -> None:
    size = 2 * 2**30
    times = {
        loss: _download_s(simulate(synthetic(2, "TORRENT-CACHE", data="2GiB", loss=f"{loss:g}%")))
        for loss in (0.0, 1.0, 5.0)
    }
    assert times[0.0] < times[1.0] < times[5.0]
    # at 5 % per end every block crosses a lossy connection: the seeder's (one lossy end,
    # RTT 0.6 ms) is the fastest a peer can get one; 4 of them at once bound the download
    best = 4 * tcp_loss_cap(2 * (0.0002 + 0.0001), 0.05)
    assert times[5.0] >= size / best


def _signature(r: Results) -> tuple[int, float, float]:
    ends = sorted(round(p.end, 6) for c in r.operations[0].computers for p in c.phases)
    return r.metrics.events, round(r.metrics.makespan_s, 6), round(sum(ends), 3)


def test_reference_small_swarm_is_unchanged() -> None:
    # pinned on the reference model (main d1ea98d): the short scan after a block arrives must
    # move the same blocks from the same uploaders in the same order as the full scan
    r = simulate(synthetic(40, "TORRENT-CACHE", data="4GiB", seed=3, sim={"swarm_blocks": 128}))
    assert _signature(r) == (5560, 170.391426, 21087.072)


def test_reference_seeder_death_is_unchanged() -> None:
    # the seeder dies mid-swarm (its availability changes outside the swarm): same run as main
    path = Path(__file__).resolve().parents[2] / "scenarios" / "s18-torrent-seeder-death.yaml"
    assert _signature(simulate(load_scenario(path))) == SEEDER_DEATH


SEEDER_DEATH = (13905, 451.01252, 19528.077)
