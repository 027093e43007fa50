"""The simulator: builds the network from a scenario, runs its operations and faults, and
returns ``Results``.

Operations are planned by the console (:mod:`ogref.console`: scope → one DeployRequest per
computer, with the classroom's multicast session, and the repository-mismatch refusal); each
computer then drives its own decision-core session (:mod:`ogsim.client`).  When each computer's
part starts is the console's command queue's rule (:mod:`ogref.command_queue`: one command at a
time per computer, images read after their create, one command per multicast address and port),
the same the lab server follows.  Deterministic for a seed: one ``random.Random``
feeds every random choice, and ties in time run in scheduling order.
"""

from __future__ import annotations

import gc
import random
import resource
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from ogref import console
from ogref.command_queue import CommandQueue, Job
from ogref.core.create import CreateRequest, CreateSession
from ogref.core.deploy import DeployRequest
from ogref.core.driver import CreateOracle, drive
from ogref.core.events import (
    CheckFilesystem,
    ExtendFilesystem,
    InspectTarget,
    Log,
    ReduceFilesystem,
    WriteImage,
)
from ogref.core.events import Source as ImageSource
from ogref.errors import OgError
from ogref.model import Image, MulticastSession
from ogref.site import BootSpec, CloneSpec, CreateSpec, OperationSpec, RestoreSpec
from ogsim.chunkcast_session import CastSession
from ogsim.client import SimClient
from ogsim.faults import apply_fault
from ogsim.hardware import HostHw, RepositoryHw
from ogsim.loop import Loop
from ogsim.multicast import McastSession, SessionState
from ogsim.network import Link, Network
from ogsim.node import Router, Source
from ogsim.progress import ComputerEvent, Emit, OperationEvent, nothing, operation_text
from ogsim.results import (
    ComputerResult,
    LinkSeries,
    LogLine,
    Metrics,
    OperationResult,
    Phase,
    Results,
)
from ogsim.scenario import Scenario
from ogsim.swarm import Swarm


