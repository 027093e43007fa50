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
