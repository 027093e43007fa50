"""The swarm model: packet loss limits each block's TCP connection (Mathis et al.), and a
reference small swarm runs exactly as on main d1ea98d (a pin for speed work on the scheduler)."""

from __future__ import annotations

import dataclasses
import gc
from pathlib import Path
from typing import Any

import pytest

from ogref.site import read_yaml
from ogsim.results import Results
from ogsim.scenario import Scenario, build_scenario, load_scenario
from ogsim.simulator import Simulation, simulate
from ogsim.swarm import Swarm
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
    # (at 200 s, where s18 had it when this was pinned: the library file now has it at 175 s)
    path = Path(__file__).resolve().parents[2] / "scenarios" / "s18-torrent-seeder-death.yaml"
    sc = load_scenario(path)
    fault = sc.spec.faults[0].model_copy(update={"at": 200.0})
    sc = dataclasses.replace(sc, spec=sc.spec.model_copy(update={"faults": [fault]}))
    assert _signature(simulate(sc)) == SEEDER_DEATH


SEEDER_DEATH = (13905, 451.01252, 19528.077)


def _faulty_swarm(piece_cache: str | None = None, **sim: object) -> Scenario:
    """s18's classroom, 24 PCs, with every fault the swarm reacts to: a link down and back, a
    crash, a peer that stops uploading, loss, a slow disk, a repository restart and the
    repository seeder's death."""
    path = Path(__file__).resolve().parents[2] / "scenarios" / "s18-torrent-seeder-death.yaml"
    doc = read_yaml(path)
    doc["name"] = "faulty-swarm"
    doc["classrooms"][0]["computers"]["count"] = 24
    doc["faults"] = [
        {"at": "30s", "link_down": {"target": "pc03", "for": "40s"}},
        {"at": "45s", "link_down": {"target": "pc09"}},
        {"at": "50s", "client_crash": {"target": "pc05"}},
        {"at": "60s", "seeder_death": {"target": "pc07"}},
        {"at": "80s", "link_loss": {"target": "pc02", "loss": "2%", "for": "50s"}},
        {"at": "90s", "slow_disk": {"target": "pc04", "factor": 3, "for": "60s"}},
        {"at": "120s", "repository_restart": {"repository": "repo"}},
        {"at": "300s", "seeder_death": {"target": "repo"}},
    ]
    doc["expect"] = []
    doc["backends"]["sim"] = {"swarm_blocks": 96, **sim}
    if piece_cache is not None:  # the disk model
        doc["classrooms"][0]["defaults"]["hw"]["disk"]["piece_cache"] = piece_cache
    return build_scenario(doc, source=str(path))


def test_reference_faulty_swarm_is_unchanged() -> None:
    # pinned on main d6eff61 (before the neighbour scans tested derived bitmasks): links going down and up,
    # a crash, a peer that stops uploading, loss, a slow disk, a repository restart and the
    # seeder's death change who may serve whom outside the block transfers
    assert _signature(simulate(_faulty_swarm())) == FAULTY


FAULTY = (2446, 514.756466, 38777.387)


def test_scan_filters_match_the_state_after_every_event(monkeypatch: pytest.MonkeyPatch) -> None:
    # the neighbour scans filter on each peer's ``spare`` and ``want``: both must equal what
    # they summarise whenever a scan can run, i.e. after every entry into the swarm from outside
    checked = {"n": 0}
    depth = {"n": 0}

    def checking(name: str) -> None:
        inner = getattr(Swarm, name)

        def wrapper(self: Swarm, *args: Any, **kwargs: Any) -> Any:
            depth["n"] += 1
            try:
                return inner(self, *args, **kwargs)
            finally:
                depth["n"] -= 1
                if depth["n"] == 0:
                    self.check()
                    checked["n"] += 1

        monkeypatch.setattr(Swarm, name, wrapper)

    for name in ("join", "leave", "seeder_death", "abort_transfers", "kick", "_done"):
        checking(name)
    checking("_reannounce")
    checking("_exit")
    for scenario in (
        _faulty_swarm(),
        _faulty_swarm(piece_cache="300MB"),
        synthetic(40, "TORRENT-CACHE", data="4GiB", seed=3, sim={"swarm_blocks": 128}),
        synthetic(30, "TORRENT-CACHE", data="2GiB", torrent="leecher:10", loss="1%"),
    ):
        simulate(scenario)
    assert checked["n"] > 10_000


