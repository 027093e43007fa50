"""Scenario time on a lab: the clock's idle skips, and faults anchored on the simulator's
prediction of where a transfer is at the fault's scenario time."""

from __future__ import annotations

from pathlib import Path

import pytest

from ogsim.lab.clock import Anchor, ScenarioClock, Skip, anchor_faults
from ogsim.results import ComputerResult, OperationResult, Phase, Results
from ogsim.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def test_the_clock_skips_idle_gaps_and_maps_wall_instants() -> None:
    clock = ScenarioClock(wall0=1000.0)
    assert clock.of(1010.0) == 10.0
    # at wall +10 s nothing runs and the next operation is due at 8 h
    clock.skips.append(Skip(wall=10.0, start=10.0, end=28800.0, why="idle"))
    assert clock.of(1005.0) == 5.0  # before the skip
    assert clock.of(1012.0) == 28802.0  # after it: wall + skipped
    assert clock.skipped == 28790.0
    assert clock.record()["skipped_s"] == 28790.0


def _computer(name: str, start: float, fetch: tuple[float, float], end: float) -> ComputerResult:
    return ComputerResult(
        name=name,
        method_used="MULTICAST-CACHE",
        status="ok",
        started=start,
        finished=end,
        phases=[
            Phase(name="inspect", start=start, end=fetch[0]),
            Phase(name="fetch", start=fetch[0], end=fetch[1], bytes=1000.0),
            Phase(name="restore", start=fetch[1], end=end, bytes=1000.0),
        ],
    )


def _predicted() -> Results:
    return Results(
        scenario="t",
        operations=[
            OperationResult(
                index=0,
                kind="restore",
                at=0.0,
                computers=[
                    _computer("pc01", 0.0, (10.0, 110.0), 150.0),
                    _computer("pc02", 0.0, (10.0, 110.0), 150.0),
                ],
            )
        ],
    )


@pytest.mark.parametrize(
    ("at", "target", "kind", "computer", "fraction"),
    [
        (5.0, "pc02", "start", "pc02", 0.0),  # before its transfer
        (35.0, "pc02", "progress", "pc02", 0.25),  # a quarter into its fetch
        (120.0, "pc01", "after", "pc01", 1.0),  # restoring from its cache
        (35.0, "repo", "progress", "pc01", 0.25),  # the repository's: the first computer
        (500.0, "pc01", "idle", None, 0.0),  # nothing runs
    ],
)
def test_faults_are_anchored_where_the_transfer_is(
    at: float, target: str, kind: str, computer: str | None, fraction: float
) -> None:
    (a,) = anchor_faults(_predicted(), [[target]], [at])
    assert (a.kind, a.computer, a.fraction) == (kind, computer, fraction)
    if kind in ("progress", "after"):
        assert a.stage == "fetch" and a.op == 0
    assert a.describe()


def test_a_direct_method_is_anchored_on_its_restore() -> None:
    from ogsim.lab.netns.backend import fault_anchors

    sc = load_scenario(SCENARIOS / "s13-multicast-loss-crash.yaml")
    loss, crash = fault_anchors(sc)
    assert (loss.fault, crash.fault) == (0, 1)
    assert crash.kind == "progress" and crash.computer == "pc07" and crash.stage == "restore"
    assert 0.05 < crash.fraction < 0.6  # 200 s into a 12–40 min multicast
    assert loss.computer == "pc03"
    assert isinstance(loss, Anchor)


def test_a_progress_anchor_knows_how_long_its_computer_has_left_at_a_scale() -> None:
    (a,) = anchor_faults(_predicted(), [["pc02"]], [35.0])  # a quarter into a 100 s fetch
    assert a.stage_s == 100.0
    assert a.window_s(0.1) == 75.0 * 0.1  # three quarters of it, at a tenth of the bytes
    (idle,) = anchor_faults(_predicted(), [["pc01"]], [500.0])
    assert idle.window_s(0.1) is None  # nothing to catch


SHORT_WINDOW = {
    "s18-torrent-seeder-death": "the seeder must die late in the swarm's download (killed at 56 % "
    "of pc01's, the lab's swarm stalled and all 12 failed with 31, as the simulator's does before "
    "~120 s); its ~1 s window is enough there: a torrent's fetch runs on through the peer's "
    "seeding, so a report that lags by a second still fires while the other peers download "
    "(measured at scale 0.02: fired 1.6 s after the point, 0.7 s before pc01's download ended)",
}
"""Mid-transfer faults whose window may be short, and why that still tests what the file says."""


def test_every_mid_transfer_fault_of_the_library_has_time_to_strike_on_the_lab() -> None:
    """The lab sees a computer's progress in its agent's reports, which lag on a loaded host: a
    fault the scenario places mid-transfer needs a few seconds of that transfer left at the
    scenario's lab scale, or it strikes after it and the run tests something else (s16 did, on a
    slow host)."""
    from ogsim.lab.capabilities import unsupported
    from ogsim.lab.netns.backend import MIN_WINDOW_S, fault_anchors, lab_scale

    short, checked = [], []
    for path in sorted(SCENARIOS.glob("*.yaml")):
        sc = load_scenario(path)
        if sc.spec.backends.netns is None or not sc.spec.faults or unsupported(sc, "netns"):
            continue
        floor = MIN_WINDOW_S / 6 if sc.name in SHORT_WINDOW else MIN_WINDOW_S
        for a in fault_anchors(sc):
            window = a.window_s(lab_scale(sc))
            if window is None:
                continue
            checked.append(sc.name)
            if window < floor:
                short.append(f"{sc.name} fault {a.fault} ({a.describe()}): {window} s left")
    assert not short, "\n".join(short)
    assert {"s13-multicast-loss-crash", "s16-multicast-link-down-timeout"} <= set(checked)
