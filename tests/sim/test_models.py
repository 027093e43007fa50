"""Transport models: udpcast repair, pipelines, and what the decision core gets from them."""

from __future__ import annotations

import pytest

from ogsim.disk import DiskState, slowest_keep
from ogsim.hardware import HostHw
from ogsim.multicast import fec_params, repair_factor, stripe_failure
from ogsim.results import Results
from ogsim.scenario import build_scenario
from ogsim.simulator import simulate
from ogsim.synthetic import synthetic


def test_fec_parses_udpcast_spelling() -> None:
    assert fec_params("8x8/128") == (8, 8, 128)
    assert fec_params("none") == (0, 0, 1)


def test_repository_fec_sets_the_multicast_overhead() -> None:
    def makespan(fec: str) -> float:
        sc = synthetic(4, "MULTICAST-CACHE", data="1GiB", link="100Mbit", uplink="100Mbit")
        raw = sc.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
        raw["repositories"][0]["multicast_fec"] = fec
        return simulate(build_scenario(raw)).metrics.makespan_s

    with_fec, without = makespan("8x8/128"), makespan("none")
    # 8 redundant packets per 128: the transfer takes 136/128 as long without loss
    assert without < with_fec
    assert with_fec / without == pytest.approx(136 / 128, rel=0.03)


def test_repository_fec_must_be_udpcast_spelling() -> None:
    from ogref.errors import FormatError
    from ogref.model.repository import Repository

    with pytest.raises(FormatError, match="multicast_fec"):
        Repository("repo", multicast_fec="8/128")
    assert Repository("repo", multicast_fec="none").multicast_fec == "none"


def test_repair_grows_with_loss_and_with_n() -> None:
    assert repair_factor([0.0] * 50, 8, 128) == 0.0
    assert stripe_failure(0.001, 8, 128) < 1e-9  # FEC hides light loss
    few = repair_factor([0.05] * 2, 8, 128)
    many = repair_factor([0.05] * 40, 8, 128)
    heavier = repair_factor([0.08] * 40, 8, 128)
    assert 0 < few < many < heavier


def test_slowest_receiver_pacing_creeps_with_n() -> None:
    disks = [DiskState(HostHw(stall=0.1, stall_factor=8.0)) for _ in range(32)]
    one, many = slowest_keep(disks[:1]), slowest_keep(disks)
    assert one == pytest.approx(0.9 + 0.1 / 8)
    assert many < one / 4
    assert slowest_keep([DiskState(HostHw())] * 80) == 1.0


def test_multicast_time_does_not_depend_on_n_without_stalls_or_loss() -> None:
    t = [
        simulate(synthetic(n, "MULTICAST-DIRECT", data="2GiB", stored="1GiB")).metrics.makespan_s
        for n in (1, 30, 120)
    ]
    assert max(t) == pytest.approx(min(t), rel=1e-6)


def test_unicast_is_disk_bound_alone_and_uplink_bound_in_a_crowd() -> None:
    one = simulate(synthetic(1, "UNICAST-DIRECT", data="2GB", stored="1GB", write="50MB/s"))
    ten = simulate(synthetic(10, "UNICAST-DIRECT", data="2GB", stored="1GB", write="50MB/s"))

    def rest(r: Results) -> float:
        phases = [p for c in r.operations[0].computers for p in c.phases if p.name == "restore"]
        return max(p.end - p.start for p in phases)

    assert rest(one) == pytest.approx(2e9 / 50e6, rel=1e-6)  # 40 s: the disk
    assert rest(ten) == pytest.approx(10 * 1e9 * 1.08 / 125e6, rel=1e-6)  # the 1 GbE uplink


def test_torrent_beats_unicast_at_scale_and_every_peer_verifies() -> None:
    r = simulate(synthetic(60, "TORRENT-CACHE", data="2GiB", stored="2GiB"))
    assert r.metrics.ok == 60
    assert all(c.checksum_verified for c in r.operations[0].computers)
    u = simulate(synthetic(60, "UNICAST-CACHE", data="2GiB", stored="2GiB"))
    assert r.metrics.makespan_s < u.metrics.makespan_s / 5


