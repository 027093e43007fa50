"""Course exercises (``scenarios/course/*.yaml``, ``ogsim course``): a scenario with an
``exercise:`` block (title and task in Spanish and English) whose classroom is served on the
console, whose ``expect:`` is the expected outcome and whose ``operations:`` are the reference
solution.  The student does the operations in the web console; the student's Nth operation is
checked as the scenario's operation N.

On the sim backend (:mod:`ogsim.serve`'s machinery) an agent given a command plays back what the
simulator predicts for *the operation the student submitted* — not the reference solution's —
so a wrong method or image gives the records it would give: every student operation is
simulated when its first command is handed out, together with the student's earlier
operations (their caches, their queue), by :class:`CoursePrediction`.

When every operation submitted has ended, :class:`Course` reads them back from the service
(:meth:`ogsim.serve.Serve.results`), evaluates the exercise's expectations with
:func:`ogsim.expect.evaluate`, draws the run's report (:func:`ogsim.report.build.build_one`)
and writes ``OUT/course/checks.json``; the service was started with ``--course OUT/course``
and shows them (:mod:`ogref.service.web.course`).  ``OUT/course/exercise.json``, written at the
start, is how the service knows the exercise: its texts and its expectations (pending until the
first evaluation).  Files are replaced atomically (the service reads them at any time).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ogref.console import scope_label
from ogref.errors import ConfigError
from ogref.site import OperationSpec, read_yaml
from ogsim.expect import Check, evaluate
from ogsim.lab.console import Console
from ogsim.lab.manifest import signals_ignored
from ogsim.prediction import Prediction
from ogsim.results import ComputerResult, Metrics, OperationResult, Results
from ogsim.scenario import Scenario, build_scenario
from ogsim.serve import Serve, ServeOptions

Json = dict[str, Any]
COURSE_DIR = Path(__file__).resolve().parent.parent / "scenarios" / "course"
SIMULATED = ("restore", "deploy", "update_cache", "clone", "create", "boot")


# --------------------------------------------------------------------------- exercises


def exercise_files(root: Path = COURSE_DIR) -> list[Path]:
    """The exercise files under ``root``, by name."""
    return sorted(root.glob("*.yaml"))


def load_exercise(path: Path) -> Scenario:
    """Read and validate an exercise: a scenario that has an ``exercise:`` block
    (:class:`ogref.errors.ConfigError` naming the file, the YAML path and the reason)."""
    data = read_yaml(path)
    scenario = build_scenario(data, source=str(path), default_name=path.stem)
    if scenario.spec.exercise is None:
        raise ConfigError(
            "a course exercise needs an 'exercise:' block (title and task, es and en)",
            source=str(path),
            path="exercise",
        )
    if not scenario.spec.expect:
        raise ConfigError(
            "a course exercise needs expectations: nothing would say whether the student succeeded",
            source=str(path),
            path="expect",
        )
    if not scenario.spec.operations:
        raise ConfigError(
            "a course exercise needs its reference solution (the operations the student should do)",
            source=str(path),
            path="operations",
        )
    return scenario


def find_exercise(name: str, root: Path = COURSE_DIR) -> Path:
    """An exercise by file path, file name, stem, or a prefix of one stem."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    files = exercise_files(root)
    exact = [f for f in files if f.stem == name or f.name == name]
    if exact:
        return exact[0]
    starts = [f for f in files if f.stem.startswith(name)]
    if len(starts) == 1:
        return starts[0]
    known = ", ".join(f.stem for f in files) or "none"
    if starts:
        raise LookupError(f"{name!r} names several exercises: {', '.join(f.stem for f in starts)}")
    raise LookupError(f"no exercise {name!r} in {root} (exercises: {known})")


def pending_checks(scenario: Scenario) -> list[str]:
    """The names of the exercise's expectations (as :func:`ogsim.expect.evaluate` words them),
    before anything ran."""
    empty = Results(
        scenario=scenario.name, backend="sim", seed=scenario.spec.seed, scale=1.0,
        operations=[], metrics=Metrics(makespan_s=0.0, computers=0, ok=0, failed=0,
                                       bytes_total=0.0, wall_s=0.0),
    )  # fmt: skip
    return [c.name for c in evaluate(empty, scenario.spec.expect)]


def exercise_document(scenario: Scenario, backend: str, speed: float) -> Json:
    """What the service is told about the exercise (``exercise.json``)."""
    ex = scenario.spec.exercise
    assert ex is not None
    return {
        "name": scenario.name,
        "source": Path(scenario.source).name,
        "title": ex.title.model_dump(),
        "task": ex.task.model_dump(),
        "hints": [h.model_dump() for h in ex.hints],
        "classrooms": [r.name for r in scenario.site.classrooms],
        "steps": len(scenario.spec.operations),
        "expectations": pending_checks(scenario),
        "backend": backend,
        "speed": speed,
    }