class Simulation:
    """One run of a scenario on the simulator."""

    def __init__(self, scenario: Scenario, seed: int | None = None, emit: Emit = nothing) -> None:
        self.scenario = scenario
        self.emit = emit
        self.seed = scenario.spec.seed if seed is None else seed
        self.rng = random.Random(self.seed)
        self.loop = Loop()
        self.net = Network(self.loop)
        spec = scenario.spec
        router_hw = spec.network.router
        self.router = Router(
            self.net.link("router", router_hw.rate / 8, track=True),
            router_hw.delay,
            router_hw.multicast,
        )
        self.sources: dict[str, Source] = {}
        for repo in scenario.site.repositories:
            rhw = scenario.repositories[repo.name]
            addr = IPv4Address(repo.address or "10.0.0.1")
            self.sources[repo.name] = Source(
                name=repo.name,
                address=addr,
                subnet=None,
                uplink=self.net.link(f"{repo.name} uplink", rhw.uplink / 8, track=True),
                router=self.router,
                read=self.net.link(f"{repo.name} disk", rhw.read / 8),
                smb_overhead=rhw.smb_overhead,
                restart_s=rhw.restart,
                seeder_slots=rhw.seeder_slots,
                mcast_start_s=rhw.mcast_start,
                fec=repo.multicast_fec,
                torrent_start_s=rhw.torrent_start,
                **_smb_server(self.net, repo.name, rhw),
            )
        # a one-host lab: the computers' decompression shares the host's cores (else unset),
        # which together do ``shared_cpus_busy`` cores' work when they slow each other
        self.host_cpu: Link | None = None
        self.host_core = 0.0  # one core's work per second alone, in the host CPU link's units
        if scenario.sim.shared_cpus:
            per_core = max((h.decompress_rate for h in scenario.hosts.values()), default=0.0)
            cores = scenario.sim.shared_cpus_busy or float(scenario.sim.shared_cpus)
            self.host_core = per_core
            self.host_cpu = self.net.link("emulation host CPU", cores * per_core)
        # …and its computers' writeback shares the host's one disk (else each has its own)
        self.host_disk: Link | None = None
        if scenario.sim.shared_disk is not None:
            self.host_disk = self.net.link("emulation host disk", scenario.sim.shared_disk.rate / 8)
        self.clients: dict[str, SimClient] = {}
        for pc in scenario.site.computers:
            hw = scenario.hosts[pc.name]
            self.clients[pc.name] = SimClient(self, pc, hw, self.sources[pc.repository])
        self.masters: dict[str, Source] = {}
        self.sessions: dict[tuple[str, int, str], McastSession | CastSession] = {}
        self.swarms: dict[tuple[str, str], Swarm] = {}
        self.results = Results(
            scenario=scenario.name,
            description=spec.description,
            backend="sim",
            seed=self.seed,
            scale=scenario.sim.scale,
        )
        # the console's command queue: who may start when (ogref.command_queue)
        self.queue = CommandQueue()
        self._begins: dict[Job, Callable[[], None]] = {}
        self._records: dict[Job, ComputerResult] = {}
        self._told: dict[Job, str] = {}
        self._clones: dict[Job, set[Job]] = {}  # a clone's MASTER job → targets still running

    # ------------------------------------------------------------------ shared models

    def log_event(self, text: str) -> None:
        """A simulator-level event line (session started, receiver dropped…)."""
        self.results.events.append(LogLine(t=round(self.loop.now, 6), text=text))

    def multicast_session(
        self, source: Source, params: MulticastSession, image: Image, *, into_cache: bool = False
    ) -> McastSession | CastSession:
        """The multicast session for this file on this port (started by the first request):
        udp-sender's, or chunkcast's when the engine's ``MCASTPROTOCOL`` carries this transfer
        by chunkcast (the rule the engine's executors ask: :meth:`McastProtocol.carries`)."""
        key = (source.name, params.port, image.name)
        s = self.sessions.get(key)
        if s is None or s.state in (SessionState.DONE, SessionState.DEAD):
            protocol = self.scenario.site.policy.mcast_protocol
            if protocol.carries(into_cache=into_cache, chunked=image.chunked):
                s = CastSession(self, source, params, image)
            else:
                s = McastSession(self, source, params, image)
            self.sessions[key] = s
        return s

    def swarm(self, source: Source, image: Image) -> Swarm:
        """The swarm of this image (its tracker and seeder live on the repository)."""
        key = (source.name, image.name)
        if key not in self.swarms:
            self.swarms[key] = Swarm(self, source, image)
        return self.swarms[key]

    def master_source(self, name: str) -> Source:
        """A MASTER computer as a source of bytes (its own uplink)."""
        if name not in self.masters:
            c = self.clients[name]
            iface = IPv4Interface(c.computer.ip)
            self.masters[name] = Source(
                name=name,
                address=iface.ip,
                subnet=IPv4Network(iface.network),
                uplink=self.net.link(f"{name} uplink", c.hw.link_rate, track=True),
                router=self.router,
                read=None,
                smb_overhead=0.02,
            )
        return self.masters[name]

    # ------------------------------------------------------------------ operations

    def _schedule(self) -> None:
        for i, op in enumerate(self.scenario.spec.operations):
            self.loop.at(op.at, self._run_operation, op, i)
        for fault in self.scenario.spec.faults:
            self.loop.at(fault.at, apply_fault, self, fault)

    def _run_operation(self, op: OperationSpec, index: int) -> None:
        body = getattr(op, op.kind)
        res = OperationResult(index=index, kind=op.kind, at=op.at)
        self.results.operations.append(res)
        site = self.scenario.site
        jobs: list[tuple[Job, Callable[[], None]]] = []
        try:
            if isinstance(body, RestoreSpec):
                res.image, res.method = body.image, body.method
                res.scope = console.scope_label(body.to)
                pairs = console.build_requests(site, body, console.operation_for(op.kind))
                for pc, req in pairs:
                    jobs.append(self._start(res, console.job(index, pc.name, req), req))
            elif isinstance(body, CloneSpec):
                plan = console.plan_clone(site, body)
                res.image, res.method = plan.image.name, str(plan.method)
                res.scope = console.scope_label(body.to)
                master = self.master_source(body.master)
                targets = [console.job(index, p.computer, p.request) for p in plan.computers]
                jobs.append(self._master(body.master, targets))
                for p, j in zip(plan.computers, targets, strict=True):
                    jobs.append(
                        self._start(res, j, p.request, {plan.image.name: plan.image}, master)
                    )
            elif isinstance(body, BootSpec):
                res.scope = console.scope_label(body.to)
                for pc in site.scope(body.to):
                    jobs.append(self._boot(res, console.job(index, pc.name), body))
            elif isinstance(body, CreateSpec):
                writes = body.image if body.target == "REPO" else None
                jobs.append(
                    self._create(res, console.job(index, body.computer, writes=writes), body)
                )
        except OgError as exc:
            self._refuse(res, body, exc)
            self.emit(
                OperationEvent(index, f"{op.kind}: {exc.message}", "refused", t=self.loop.now)
            )
            return
        self.emit(
            OperationEvent(
                index,
                operation_text(op.kind, body, len(res.computers)),
                computers=len(res.computers),
                t=self.loop.now,
            )
        )
        self.queue.submit([j for j, _ in jobs])
        self._begins.update(jobs)
        self._dispatch(now=True)

    def _dispatch(self, now: bool = False) -> None:
        """Start what the command queue lets start; say in the tracking log who waits, and why."""
        for j in self.queue.startable():
            begin = self._begins.pop(j)
            if now:
                begin()
            else:
                self.loop.after(0.0, begin)
        for j, why in self.queue.waits().items():
            if self._told.get(j) != why:
                self._told[j] = why
                rec = self._records.get(j)
                if rec is not None:
                    rec.log.append(LogLine(t=self.loop.now, text=f"queued: {why}"))

    def _refuse(self, res: OperationResult, body: object, exc: OgError) -> None:
        to = getattr(body, "to", "all")
        try:
            scope = self.scenario.site.scope(to)
        except OgError:
            scope = ()
        for pc in scope:
            rec = ComputerResult(
                name=pc.name,
                classroom=pc.classroom,
                group=pc.group,
                status="refused",
                code=int(exc.code),
                message=exc.message,
                started=self.loop.now,
                finished=self.loop.now,
            )
            rec.log.append(LogLine(t=self.loop.now, text=f"refused by the console: {exc}"))
            res.computers.append(rec)
        self.log_event(f"operation {res.index} ({res.kind}) refused: {exc}")

    def _start(
        self,
        res: OperationResult,
        job: Job,
        req: DeployRequest,
        masters: dict[str, Image] | None = None,
        master: Source | None = None,
    ) -> tuple[Job, Callable[[], None]]:
        client = self.clients[job.computer]
        rec = ComputerResult(
            name=job.computer, classroom=client.computer.classroom, group=client.computer.group
        )
        res.computers.append(rec)
        self._records[job] = rec

        def begin() -> None:
            client.on_end = lambda: self._job_done(job)
            client.run(req, rec, masters, master)

        return job, begin

    def _master(self, name: str, targets: list[Job]) -> tuple[Job, Callable[[], None]]:
        """A clone's MASTER: busy (for the command queue) until its last target has ended."""
        master_job = Job(targets[0].op, name, session=targets[0].session)
        self._clones[master_job] = set(targets)
        return master_job, lambda: None

    def _tell(
        self, name: str, stage: str, status: str, *, code: int | None = None, note: str = "",
        final: bool = False,
    ) -> None:  # fmt: skip
        if self.emit is not nothing:
            self.emit(
                ComputerEvent(name, status, stage, note=note, code=code, final=final,
                              t=round(self.loop.now, 3))
            )  # fmt: skip

    def _job_done(self, job: Job) -> None:
        self.queue.finished(job)
        for master, left in list(self._clones.items()):
            left.discard(job)
            if not left:
                del self._clones[master]
                self.queue.finished(master)
        self._dispatch()

    def _boot(
        self, res: OperationResult, job: Job, spec: BootSpec
    ) -> tuple[Job, Callable[[], None]]:
        name = job.computer
        client = self.clients[name]
        rec = ComputerResult(
            name=name,
            classroom=client.computer.classroom,
            group=client.computer.group,
            method_requested="boot",
        )
        res.computers.append(rec)

        def begin() -> None:
            rec.started = self.loop.now
            if not client.alive:
                rec.status, rec.finished, rec.message = (
                    "crashed",
                    self.loop.now,
                    "the computer is off",
                )
                self._job_done(job)
                return
            try:
                plan = console.plan_boot(client.computer, spec.disk, spec.partition, spec.permanent)
            except OgError as exc:
                rec.status, rec.code, rec.message = "failed", int(exc.code), exc.message
                rec.finished = self.loop.now
                self._job_done(job)
                return
            boots = 1 + (1 if spec.permanent else 0) + (1 if plan.tracked_boots else 0)
            for step in plan.steps:
                rec.log.append(LogLine(t=self.loop.now, text=step))
            self._tell(name, "boot", "BSY")

            def done() -> None:
                rec.phases.append(_phase("boot", rec.started, self.loop.now, str(plan.status)))
                rec.status, rec.code = "ok", 0
                rec.message = f"booted {spec.disk}:{spec.partition} ({plan.status})"
                rec.finished = self.loop.now
                self._tell(name, "", str(plan.status), code=0, note=rec.message, final=True)
                self._job_done(job)

            self.loop.after(client.hw.boot_s * boots, done)

        self._records[job] = rec
        return job, begin

    def _create(
        self, res: OperationResult, job: Job, spec: CreateSpec
    ) -> tuple[Job, Callable[[], None]]:
        """createImage: the core's CreateSession driven against the model, each step timed."""
        client = self.clients[spec.computer]
        rec = ComputerResult(
            name=client.name,
            classroom=client.computer.classroom,
            group=client.computer.group,
            method_requested="create",
        )
        res.computers.append(rec)
        res.image = spec.image

        def begin() -> None:
            rec.started = self.loop.now
            self._tell(client.name, "create", "BSY")
            target = ImageSource.CACHE if spec.target == "CACHE" else ImageSource.REPO
            session = CreateSession(
                CreateRequest(spec.disk, spec.partition, target, spec.image, client.name),
                self.scenario.site.policy,
            )
            hw = client.hw
            t = self.loop.now
            phases: list[Phase] = []
            for cmd in drive(session, CreateOracle(client.computer)):
                took = _create_step_seconds(cmd, hw, session.used, target)
                if took:
                    phases.append(_phase(_CREATE_PHASE[type(cmd)], t, t + took, str(target)))
                    t += took
                if isinstance(cmd, Log):
                    rec.log.append(LogLine(t=t, text=cmd.text))
            result = session.result
            assert result is not None

            def done() -> None:
                rec.phases.extend(phases)
                rec.status = "ok" if result.ok else "failed"
                rec.code, rec.message = int(result.code), result.message
                rec.bytes_moved = float(session.written.stored_size) if session.written else 0.0
                rec.finished = self.loop.now
                self._tell(client.name, "", "OPG", code=rec.code, note=rec.message, final=True)
                self._job_done(job)

            self.loop.after(t - self.loop.now, done)

        self._records[job] = rec
        return job, begin

    # ------------------------------------------------------------------ run

    def run(self) -> Results:
        """Run the scenario to its end and return the results."""
        wall0 = time.perf_counter()
        self._schedule()
        with _COLLECTOR.quiet():
            end = self.loop.run()
        wall = time.perf_counter() - wall0
        for op in self.results.operations:
            for c in op.computers:
                if c.finished is None and c.status == "ok":
                    c.status = "failed"
                    c.message = "did not finish: the transfer stalled (nothing left to happen)"
            ends = [c.finished for c in op.computers if c.finished is not None]
            op.makespan = (max(ends) - op.at) if ends else None
        self.results.links = [_series(lk, end) for lk in self.net.links if lk.track]
        recs = [c for op in self.results.operations for c in op.computers]
        finished = [c.finished for c in recs if c.finished is not None]
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        self.results.metrics = Metrics(
            makespan_s=max(finished) if finished else 0.0,
            computers=len({c.name for c in recs}),
            ok=sum(1 for c in recs if c.status == "ok"),
            failed=sum(1 for c in recs if c.status != "ok"),
            bytes_total=sum(c.bytes_moved for c in recs),
            events=self.loop.events,
            wall_s=wall,
            events_per_s=self.loop.events / wall if wall > 0 else 0.0,
            peak_rss_mb=rss,
            extra={
                "recomputes": self.net.recomputes,
                "swarm_transfers": sum(s.transfers for s in self.swarms.values()),
            },
        )
        return self.results