def test_leecher_mode_exits_30s_after_download_and_peer_mode_seeds_its_time() -> None:
    for mode, stay in (("leecher:0", 30.0), ("peer:90", 90.0)):
        r = simulate(synthetic(4, "TORRENT-CACHE", data="1GiB", torrent=mode))
        for c in r.operations[0].computers:
            seeding = next(p for p in c.phases if p.name == "seeding")
            assert seeding.end - seeding.start == pytest.approx(stay)


# --------------------------------------------------------------------------- STARTDELAY


def test_sim_start_delay_follows_the_engine_policy() -> None:
    """The random updateCache sleeps are the engine's STARTDELAY, the same the agent honours."""
    from ogsim.synthetic import synthetic

    def waits(engine: dict[str, str] | None) -> list[float]:
        sc = synthetic(6, "TORRENT-CACHE", data="64MiB", torrent="peer:0", engine=engine)
        r = simulate(sc)
        return [
            p.end - p.start for c in r.operations[0].computers for p in c.phases if p.name == "wait"
        ]

    assert waits(None) == []  # ogLab default: the server coordinates, nobody sleeps
    drawn = waits({"STARTDELAY": "OPENGNSYS"})
    assert len(drawn) == 6 and all(1 <= w <= 120 for w in drawn)
    assert waits({"STARTDELAY": "TORRENT:7-7"}) == [7.0] * 6


def test_sim_strict_preset_predicts_a_stock_installation() -> None:
    """engine_preset opengnsys-1.1.1d-strict drives the simulator through the same core: 1.1.1d
    takes a copy whose last MiB matches for current (deviation 5) and sleeps before a torrent
    (deviation 20); the stock preset with ogLab's rules re-fetches and does not sleep."""

    def run(preset: str, method: str) -> list[list[str]]:
        sc = synthetic(3, method, data="256MiB", torrent="peer:0")
        raw = sc.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
        raw["engine_preset"] = preset
        raw["classrooms"][0]["defaults"]["cache"]["images"] = [
            {"name": "img", "state": "stale_head"}
        ]
        r = simulate(build_scenario(raw))
        assert all(c.status == "ok" for c in r.operations[0].computers)
        return [[p.name for p in c.phases] for c in r.operations[0].computers]

    ours, theirs = (
        run("opengnsys-1.1.1d", "UNICAST-CACHE"),
        run("opengnsys-1.1.1d-strict", "UNICAST-CACHE"),
    )
    assert all("fetch" in phases for phases in ours)
    assert not any("fetch" in phases for phases in theirs)
    torrent = run("opengnsys-1.1.1d-strict", "TORRENT-CACHE")  # whole-file MD5: re-fetched
    assert all("wait" in phases and "fetch" in phases for phases in torrent)
    assert not any("wait" in phases for phases in run("opengnsys-1.1.1d", "TORRENT-CACHE"))


@pytest.mark.parametrize("method", ["MULTICAST-DIRECT", "UNICAST-DIRECT"])
def test_a_direct_restore_ends_with_the_sync_of_dirty_data(method: str) -> None:
    def restore_phase(dirty: str | None) -> float:
        sc = synthetic(1, method, data="1GiB", link="100Mbit", uplink="100Mbit")
        raw = sc.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
        if dirty is not None:
            raw["classrooms"][0]["defaults"]["hw"]["disk"]["dirty"] = dirty
        r = simulate(build_scenario(raw))
        (pc,) = r.operations[0].computers
        assert pc.status == "ok"
        (phase,) = [p for p in pc.phases if p.name == "restore"]
        return phase.end - phase.start

    # the kernel held 512 MiB of the partition's writes: partclone's sync writes them at 150 MB/s
    assert restore_phase("512MiB") - restore_phase(None) == pytest.approx(512 * 2**20 / 150e6, 0.02)
    # a limit above the image's data is the whole image (1 GiB)
    assert restore_phase("8GiB") - restore_phase(None) == pytest.approx(2**30 / 150e6, 0.02)


def test_a_cache_restore_has_no_separate_sync() -> None:
    def makespan(dirty: str | None) -> float:
        sc = synthetic(1, "UNICAST-CACHE", data="1GiB", link="100Mbit", uplink="100Mbit")
        raw = sc.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
        if dirty is not None:
            raw["classrooms"][0]["defaults"]["hw"]["disk"]["dirty"] = dirty
        return simulate(build_scenario(raw)).metrics.makespan_s

    assert makespan("512MiB") == makespan(None)