def _disk_model_run(n: int, piece_cache: str | None, seeder_read: str = "100Gbit") -> float:
    """``n`` peers on 10 Gbit links whose disks bind: 2 GB of piece writes at 50 MB/s each; the
    seeder's disk reads at ``seeder_read``; goodput 100 % so the bounds are plain arithmetic."""
    sc = synthetic(
        n,
        "TORRENT-CACHE",
        data="2GB",
        link="10Gbit",
        uplink="10Gbit",
        write="100MB/s",
        random_write="50MB/s",
        piece_cache=piece_cache,
        torrent="peer:0",
        repo_hw={"read": seeder_read},
        engine={"STARTDELAY": "NONE"},
        sim={"torrent_efficiency": 1.0, "swarm_blocks": 128},
    )
    return _download_s(simulate(sc))


def test_disk_model_alone_runs_at_the_disk_rate() -> None:
    # one peer: its disk writes every block at 50 MB/s, nothing else binds
    assert _disk_model_run(1, "1GB") == pytest.approx(2e9 / 50e6, rel=1e-3)


def test_disk_model_reads_of_uploads_cost_the_disk_unless_cached() -> None:
    # two peers, the seeder's disk as fast as theirs (w = 50 MB/s): each writes D = 2 GB and
    # re-reads from its disk every block it uploads (no piece memory); the seeder sends S ≤ w·T,
    # the peers upload the other 2D − S, so 2·w·T ≥ 2D + 2D − w·T: T ≥ 4D / 3w
    d, w = 2e9, 50e6
    uncached = _disk_model_run(2, "0B", seeder_read="400Mbit")
    assert uncached >= 4 * d / (3 * w) * (1 - 1e-6)
    assert uncached >= 1.3 * _disk_model_run(1, "0B", seeder_read="400Mbit")
    # with the blocks a peer uploads still in its memory, its disk only writes: the seeder's
    # one copy (D at w) and each peer's D of writes bound it, T ≈ D / w (plus the last
    # blocks' store-and-forward: 128 blocks of 15.6 MB)
    cached = _disk_model_run(2, "1GB", seeder_read="400Mbit")
    assert d / w * (1 - 1e-6) <= cached <= 1.15 * d / w < uncached


def test_disk_model_off_leaves_peers_without_a_disk() -> None:
    # piece_cache unset: the swarm keeps its per-block timers (the pinned runs above)
    sim = Simulation(synthetic(3, "TORRENT-CACHE", data="1GiB"))
    sim._schedule()
    sim.loop.run(until=5.0)
    swarm = next(iter(sim.swarms.values()))
    assert swarm.peers and all(p.disk is None and p.cache is None for p in swarm.peers)


def test_check_catches_a_stale_filter() -> None:
    # the check above can fail: a peer whose ``want`` misses a block it waits for is reported
    sc = synthetic(8, "TORRENT-CACHE", data="1GiB", sim={"swarm_blocks": 64})
    sim = Simulation(sc)
    sim._schedule()
    sim.loop.run(until=5.0)
    swarm = next(iter(sim.swarms.values()))
    waiting = [p for p in swarm.waiting if p.want]
    assert waiting
    waiting[0].want &= waiting[0].want - 1  # drop its lowest wanted block
    with pytest.raises(AssertionError):
        swarm.check()


def test_a_run_leaves_the_garbage_collector_as_it_found_it() -> None:
    # the run pauses most of the cyclic collector's work (freeze + thresholds) and restores it,
    # also when the run fails
    before = (gc.get_threshold(), gc.get_freeze_count(), gc.isenabled())
    seen: list[tuple[int, int, int]] = []

    class BoomError(Exception):
        pass

    def boom() -> None:
        seen.append(gc.get_threshold())
        raise BoomError

    sim = Simulation(synthetic(4, "TORRENT-CACHE", data="1GiB"))
    sim.loop.at(1.0, boom)
    with pytest.raises(BoomError):
        sim.run()
    assert seen and seen[0] != before[0]  # paused while the loop ran
    assert (gc.get_threshold(), gc.get_freeze_count(), gc.isenabled()) == before
    simulate(synthetic(4, "TORRENT-CACHE", data="1GiB"))
    assert (gc.get_threshold(), gc.get_freeze_count(), gc.isenabled()) == before
