"""What the simulator predicts each computer does in each of a scenario's operations: one run of
the scenario on the simulator, up front, its records kept by (operation, computer), and the
lookup of the record that answers a command the service hands an agent.

A command names its operation by the service's id, not the site's index, so it is matched by
what it asks: its kind, the computer, and for restores the image and method.  When several of
the scenario's operations match, each computer takes them in scenario order (a repeated
submission reuses the last).  A prediction is made for the scenario as written — its timing,
its concurrency, its faults; an operation submitted alone, or twice, is given the durations it
had in that run.  It runs nothing in wall-clock time (:mod:`ogsim.fleet` does).
"""

from __future__ import annotations

import threading
from typing import Any

from ogsim.results import ComputerResult, Results
from ogsim.scenario import Scenario

Json = dict[str, Any]


class Prediction:
    """The scenario's simulated run, queried per command."""

    def __init__(self, scenario: Scenario, seed: int | None = None) -> None:
        from ogsim.simulator import simulate

        self.scenario = scenario
        self.results: Results = simulate(scenario, seed)
        self._taken: dict[str, int] = {}  # computer → operations it has taken so far
        self._lock = threading.Lock()
        self.index_of_op: dict[int, int] = {}  # service operation id → scenario index

    def record(self, index: int, computer: str) -> ComputerResult | None:
        """The predicted record of ``computer`` in the scenario's operation ``index``."""
        for op in self.results.operations:
            if op.index == index:
                return next((c for c in op.computers if c.name == computer), None)
        return None

    def span(self, index: int) -> tuple[float, float]:
        """When the operation's first computer started and its last one finished (sim time)."""
        for op in self.results.operations:
            if op.index == index and op.computers:
                start = min(c.started for c in op.computers)
                end = max((c.finished or c.started) for c in op.computers)
                return start, end
        return 0.0, 0.0

    def _candidates(self, cmd: Json, computer: str) -> list[int]:
        kind = str(cmd.get("kind", ""))
        kind = "clone" if kind == "clone_source" else kind
        out = []
        for i, spec in enumerate(self.scenario.spec.operations):
            if spec.kind != kind:
                continue
            body = getattr(spec, spec.kind)
            request = cmd.get("request") or {}
            if request and getattr(body, "image", None) not in (None, request.get("image")):
                continue
            if kind == "create" and body.computer != computer:
                continue
            if cmd.get("kind") == "clone_source":
                if body.master != computer:
                    continue
            elif kind != "create" and self.record(i, computer) is None:
                continue
            out.append(i)
        return out

    def match(self, cmd: Json, computer: str) -> int | None:
        """The scenario index of the operation ``cmd`` (handed to ``computer``) belongs to."""
        op = int(cmd.get("op", -1))
        with self._lock:
            taken = self._taken.get(computer, 0)
            if op in self.index_of_op:
                index = self.index_of_op[op]
            else:
                found = self._candidates(cmd, computer)
                if not found:
                    return None
                later = [i for i in found if i >= taken]
                index = later[0] if later else found[-1]
                self.index_of_op[op] = index
            self._taken[computer] = max(taken, index + 1)
            return index
