"""Calibration of the simulator against the netns lab: the step breakdown, the fit of the lab
host's parameters, and that the fitted simulator reproduces a lab it was fitted on (no root)."""

from __future__ import annotations

from typing import Any

import pytest

from ogsim.lab.netns.bench import bench_scenario, calibrate, predict
from ogsim.lab.netns.calibration import LabHw, breakdown, fit, inspections
from ogsim.results import ComputerResult, OperationResult, Phase, Results
from ogsim.simulator import simulate

MIB = 1 << 20


def _results(phases: list[tuple[str, float, float, str]], finished: float) -> Results:
    pc = ComputerResult(
        name="pc01",
        phases=[Phase(name=n, start=a, end=b, detail=d) for n, a, b, d in phases],
        status="ok",
        started=0.0,
        finished=finished,
    )
    return Results(
        scenario="x",
        backend="netns",
        seed=1,
        operations=[OperationResult(index=0, kind="restore", at=0.0, computers=[pc])],
    )


def test_breakdown_splits_the_lab_steps() -> None:
    r = _results(
        [
            ("inspect", 0.0, 0.1, ""),
            ("fetch", 0.3, 5.3, "UNICAST"),
            ("restore", 5.3, 6.5, "CACHE"),
        ],
        finished=6.8,
    )
    b = breakdown(r)
    assert b["pre"] == 0.3 and b["transfer"] == 5.0 and b["local"] == 1.2
    assert abs(b["post"] - 0.3) < 1e-9


def test_inspection_counts_follow_the_core() -> None:
    assert inspections("UNICAST-DIRECT") == 2 and inspections("TORRENT-CACHE") == 3


def _row(
    method: str, n: int, t: float, bd: dict[str, float], bound: bool = False
) -> dict[str, Any]:
    return {
        "method": method,
        "n": n,
        "T": t,
        "stored_bytes": 64 * MIB,
        "data_bytes": 100 * MIB,
        "cpu_bound": bound,
        "cpu_idle_mean": 0.5,
        "breakdown": bd,
    }


def test_fit_reads_the_n1_rows_and_says_which() -> None:
    rows = [
        _row("UNICAST-CACHE", 1, 8.0, {"pre": 0.3, "transfer": 5.6, "local": 1.0, "post": 0.2}),
        _row("MULTICAST-DIRECT", 1, 9.0, {"pre": 0.2, "transfer": 8.0, "post": 0.2}, True),
        _row("UNICAST-CACHE", 4, 30.0, {"pre": 0.3, "transfer": 22, "local": 2, "post": 0.2}),
    ]
    hw = fit(rows, lambda row, hw: 6.0)
    assert hw.fitted_from == ["UNICAST-CACHE N=1", "MULTICAST-DIRECT N=1 (untrusted)"]
    assert abs(hw.inspect_s - (0.1 + 0.1) / 2) < 1e-9
    assert abs(hw.decompress_rate - 100 * MIB) < 1
    assert abs(hw.smb_overhead - (12.5e6 * 5.6 / (64 * MIB) - 1)) < 1e-9
    assert abs(hw.mcast_start_s - 3.0) < 1e-9 and hw.torrent_start_s == 0.0


def test_lab_profile_reaches_the_simulator() -> None:
    lab = LabHw(inspect_s=0.1, postconf_s=0.2, mcast_start_s=2.0, cpus=2)
    sc = bench_scenario("MULTICAST-DIRECT", 2, 64, lab=lab, engine={"STARTDELAY": "NONE"})
    assert sc.spec.backends.sim is not None and sc.spec.backends.sim.shared_cpus == 2
    r = simulate(sc)
    c = r.operations[0].computers[0]
    barrier = next(p for p in c.phases if p.name == "barrier")
    assert abs((barrier.end - barrier.start) - 2.0) < 1e-6  # udp-sender start-up
    assert not [p for p in c.phases if p.name == "postconf" and abs(p.end - p.start - 0.2) > 1e-6]


def test_shared_cpus_slow_simultaneous_cache_restores() -> None:
    lab = LabHw(decompress_rate=100e6, cpus=1)
    row = _row("UNICAST-CACHE", 4, 0.0, {})
    alone = predict(row, 64, LabHw(decompress_rate=100e6, cpus=64), {})
    shared = predict(row, 64, lab, {})
    # four 100 MiB restores through one 100 MB/s "core" instead of one each
    assert shared - alone > 3 * 100 * MIB / 100e6 * 0.9


def test_calibrate_predicts_before_and_after() -> None:
    rows = [_row("UNICAST-DIRECT", 1, 7.0, {"pre": 0.2, "transfer": 6.0, "post": 0.3})]
    lab = calibrate(rows, 64, write_rate=300e6)
    assert rows[0]["sim_before"] > 20  # classroom defaults: 20 s configureOs
    assert abs(rows[0]["sim_T"] - 7.0) / 7.0 < 0.15
    assert lab.write_rate == 300e6


def test_sender_data_phase_is_read_from_the_udp_sender_log(tmp_path: Any) -> None:
    from ogsim.lab.netns.bench import sender_data_phases

    (tmp_path / "ogAdmRepoMcast.20261127-174938.9000").write_text(
        "17:49:38.552717 UDP sender for img at 10.0.7.1 on eth0 \n"
        "17:49:39.078679 Starting transfer: 00000009\r"
        "17:49:45.620389 Transfer complete.\n"
    )
    (tmp_path / "ogAdmRepoMcast.20261127-174938.9000.out").write_text("Starting transfer\n")
    (tmp_path / "ogAdmRepoMcast.20261127-175000.9002").write_text("17:50:00.0 Starting transfer\n")
    assert sender_data_phases(tmp_path) == [pytest.approx(6.54171)]


def test_line_rate_profile_is_faster_in_the_simulator() -> None:
    def t(profile: str) -> float:
        sc = bench_scenario("MULTICAST-CACHE", 4, 64, profile=profile)
        assert sc.site.repositories[0].multicast_fec == (
            "none" if profile == "line-rate" else "8x8/128"
        )
        return float(simulate(sc).operations[0].makespan or 0)

    assert t("line-rate") < t("opengnsys")