def write_json(path: Path, doc: Json) -> None:
    """``doc`` into ``path``, replaced atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def check_json(c: Check) -> Json:
    return {
        "name": c.name,
        "ok": c.ok,
        "applicable": c.applicable,
        "expected": c.expected,
        "actual": c.actual,
        "offenders": list(c.offenders),
    }


def student_operations(console: Console) -> list[tuple[int, str, Json]]:
    """The operations submitted so far that count as the exercise's steps (restore, deploy,
    update_cache, clone, create, boot), oldest first: ``(service id, kind, spec)``."""
    got = console._call("GET", "/operations?limit=500")["operations"]
    ops = [
        (int(o["op"]), str(o["kind"]), dict(o["spec"] or {})) for o in got if o["kind"] in SIMULATED
    ]
    return sorted(ops)


def as_asked(out: OperationResult, asked: Json | None) -> OperationResult:
    """``out`` with the image, method and scope of the operation the student submitted
    (``{kind: spec}``; unchanged when it is not a site operation)."""
    try:
        spec = OperationSpec.model_validate(asked)
    except ValueError:  # not one the simulator models (None), or not a site operation
        return out
    body = getattr(spec, spec.kind)
    to = getattr(body, "to", None)
    return out.model_copy(
        update={
            "image": getattr(body, "image", None),
            "method": str(body.method) if hasattr(body, "method") else None,
            "scope": scope_label(to) if to is not None else str(getattr(body, "computer", "")),
        }
    )


def write_checks(
    scenario: Scenario, results: Results, course_dir: Path, say: Callable[[str], None] = print
) -> tuple[list[Check], bool]:
    """Evaluate the exercise's expectations on the student's ``results``
    (:func:`ogsim.expect.evaluate`), draw the run's report and write ``checks.json`` for the
    console; the checks and whether the exercise is passed."""
    from ogsim.report.build import build_one

    checks = evaluate(results, scenario.spec.expect)
    counted = [c for c in checks if c.applicable]
    steps = len(scenario.spec.operations)
    done = len([op for op in results.operations if op.index >= 0])
    passed = bool(counted) and all(c.ok for c in counted) and done >= steps
    report = build_one(results, course_dir / "report")
    write_json(
        course_dir / "checks.json",
        {
            "evaluated_at": time.time(),
            "operations": done,
            "steps": steps,
            "passed": passed,
            "checks": [check_json(c) for c in checks],
            "report": str(report.relative_to(course_dir)),
        },
    )
    verdict = "PASSED" if passed else "not passed"
    held = sum(1 for c in counted if c.ok)
    say(f"exercise {scenario.name}: {held}/{len(counted)} expectations hold "
        f"after {done} of {steps} operation(s): {verdict}")  # fmt: skip
    return checks, passed


# --------------------------------------------------------------------------- the run


class CoursePrediction(Prediction):
    """Predictions of the operations the student submits (see the module docstring)."""

    def __init__(self, scenario: Scenario, seed: int | None, console: Callable[[], Console]):
        super().__init__(scenario, seed)
        self.console = console
        self.ops: list[tuple[int, str, Json]] = []  # (service id, kind, spec) in id order
        self.variants: dict[int, Results] = {}  # student index → its simulated run
        self._sim_lock = threading.Lock()

    def student_operations(self) -> list[tuple[int, str, Json]]:
        """The operations submitted so far that the simulator models, oldest first."""
        return student_operations(self.console())

    def index_of(self, op_id: int) -> int | None:
        for i, (oid, _k, _s) in enumerate(self.ops):
            if oid == op_id:
                return i
        self.ops = self.student_operations()
        return next((i for i, (oid, _k, _s) in enumerate(self.ops) if oid == op_id), None)

    def variant(self, index: int) -> Results:
        """The student's operations 0…index simulated in order, on the exercise's classroom."""
        with self._sim_lock:
            if index in self.variants:
                return self.variants[index]
            from ogsim.simulator import simulate

            data = read_yaml(Path(self.scenario.source))
            data["operations"] = [
                {"at": 0, kind: {k: v for k, v in spec.items() if k != "at"}}
                for _oid, kind, spec in self.ops[: index + 1]
            ]
            data["expect"] = []
            data.pop("exercise", None)
            sc = build_scenario(data, source=self.scenario.source, default_name=self.scenario.name)
            self.variants[index] = simulate(sc, self.results.seed)
            return self.variants[index]

    def match(self, cmd: Json, computer: str) -> int | None:
        op = int(cmd.get("op", -1))
        with self._lock:
            if op not in self.index_of_op:
                index = self.index_of(op)
                if index is None:
                    return None
                self.index_of_op[op] = index
            return self.index_of_op[op]

    def record(self, index: int, computer: str) -> ComputerResult | None:
        if index >= len(self.ops):
            return None
        for op in self.variant(index).operations:
            if op.index == index:
                return next((c for c in op.computers if c.name == computer), None)
        return None

    def span(self, index: int) -> tuple[float, float]:
        for op in self.variant(index).operations:
            if op.index == index and op.computers:
                start = min(c.started for c in op.computers)
                return start, max((c.finished or c.started) for c in op.computers)
        return 0.0, 0.0


@dataclass
class CourseState:
    """What has been evaluated so far."""

    evaluated: int = 0  # operations ended when last evaluated
    passed: bool | None = None


class Course(Serve):
    """``ogsim course`` on the sim backend: :class:`ogsim.serve.Serve` with the student's
    operations predicted as submitted and the expectations evaluated as they end."""

    def __init__(
        self, scenario: Scenario, opts: ServeOptions, say: Callable[[str], None] = print
    ) -> None:
        super().__init__(scenario, opts, say)
        self.course_dir = opts.course or opts.out / "course"
        self.state = CourseState()

    def make_prediction(self) -> Prediction:
        def console() -> Console:
            assert self.console is not None
            return self.console

        return CoursePrediction(self.scenario, self.opts.seed, console)

    def start(self) -> None:
        self.course_dir.mkdir(parents=True, exist_ok=True)
        (self.course_dir / "checks.json").unlink(missing_ok=True)
        write_json(
            self.course_dir / "exercise.json",
            exercise_document(self.scenario, "sim", self.opts.speed),
        )
        super().start()
        # the reference solution (simulated up front) should meet the exercise's expectations
        wrong = [c for c in evaluate(self.prediction.results, self.scenario.spec.expect)
                 if c.applicable and not c.ok]  # fmt: skip
        for c in wrong:
            self.say(f"warning: the exercise's own operations do not meet: {c.name} "
                     f"(expected {c.expected}, simulated {c.actual})")  # fmt: skip

    def run(self) -> None:
        """Until interrupted (or ``until_idle``): evaluate whenever every operation submitted
        has ended and the agents are idle."""
        assert self.fleet is not None
        while True:
            ops = self._operations()
            done = [op for op in ops if op["done"]]
            for op in done:
                if op["op"] not in self.ended:
                    self.ended.add(op["op"])
                    ok = sum(1 for r in op["records"] if r["status"] == "ok")
                    self.say(f"operation {op['op']} ({op['kind']}) ended: "
                             f"{ok}/{len(op['records'])} ok")  # fmt: skip
            idle = bool(ops) and len(done) == len(ops) and not self.fleet.busy()
            if idle and len(done) != self.state.evaluated:
                self.evaluate()
                self.state.evaluated = len(done)
                if self.opts.until_idle:
                    return
            time.sleep(0.2)

    def _operation(self, op: Json) -> OperationResult:
        """As :meth:`Serve._operation`, with the image, method and scope the student asked for
        (not the reference solution's)."""
        out = super()._operation(op)
        assert isinstance(self.prediction, CoursePrediction)
        asked = next(({k: s} for oid, k, s in self.prediction.ops if oid == int(op["op"])), None)
        return as_asked(out, asked)

    def _index(self) -> None:
        """Each student operation's scenario index: its rank among the simulated kinds."""
        assert isinstance(self.prediction, CoursePrediction)
        self.prediction.ops = self.prediction.student_operations()
        for i, (oid, _k, _s) in enumerate(self.prediction.ops):
            self.submitted[oid] = i

    def evaluate(self) -> list[Check]:
        """Read the student's operations back, check the expectations, draw the report and
        write ``checks.json``."""
        self._index()
        results = self.results()
        results.write(self.opts.out / "results.json")
        checks, self.state.passed = write_checks(self.scenario, results, self.course_dir, self.say)
        return checks


def run_course(
    scenario: Scenario,
    opts: ServeOptions,
    user: str,
    password: str,
    say: Callable[[str], None] = print,
) -> Path:
    """Run a course exercise on the sim backend until interrupted (or, with ``until_idle``, the
    first evaluation); the results file written."""

    opts.course = opts.course or opts.out / "course"
    run = Course(scenario, opts, say)
    try:
        run.start()
        assert run.console is not None
        run.console._call("PUT", f"/users/{user}", {"name": user, "password": password,
                                                     "role": "admin", "classrooms": []})  # fmt: skip
        ex = scenario.spec.exercise
        assert ex is not None
        say(f"exercise {scenario.name}: {ex.title.en} / {ex.title.es}")
        say(f"console: {run.url}/ui/course  user: {user}  password: {password}")
        say("do the exercise in the console; Ctrl-C ends the course")
        try:
            run.run()
        except KeyboardInterrupt:
            say("interrupted: writing the results")
        with signals_ignored():
            try:
                run._index()
                path = run.results().write(opts.out / "results.json")
                Results.read(path)
            finally:
                run.stop()
    finally:
        run.stop()
    say(f"results: {path}")
    return path
