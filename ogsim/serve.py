"""``ogsim serve``: a simulated classroom behind the real console service, in wall-clock time
``speed`` times faster — for trying the API, a console or a script against a site without a
lab, and without root.

What is real: the service (``ogref.service.main`` as a child process over a fresh SQLite
database with the scenario's site imported), its API and its engine — operations submitted
through ``/api/v1`` are planned by the service with the shared decision core and released by
its command queue — and each computer's agent link (its own credential, signed long polls,
:mod:`ogsim.fleet`).  What is simulated, and how simply: the scenario is run once on the
simulator up front (:mod:`ogsim.prediction`); an agent given a command plays back what that run
predicted for its computer in that operation — stages, tracking-log lines, the result — scaled
by ``1/speed``.  Nothing is transferred; durations do not react to what happens live (an
operation submitted alone or twice takes the time it took in the scenario's run); faults act
only through the predicted records; idle gaps between the scenario's operations are not
skipped (choose ``speed`` accordingly).

The run ends on Ctrl-C or SIGTERM, after the scenario's operations (``run_operations``) or once
every operation submitted has ended (``until_idle``).  Then every operation the service holds
is read back and written as ``results.json`` (the schema of every backend, times in scenario
seconds: wall seconds since the start times ``speed``), and the file is read back to validate it.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ogref.console import scope_label
from ogsim.fleet import Fleet
from ogsim.lab.console import Console, ConsoleError, computer_result
from ogsim.lab.manifest import signals_ignored
from ogsim.prediction import Prediction
from ogsim.results import (
    ComputerResult,
    LogLine,
    Metrics,
    OperationResult,
    Results,
)
from ogsim.scenario import Scenario
from ogsim.service import ServiceProcess, site_document

Json = dict[str, Any]
RESTORES = ("restore", "deploy", "update_cache")


@dataclass
class ServeOptions:
    """How ``ogsim serve`` runs."""

    out: Path
    speed: float = 10.0
    host: str = "127.0.0.1"
    port: int = 0
    seed: int | None = None
    run_operations: bool = False
    until_idle: bool = False
    idle_wait: float = 2.0  # the agents' long poll (the service holds it at most 5 s)
    course: Path | None = None  # a course exercise's directory, shown by the console
    ogserver_listen: str = ""  # IP:PORT where ogServer's REST API is spoken (ogCLI, ogCp)


class Serve:
    """One ``ogsim serve`` run (see the module docstring)."""

    def __init__(
        self, scenario: Scenario, opts: ServeOptions, say: Callable[[str], None] = print
    ) -> None:
        self.scenario = scenario
        self.opts = opts
        self.say = say
        self.events: list[LogLine] = []
        self.submitted: dict[int, int] = {}  # service operation id → scenario index
        self.submitted_at: dict[int, float] = {}  # … and when (scenario seconds)
        self.ended: set[int] = set()
        self.wall0 = time.time()
        self.service: ServiceProcess | None = None
        self.console: Console | None = None
        self.fleet: Fleet | None = None
        self.url = ""
        self.agents = 0
        self.predict_s = 0.0

    def now(self) -> float:
        """Scenario seconds since the start."""
        return self.of(time.time())

    def of(self, wall: float | None) -> float:
        w = self.wall0 if wall is None else wall
        return round(max(0.0, w - self.wall0) * self.opts.speed, 3)

    # ------------------------------------------------------------------ start and stop

    def make_prediction(self) -> Prediction:
        """The simulator's run the agents play back (the scenario's, once, up front)."""
        return Prediction(self.scenario, self.opts.seed)

    def start(self) -> None:
        t0 = time.perf_counter()
        self.prediction = self.make_prediction()
        self.predict_s = time.perf_counter() - t0
        state = self.opts.out / "service"
        if state.exists():
            if not (state / "site.yaml").exists():
                raise RuntimeError(f"{state} exists and is not a previous serve's state")
            shutil.rmtree(state)
        self.service = ServiceProcess(state, site_document(self.scenario), self.opts.host,
                                      self.opts.port, course=self.opts.course,
                                      ogserver_listen=self.opts.ogserver_listen)  # fmt: skip
        self.url = self.service.url
        self.console = self.service.wait_ready()
        self.fleet = Fleet(self.prediction, self.console, self.service.url,
                           self.opts.out / "agents", self.opts.speed,
                           idle_wait=self.opts.idle_wait)  # fmt: skip
        self.fleet.start()
        self.agents = len(self.fleet.agents)
        self.wall0 = time.time()
        self.say(
            f"serving {self.scenario.name} ({len(self.fleet.agents)} simulated computers, "
            f"{self.opts.speed:g}x) at {self.service.url}/api/v1 — admin token in "
            f"{self.service.token_file}"
        )
        if self.opts.ogserver_listen:
            self.say(f"ogServer's REST API (ogCLI, ogCp) at http://{self.opts.ogserver_listen}")

    def stop(self) -> None:
        """Stop the agents, then the service (again: nothing)."""
        fleet, self.fleet = self.fleet, None
        if fleet is not None:
            fleet.close()
        service, self.service = self.service, None
        if service is not None:
            service.stop()

    # ------------------------------------------------------------------ the run

    def _submit(self, index: int) -> None:
        assert self.console is not None
        kind = self.scenario.spec.operations[index].kind
        try:
            sub = self.console.submit(index)
        except ConsoleError as exc:
            self.events.append(
                LogLine(t=self.now(), text=f"operation {index} ({kind}) refused: {exc}")
            )
            self.say(f"operation {index} ({kind}) refused: {exc}")
            return
        self.submitted[int(sub["op"])] = index
        self.submitted_at[int(sub["op"])] = self.now()
        text = f"operation {index} ({kind}) submitted as {sub['op']} to {len(sub['computers'])} computers"
        if "refused" in sub:
            text += f": refused ({sub['refused']['code']}) {sub['refused']['message']}"
        self.events.append(LogLine(t=self.now(), text=text))
        self.say(text)

    def _operations(self) -> list[Json]:
        assert self.console is not None
        return self.console.operations()

    def run(self) -> None:
        """Until interrupted, or the end ``run_operations`` / ``until_idle`` asks for."""
        todo = list(range(len(self.scenario.spec.operations))) if self.opts.run_operations else []
        quiet_since: float | None = None
        while True:
            for index in list(todo):
                if (
                    self.scenario.spec.operations[index].at / self.opts.speed
                    <= time.time() - self.wall0
                ):
                    todo.remove(index)
                    self._submit(index)
            ops = self._operations()
            for op in ops:
                if op["done"] and op["op"] not in self.ended:
                    self.ended.add(op["op"])
                    ok = sum(1 for r in op["records"] if r["status"] == "ok")
                    self.say(f"operation {op['index']} ({op['kind']}) submitted as {op['op']} "
                             f"ended: {ok}/{len(op['records'])} ok")  # fmt: skip
            idle = bool(ops) and all(op["done"] for op in ops) and not todo
            assert self.fleet is not None
            if idle and not self.fleet.busy():
                quiet_since = quiet_since or time.monotonic()
                if (
                    self.opts.run_operations or self.opts.until_idle
                ) and time.monotonic() - quiet_since >= 0.5:
                    return
            else:
                quiet_since = None
            time.sleep(0.1)

    # ------------------------------------------------------------------ results

    def results(self) -> Results:
        """Every operation the service holds, in the results' terms."""
        ops = [self._operation(op) for op in self._operations()]
        recs = [c for op in ops for c in op.computers]
        finished = [c.finished for c in recs if c.finished is not None]
        return Results(
            scenario=self.scenario.name,
            description=self.scenario.spec.description,
            backend="sim",
            seed=self.prediction.results.seed,
            scale=self.scenario.sim.scale,
            operations=ops,
            events=self.events,
            metrics=Metrics(
                makespan_s=max(finished) if finished else 0.0,
                computers=len({c.name for c in recs}),
                ok=sum(1 for c in recs if c.status == "ok"),
                failed=sum(1 for c in recs if c.status != "ok"),
                bytes_total=sum(c.bytes_moved for c in recs),
                wall_s=round(time.time() - self.wall0, 3),
                extra={
                    "serve": {
                        "speed": self.opts.speed,
                        "service": self.url,
                        "agents": self.agents,
                        "prediction_wall_s": round(self.predict_s, 3),
                        "note": "ogsim serve: the real console service; agents play back the "
                        "simulator's predicted records (times are wall seconds x speed)",
                    }
                },
            ),
        )

    def _operation(self, op: Json) -> OperationResult:
        index = op.get("index")
        index = int(index) if index is not None else self.submitted.get(int(op["op"]), -1)
        computers = [self._computer(r) for r in op["records"]]
        at = self.submitted_at.get(
            int(op["op"]), min((c.started for c in computers), default=self.now())
        )
        image = method = None
        scope = ""
        if 0 <= index < len(self.scenario.spec.operations):
            spec = self.scenario.spec.operations[index]
            body = getattr(spec, spec.kind)
            image = getattr(body, "image", None)
            method = str(body.method) if spec.kind in RESTORES else None
            scope = (
                scope_label(body.to) if hasattr(body, "to") else str(getattr(body, "computer", ""))
            )
        finished = [c.finished for c in computers if c.finished is not None]
        return OperationResult(
            index=index,
            kind=str(op["kind"]),
            at=at,
            image=image,
            method=method,
            scope=scope,
            computers=computers,
            makespan=round(max(finished) - at, 3) if finished else None,
        )

    def _computer(self, rec: Json) -> ComputerResult:
        return computer_result(rec, self.of)


def serve(scenario: Scenario, opts: ServeOptions, say: Callable[[str], None] = print) -> Path:
    """Run ``ogsim serve`` (see the module docstring); the results file written."""
    run = Serve(scenario, opts, say)
    try:
        run.start()
        try:
            run.run()
        except KeyboardInterrupt:
            say("interrupted: writing the results")
        with signals_ignored():  # while the results are written and everything stops
            try:
                path = run.results().write(opts.out / "results.json")
                Results.read(path)  # the file as written validates against the schema's model
            finally:
                run.stop()
    finally:
        run.stop()
    say(f"results: {path}")
    return path