class _Collector:
    """Python's cyclic garbage collector, made to scan less while runs are under way.

    A large run keeps ~10⁶ medium-lived objects (blocks in flight, their timers, phases): with
    the default thresholds every one is promoted and the whole heap rescanned ~15 times (20 %
    of a 10,000-PC swarm's time, measured with ``gc.callbacks``).  While a run's loop runs,
    what existed before it (the built site and models) is frozen out of the scans and young
    objects are collected every ``THRESHOLDS[0]`` allocations instead of 700.  Reference
    counting still frees what the models drop at once; nothing a run computes depends on when
    cycles are collected.  Nested or concurrent runs share one pause (a lock and a count)."""

    THRESHOLDS = (50_000, 20, 100)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs = 0
        self._saved = gc.get_threshold()

    @contextmanager
    def quiet(self) -> Iterator[None]:
        with self._lock:
            if self._runs == 0:
                self._saved = gc.get_threshold()
                gc.freeze()
                gc.set_threshold(*self.THRESHOLDS)
            self._runs += 1
        try:
            yield
        finally:
            with self._lock:
                self._runs -= 1
                if self._runs == 0:
                    gc.set_threshold(*self._saved)
                    gc.unfreeze()


_COLLECTOR = _Collector()


_CREATE_PHASE: dict[type, str] = {
    InspectTarget: "inspect",
    CheckFilesystem: "fsck",
    ReduceFilesystem: "reduce",
    WriteImage: "create",
    ExtendFilesystem: "extend",
}


