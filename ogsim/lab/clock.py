"""Scenario time on a lab backend: when operations start and faults strike, and how a lab run's
times are recorded.

A scenario's times are *scenario time*.  The simulator's virtual clock is scenario time itself.
A lab moves real bytes of scaled-down images through real programs, so it maps scenario time to
wall time with these rules (``docs/scenario-time.md`` explains why):

1. **Scenario time advances with the wall clock while anything runs; an idle gap is skipped.**
   When nothing runs and the next operation is later (``at: 8h``), the lab starts it at once and
   records the skip.  A run's results give every time in scenario time and keep the skips
   (``metrics.extra.time``), so wall time can be recovered.
2. **A fault that strikes during an operation's transfer keeps its place in the transfer.**  The
   simulator predicts, for the scenario at full size, how far the fault's computer (or, for the
   repository's faults, the operation's first computer) has got at the fault's time; the lab fires
   the fault when its own computer reaches the same fraction of its transfer (``Anchor``).  A
   fault before that computer's transfer fires when its command starts; one after the transfer,
   when the transfer has ended.  Faults in idle time fire at their scenario time.
3. **Durations are real seconds on every backend** (a fault's ``for:``, engine.cfg timeouts such
   as ``MCASTWAIT``): they are compared with protocol timers, which a lab cannot scale.  A
   duration still pending when an idle gap is skipped ends first if it would have in scenario
   time.

This module computes anchors and keeps the clock; it starts nothing and talks to no agent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from ogsim.results import ComputerResult, Results

TRANSFER_PHASES = ("fetch", "restore")


@dataclass
class Skip:
    """An idle gap the lab skipped: at ``wall`` (seconds since the run's start) scenario time
    jumped from ``start`` to ``end``."""

    wall: float
    start: float
    end: float
    why: str


@dataclass
class ScenarioClock:
    """Scenario time of a lab run: wall seconds since ``wall0`` plus every skipped gap."""

    wall0: float = field(default_factory=time.time)
    skips: list[Skip] = field(default_factory=list)

    @property
    def skipped(self) -> float:
        return sum(s.end - s.start for s in self.skips)

    def now(self) -> float:
        """The scenario time now."""
        return self.of(time.time())

    def of(self, wall: float | None) -> float:
        """The scenario time of wall instant ``wall`` (epoch seconds; None: the start)."""
        w = (wall if wall is not None else self.wall0) - self.wall0
        return round(max(0.0, w) + sum(s.end - s.start for s in self.skips if s.wall <= w), 3)

    def skip_to(self, target: float, why: str) -> Skip | None:
        """Jump scenario time forward to ``target`` (nothing is running); the skip made."""
        start = self.now()
        if target <= start:
            return None
        skip = Skip(round(time.time() - self.wall0, 3), start, round(target, 3), why)
        self.skips.append(skip)
        return skip

    def record(self) -> dict[str, object]:
        """What results keep of the mapping: wall seconds, skipped seconds, each skip."""
        return {
            "wall_s": round(time.time() - self.wall0, 3),
            "skipped_s": round(self.skipped, 3),
            "skips": [vars(s) for s in self.skips],
        }


AnchorKind = Literal["idle", "start", "progress", "after"]


@dataclass(frozen=True)
class Anchor:
    """Where fault ``fault`` (due at scenario time ``at``) strikes on a lab.

    ``idle``: at scenario time ``at`` (nothing transfers then); ``start``: when ``computer``
    starts its part of operation ``op``; ``progress``: when ``computer`` has ``fraction`` of its
    transfer (``stage``) done; ``after``: when that transfer has ended.  ``stage_s``: how long
    the simulator predicts that transfer takes at full size (scenario seconds).
    """

    fault: int
    at: float
    kind: AnchorKind
    op: int | None = None
    computer: str | None = None
    stage: str = ""
    fraction: float = 0.0
    stage_s: float = 0.0

    def window_s(self, scale: float) -> float | None:
        """For a ``progress`` anchor, about how many lab seconds the fault has to strike in
        before its computer's transfer ends, on a lab that moves ``scale`` of the bytes at the
        same rates (None for the other kinds: they do not depend on catching a transfer).  A lab
        sees a computer's progress only as often as its agent reports it, so a window shorter than
        a few reports can be missed and the fault strike after the transfer."""
        if self.kind != "progress":
            return None
        return round((1.0 - self.fraction) * self.stage_s * scale, 3)

    def describe(self) -> str:
        if self.kind == "idle":
            return f"at {self.at:g} s (scenario time)"
        where = f"{self.computer}'s part of operation {self.op}"
        if self.kind == "start":
            return f"when {where} starts (before its transfer at {self.at:g} s)"
        if self.kind == "after":
            return f"when {where} has ended its {self.stage} (at {self.at:g} s it had)"
        return (
            f"when {where} has {self.fraction:.0%} of its {self.stage} done (as at {self.at:g} s)"
        )


def transfer_stage(c: ComputerResult) -> str:
    """The phase that moved the image over the network: ``fetch`` for a CACHE method, else
    ``restore``."""
    if c.method_used and "CACHE" in c.method_used and any(p.name == "fetch" for p in c.phases):
        return "fetch"
    return "restore"


def _fraction(c: ComputerResult, stage: str, t: float) -> tuple[AnchorKind, float, float]:
    """Where ``c`` is in its ``stage`` at ``t``: the anchor's kind, the fraction done, and the
    stage's predicted length (first start to last end).  A torrent's fetch also holds the peer's
    seeding after its download; its progress (what a lab's agent reports: bytes) is the
    download's."""
    phases = [p for p in c.phases if p.name == stage and p.end > p.start]
    if stage == "fetch":
        phases = [p for p in c.phases if p.name == "download" and p.end > p.start] or phases
    if not phases:
        return "start", 0.0, 0.0
    first, last = min(p.start for p in phases), max(p.end for p in phases)
    if t < first:
        return "start", 0.0, last - first
    if t >= last:
        return "after", 1.0, last - first
    weight = sum(max(p.bytes, 1.0) for p in phases)
    done = sum(
        max(p.bytes, 1.0) * min(1.0, max(0.0, (t - p.start) / (p.end - p.start))) for p in phases
    )
    return "progress", done / weight, last - first


def anchor_faults(predicted: Results, targets: list[list[str]], times: list[float]) -> list[Anchor]:
    """Anchor each fault (``times[i]``, aimed at ``targets[i]``: computer names, or a
    repository's) on the simulator's prediction ``predicted`` of the same scenario."""
    out: list[Anchor] = []
    for i, (t, aimed) in enumerate(zip(times, targets, strict=True)):
        running = [
            (op.index, c)
            for op in predicted.operations
            for c in op.computers
            if c.started <= t and (c.finished is None or t < c.finished) and c.status != "refused"
        ]
        if not running:
            out.append(Anchor(i, t, "idle"))
            continue
        hit = [(op, c) for op, c in running if c.name in aimed]
        if hit:
            op, c = hit[0]
        else:  # the repository's fault: the latest operation's first computer stands for it
            op = max(o for o, _ in running)
            c = next(cc for o, cc in running if o == op)
        stage = transfer_stage(c)
        kind, fraction, length = _fraction(c, stage, t)
        out.append(Anchor(i, t, kind, op, c.name, stage, round(fraction, 3), round(length, 3)))
    return out
