"""``ogsim course EXERCISE --backend netns``: the exercise's classroom in a namespace lab, held
up for the student's operations.

The lab is built as for ``ogsim run`` (:func:`ogsim.lab.netns.backend.build`: namespaces,
bridges, shaping, smbd, opentracker, the seeder, the repository control API, loop disks, one
real agent per computer) with every image of the repository made (scaled: the exercise's
``backends.netns.scale``, or the lab's default — said in the output), and the service given the
exercise (``--course OUT/course``, as on ``sim``).  The lab submits **no** operation: the student
does them in the web console, which the host's browser reaches through a TCP relay on
127.0.0.1 to the service's console socket (:class:`ogsim.lab.relay.Relay`).  Transfers,
restores, CACHE copies and tracking logs are the real ones.

Whenever every operation submitted has ended, the operations are read back from the service
and the exercise's expectations evaluated (:func:`ogsim.course.write_checks` →
:func:`ogsim.expect.evaluate`; ``checks.json`` and the report for the Exercise page).  Ctrl-C or
SIGTERM ends the course: a last evaluation, ``OUT/results.json`` written (backend ``netns``, times
in wall seconds since the classroom was up), then everything the lab created is destroyed from
its manifest (``OUT/lab/manifest.jsonl``; a course killed with SIGKILL is cleaned by
``ogsim destroy OUT/lab``).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ogref.site import OperationSpec
from ogsim.course import (
    as_asked,
    exercise_document,
    student_operations,
    write_checks,
    write_json,
)
from ogsim.lab.capabilities import probe, require
from ogsim.lab.clock import ScenarioClock
from ogsim.lab.console import Console
from ogsim.lab.manifest import Manifest, signals_held
from ogsim.lab.netns.backend import (
    Lab,
    LabOptions,
    _computer,
    _halt,
    _verify,
    build,
    lab_scale,
)
from ogsim.lab.relay import Relay
from ogsim.results import ComputerResult, HostRecord, LogLine, Metrics, OperationResult, Results
from ogsim.scenario import Scenario

Json = dict[str, Any]
MIB = 1024**2


class LabCourseError(RuntimeError):
    """The course cannot start here, or its lab was not wholly destroyed."""


@dataclass
class LabCourseOptions:
    """How ``ogsim course --backend netns`` runs."""

    out: Path
    user: str
    password: str
    port: int = 0  # the relay's port on 127.0.0.1 (0: a free one)
    host: str = "127.0.0.1"
    scale: float | None = None  # default: the exercise's backends.netns.scale, else the lab's
    until_done: bool = False  # stop after the first evaluation (scripts)
    agents_timeout: float = 90.0  # every live client reports (OPG) within this


class LabCourse:
    """One course on the netns lab (see the module docstring)."""

    def __init__(
        self, scenario: Scenario, opts: LabCourseOptions, say: Callable[[str], None] = print
    ) -> None:
        self.scenario = scenario
        self.opts = opts
        self.say = say
        self.course_dir = opts.out / "course"
        self.run_dir = opts.out / "lab"
        self.manifest = Manifest(self.run_dir)
        self.lab: Lab | None = None
        self.relay: Relay | None = None
        self.clock = ScenarioClock()
        self.events: list[LogLine] = []
        self.ended: set[int] = set()
        self.evaluated = -1  # operations ended at the last evaluation
        self.passed: bool | None = None
        self.scale = lab_scale(scenario, opts.scale)
        self.setup_s = 0.0
        self.notes: list[str] = []
        self.caps: HostRecord | None = None
        self.verified: dict[tuple[int, str], ComputerResult] = {}  # (op, pc) → after verify

    @property
    def console(self) -> Console:
        assert self.lab is not None and self.lab.console is not None
        return self.lab.console

    # ------------------------------------------------------------------ start and stop

    def start(self) -> None:
        """Build the lab (the caller destroys it from the manifest on every exit path), wait for
        every live client, make the console user and open the relay."""
        caps = probe()
        verdict = require(self.scenario, "netns", caps)  # refused before anything is made
        # listening first: a port in use is said before the lab is built (until the service is
        # up, a connection is closed at once)
        self.relay = Relay(self.run_dir / "console.sock", self.opts.port, self.opts.host)
        for old in (self.run_dir / "service", self.course_dir / "report"):
            if old.is_dir():  # an earlier course's database and report: not this student's
                shutil.rmtree(old)
        self.notes += verdict.notes
        self.course_dir.mkdir(parents=True, exist_ok=True)
        (self.course_dir / "checks.json").unlink(missing_ok=True)
        write_json(self.course_dir / "exercise.json",
                   exercise_document(self.scenario, "netns", 1.0))  # fmt: skip
        n = len(self.scenario.site.computers)
        self.say(f"building the netns lab of {self.scenario.name}: {n} computer(s), each a "
                 f"namespace with a loop disk and its live client (ogref.agent)…")  # fmt: skip
        t0 = time.time()
        opts = LabOptions(scale=self.scale, caps=caps, course=self.course_dir, every_image=True)
        self.caps = HostRecord(**caps.record(), notes=list(verdict.notes))
        self.lab = build(self.scenario, self.run_dir, self.manifest, opts)
        self.notes += self.lab.notes
        for name, src in self.lab.sources.items():
            img = next(i for r in self.scenario.site.repositories for i in r.images
                       if i.name == name)  # fmt: skip
            self.say(f"image {name} scaled ×{self.scale:g} for the lab: "
                     f"{_size(img.data_size)} of data → {_size(src.image.data_size)}, "
                     f"stored {_size(img.stored_size)} → {_size(src.image.stored_size)} "
                     f"(disks and CACHEs scaled alike)")  # fmt: skip
        self._wait_agents()
        self.console._call("PUT", f"/users/{self.opts.user}", {
            "name": self.opts.user, "password": self.opts.password, "role": "admin",
            "classrooms": []})  # fmt: skip
        self.setup_s = round(time.time() - t0, 3)
        self.clock = ScenarioClock()  # the course's time starts with the classroom up
        self.say(f"classroom up in {self.setup_s:.0f} s; the service's console socket is relayed "
                 f"to {self.relay.url}")  # fmt: skip

    def _wait_agents(self) -> None:
        deadline = time.monotonic() + self.opts.agents_timeout
        while True:
            off = [c["name"] for c in self.console.clients() if c["status"] == "OFF"]
            if not off:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"live clients not up after {self.opts.agents_timeout:.0f} s: "
                    f"{', '.join(off)} (see {self.run_dir}/clients/*/agent.out)"
                )
            time.sleep(0.3)

    def stop(self) -> None:
        """Close the relay and halt the service and agents (the manifest destroys the rest)."""
        relay, self.relay = self.relay, None
        if relay is not None:
            relay.close()
        lab, self.lab = self.lab, None
        if lab is not None:
            _halt(lab)
            if lab.console is not None:
                lab.console.close()

    # ------------------------------------------------------------------ the run

    def _operations(self) -> list[Json]:
        return self.console.operations()

    def run(self) -> None:
        """Until interrupted (or ``until_done``): evaluate whenever every operation submitted
        has ended."""
        while True:
            ops = self._operations()
            done = [op for op in ops if op["done"]]
            for op in done:
                if op["op"] not in self.ended:
                    self.ended.add(op["op"])
                    ok = sum(1 for r in op["records"] if r["status"] == "ok")
                    text = (
                        f"operation {op['op']} ({op['kind']}) ended: {ok}/{len(op['records'])} ok"
                    )
                    self.events.append(LogLine(t=self.clock.now(), text=text))
                    self.say(text)
                    self.verify(op)
            if ops and len(done) == len(ops) and len(done) != self.evaluated:
                self.evaluate(ops)
                if self.opts.until_done:
                    return
            time.sleep(0.3)

    def evaluate(self, ops: list[Json] | None = None) -> Results:
        """Read the student's operations back, check the expectations, draw the report, write
        ``checks.json`` and ``results.json``."""
        ops = self._operations() if ops is None else ops
        results = self.results(ops)
        results.write(self.opts.out / "results.json")
        _checks, self.passed = write_checks(self.scenario, results, self.course_dir, self.say)
        self.evaluated = sum(1 for op in ops if op["done"])
        return results

    def verify(self, op: Json) -> None:
        """As ``ogsim run --backend netns`` does: each partition an ended restore or deploy
        wrote, checked at once (fsck, and its file tree hashed against the image's source).
        Skipped for an image a create of the course may have replaced."""
        if op["kind"] not in ("restore", "deploy") or self.lab is None:
            return
        asked = {oid: {k: spec} for oid, k, spec in student_operations(self.console)}
        try:
            spec = OperationSpec.model_validate(asked.get(int(op["op"])))
        except ValueError:
            return
        body = getattr(spec, spec.kind)
        created = any(k == "create" and s.get("image") == body.image
                      for one in asked.values() for k, s in one.items())  # fmt: skip
        src = self.lab.sources.get(body.image)
        if created or src is None or body.disk != 1:
            return
        for rec in op["records"]:
            c = _computer(rec, self.clock, set())
            if c.status != "ok" or c.name not in self.lab.disks:
                continue
            _verify(self.lab, c, src, body.partition, self.clock)
            self.verified[(int(op["op"]), c.name)] = c
            self.say(f"  {c.name}: {c.phases[-1].detail}")

    # ------------------------------------------------------------------ results

    def results(self, ops: list[Json]) -> Results:
        """Every operation the service holds, in the results' terms; the student's Nth step
        (restore, deploy, update_cache, clone, create, boot) is the exercise's operation N."""
        asked = {oid: {kind: spec} for oid, kind, spec in student_operations(self.console)}
        index = {oid: i for i, oid in enumerate(sorted(asked))}
        out = [self._operation(op, index.get(int(op["op"]), -1), asked.get(int(op["op"])))
               for op in ops]  # fmt: skip
        recs = [c for op in out for c in op.computers]
        finished = [c.finished for c in recs if c.finished is not None]
        lab = self.lab
        return Results(
            scenario=self.scenario.name,
            description=self.scenario.spec.description,
            backend="netns",
            seed=self.scenario.spec.seed,
            scale=self.scale,
            operations=out,
            events=[*(LogLine(t=0.0, text=n) for n in self.notes), *self.events],
            metrics=Metrics(
                makespan_s=max(finished) if finished else 0.0,
                computers=len(self.scenario.site.computers),
                ok=sum(1 for c in recs if c.status == "ok"),
                failed=sum(1 for c in recs if c.status != "ok"),
                bytes_total=sum(c.bytes_moved for c in recs),
                wall_s=round(time.time() - self.clock.wall0, 3),
                extra={
                    "setup_s": self.setup_s,
                    "course": {
                        "note": "ogsim course on the netns lab: the student's operations, run by "
                        "the real service and agents; times are wall seconds since the "
                        "classroom was up (the student's thinking time included)",
                        "console": self.relay.url if self.relay else "",
                    },
                    "images": {
                        n: {
                            "stored": s.image.stored_size,
                            "data": s.image.data_size,
                            "files": s.files,
                        }
                        for n, s in (lab.sources.items() if lab else [])
                    },
                    "notes": self.notes,
                },
            ),
            host=self.caps,
        )

    def _operation(self, op: Json, index: int, asked: Json | None) -> OperationResult:
        computers = [
            self.verified.get((int(op["op"]), r["name"])) or _computer(_ended(r), self.clock, set())
            for r in op["records"]
        ]
        at = min((c.started for c in computers), default=self.clock.now())
        finished = [c.finished for c in computers if c.finished is not None]
        out = OperationResult(
            index=index,
            kind=str(op["kind"]),
            at=at,
            computers=computers,
            makespan=round(max(finished) - at, 3) if finished else None,
        )
        return as_asked(out, asked)


STATUSES = ("ok", "failed", "crashed", "refused", "not_started")


def _ended(rec: Json) -> Json:
    """``rec`` with a status the results know: a computer still at work when the course ends
    is ``not_started`` (its command did not end), as ``ogsim serve`` records it."""
    status = str(rec.get("status", "not_started"))
    if status in STATUSES:
        return rec
    return {**rec, "status": "failed" if rec.get("final") else "not_started"}


def _size(n: float) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", MIB), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


def run_lab_course(
    scenario: Scenario, opts: LabCourseOptions, say: Callable[[str], None] = print
) -> Path:
    """Run a course exercise on the netns lab until interrupted (or, with ``until_done``, the
    first evaluation); the results file written.  Everything the lab made is destroyed from its
    manifest on every exit path (Ctrl-C and SIGTERM included); a destroy that failed part-way
    raises :class:`LabCourseError` naming what is left (``ogsim destroy OUT/lab`` retries it)."""
    opts = dataclasses.replace(opts, out=opts.out.resolve())
    opts.out.mkdir(parents=True, exist_ok=True)
    run = LabCourse(scenario, opts, say)
    path = opts.out / "results.json"
    if run.manifest.pending():  # not this run's to destroy: refused before the try below
        raise LabCourseError(
            f"{run.run_dir} holds what an earlier run left (it was killed): destroy it first "
            f"with `ogsim destroy {run.run_dir}`, or choose another --out"
        )
    try:
        run.start()
        assert run.relay is not None
        ex = scenario.spec.exercise
        assert ex is not None
        say(f"exercise {scenario.name}: {ex.title.en} / {ex.title.es}")
        say(f"console: {run.relay.url}/ui/course  user: {opts.user}  password: {opts.password}")
        say("do the exercise in the console; Ctrl-C (or SIGTERM) ends the course and destroys "
            "the lab")  # fmt: skip
        try:
            run.run()
        except KeyboardInterrupt:
            say("interrupted: evaluating and writing the results")
        # further Ctrl-C / SIGTERM are held while the results are read and the lab stops (and
        # delivered after: the manifest's destroy below holds them too)
        with signals_held():
            ops = run._operations()
            if not ops:
                run.results(ops).write(path)
                say("no operation was submitted: nothing to evaluate")
            elif sum(1 for op in ops if op["done"]) != run.evaluated:
                run.evaluate(ops)
            Results.read(path)  # the file as written validates against the schema's model
            run.stop()
    finally:
        with signals_held():
            run.stop()
        errors = run.manifest.destroy()
        if errors:
            raise LabCourseError(
                f"the lab was not wholly destroyed: {'; '.join(errors)} "
                f"(retry: ogsim destroy {run.run_dir})"
            )
    say(f"results: {path}")
    say(f"lab destroyed ({run.run_dir / 'manifest.destroyed'})")
    return path