def _smb_server(net: Network, name: str, rhw: RepositoryHw) -> dict[str, Any]:
    """A repository's SMB server model: its cores (a shared link) and its page cache."""
    out: dict[str, Any] = {"page_cache": float(rhw.page_cache)}
    if rhw.smb_stream is not None:
        out["smb_stream"] = rhw.smb_stream / 8
        out["smb_cpu"] = net.link(f"{name} SMB CPU", rhw.smb_cpus * rhw.smb_stream / 8)
    return out


def _create_step_seconds(cmd: object, hw: HostHw, used: int, target: ImageSource) -> float:
    """Seconds one createImage step takes on this hardware (0 for bookkeeping commands)."""
    if isinstance(cmd, InspectTarget):
        return hw.inspect_s
    if isinstance(cmd, CheckFilesystem):
        return 2.0 + used / (10 * hw.read_rate)
    if isinstance(cmd, ReduceFilesystem | ExtendFilesystem):
        return 1.0 + used / (20 * hw.read_rate)
    if isinstance(cmd, WriteImage):
        # partclone reads, the compressor works, and the stream goes to the share (or the CACHE)
        rate = min(hw.read_rate, hw.decompress_rate / 2)
        if target is ImageSource.REPO:
            rate = min(rate, hw.link_rate * 2)  # about 2:1 compression on the wire
        return used / rate
    return 0.0


def _phase(name: str, start: float, end: float, detail: str = "") -> Phase:
    return Phase(name=name, start=start, end=end, detail=detail)


def _series(link: Link, end: float) -> LinkSeries:
    t = [round(x, 6) for x in link.series_t]
    bps = [r * 8 for r in link.series_rate]
    if t and t[-1] < end:
        t.append(round(end, 6))
        bps.append(0.0)
    return LinkSeries(name=link.name, capacity_bps=link.capacity * 8, t=t, bps=bps)


def simulate(scenario: Scenario, seed: int | None = None, emit: Emit = nothing) -> Results:
    """Run ``scenario`` on the simulator (``emit`` is told what happens, in virtual time)."""
    return Simulation(scenario, seed, emit).run()
