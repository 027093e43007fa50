"""A simulated client computer: drives one ``DeploySession`` per operation in virtual time.

Each command of the decision core is executed by the models (inspection and cache commands take
the host's ``inspect``/``format_cache`` times and change the cache through ``ModelOracle``;
``FetchToCache`` and ``RestorePartition`` become unicast flows, multicast receivers or swarm
peers; ``ConfigureOs`` takes ``postconf``) and answered with the event the core expects.  Every
decision — fallback, cache action, error code — is the core's; this module only keeps time,
records phases and applies faults to the running step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ogref.core.deploy import DeployRequest, DeploySession
from ogref.core.driver import ModelOracle, chunks_present
from ogref.core.events import (
    STAGE_OF,
    Command,
    ConfigureOs,
    DeleteCachedCopy,
    EmptyCache,
    Event,
    EvictFromCache,
    FailureKind,
    FetchToCache,
    Finish,
    FormatCache,
    InspectCache,
    InspectImage,
    InspectTarget,
    Log,
    MethodSwitched,
    RestoreFailed,
    RestorePartition,
    Source,
    TransferFailed,
    TransferFinished,
)
from ogref.errors import OgError
from ogref.model import Computer, Image, Transport
from ogsim.chunks import chunk_count, directories
from ogsim.disk import (
    DiskState,
    cache_restore_rate,
    cache_write_rate,
    chunked_restore_rate,
    direct_restore_rate,
    sync_bytes,
)
from ogsim.hardware import HostHw
from ogsim.multicast import Receiver
from ogsim.network import Flow, Link
from ogsim.progress import ComputerEvent, nothing
from ogsim.results import ComputerResult, LogLine, Phase
from ogsim.unicast import UnicastJob

if TYPE_CHECKING:
    from ogsim.node import Source as Node
    from ogsim.simulator import Simulation


MCAST_REQUEST_TRIES = 5
MCAST_REQUEST_RETRY_S = 10.0


class Job(Protocol):
    """A running step a fault can reach."""

    def refresh(self) -> None: ...

    def cancel(self) -> None: ...


class LocalJob:
    """A step that uses only the client's own disk and CPU (restore from the CACHE); on a
    one-host lab its flow crosses the host's shared ``links`` (default: the host's CPU)."""

    def __init__(
        self,
        client: SimClient,
        size: float,
        rate: Callable[[], float],
        on_ok: Callable[[float], None],
        links: tuple[Link, ...] | None = None,
        label: str = "local",
    ) -> None:
        self.client = client
        self.rate = rate
        if links is None:
            cpu = client.sim.host_cpu
            links = (cpu,) if cpu is not None else ()
        self.flow = Flow(size, links, rate(), lambda f: on_ok(size), label=f"{label} {client.name}")
        client.sim.net.start(self.flow)

    def refresh(self) -> None:
        self.client.sim.net.set_cap(self.flow, self.rate() if self.client.alive else 0.0)

    def cancel(self) -> None:
        self.client.sim.net.stop(self.flow)


class WritebackJob:
    """Dirty bytes a computer of a one-host lab writes back (``backends.sim.shared_disk``), in
    the order a loop device's flush takes: first the kernel's threads copy them into the
    backing file (``shared_disk.cpu``: one core at most, on the host's shared cores with the
    computers' CPU work), then the backing file's writeback crosses the host's one disk (alone
    at its measured rate, shared max-min fair with the other computers' writeback: a
    :class:`LocalJob` on that link), then the fixed latency (``shared_disk.fixed``: the journal
    commit, the disk's cache flush)."""

    def __init__(self, client: SimClient, nbytes: float, done: Callable[[], None]) -> None:
        self.client = client
        self.done = done
        self.nbytes = nbytes
        self.disk: LocalJob | None = None
        spec = client.sim.scenario.sim.shared_disk
        assert client.sim.host_disk is not None and spec is not None
        self.fixed = spec.fixed
        if spec.cpu:
            client._cpu_work(nbytes / (spec.cpu / 8), self._disk, "writeback")
        else:
            self._disk()

    def _disk(self) -> None:
        client = self.client
        disk = client.sim.host_disk
        assert disk is not None
        if not client.alive:
            return
        self.disk = LocalJob(
            client,
            self.nbytes,
            lambda: disk.capacity / client.disk.slowdown,
            lambda _n: client._after(self.fixed, self.done),
            links=(disk,),
            label="writeback",
        )

    def refresh(self) -> None:
        if self.disk is not None:
            self.disk.refresh()

    def cancel(self) -> None:
        if self.disk is not None:
            self.disk.cancel()


class SimClient:
    """One computer in the simulation."""

    def __init__(self, sim: Simulation, computer: Computer, hw: HostHw, repo: Node) -> None:
        self.sim = sim
        self.computer = computer
        self.name = computer.name
        self.hw = hw
        self.repo = repo
        self.disk = DiskState(hw)
        self.alive = True
        self.link_up = True
        self.loss = hw.loss
        self.oracle = ModelOracle(computer, sim.scenario.site.repository(computer.repository))
        self.session: DeploySession | None = None
        self.record: ComputerResult | None = None
        self.job: Job | None = None
        self.pending: list[Command] = []
        self.on_end: Callable[[], None] = lambda: None
        self._phase_start = 0.0
        self.uplink_source: Node | None = None

    # ------------------------------------------------------------------ running an operation

    def run(
        self,
        request: DeployRequest,
        record: ComputerResult,
        master_images: dict[str, Image] | None = None,
        master: Node | None = None,
    ) -> None:
        """Start one operation (the client is busy until it finishes)."""
        self.record = record
        record.started = self.sim.loop.now
        record.method_requested = str(request.method)
        record.status = "ok"  # provisional; Finish sets the real outcome
        if not self.alive:
            self._end("crashed", None, "the computer is off")
            return
        self.oracle.master_images = dict(master_images or {})
        self.oracle.clock = self.sim.loop.now
        self.master = master
        self.session = DeploySession(request, self.sim.scenario.site.policy)
        self.pending = self.session.start()
        self._pump()

    def _pump(self) -> None:
        assert self.session is not None and self.record is not None
        while self.pending and self.alive:
            cmd = self.pending.pop(0)
            if isinstance(cmd, Log):
                self.log(cmd.text)
            elif isinstance(cmd, MethodSwitched):
                self.record.switched = True
                self.emit("", note=f"switched {cmd.requested} → {cmd.used}: {cmd.reason}")
            elif isinstance(cmd, Finish):
                self._finish(cmd)
            elif isinstance(cmd, DeleteCachedCopy):
                self.oracle.answer(cmd)
            elif cmd.expects:
                self._execute(cmd)
                return

    def _answer(self, event: Event) -> None:
        if not self.alive or self.session is None or self.session.finished:
            return
        self.job = None
        self.pending = [*self.session.handle(event), *self.pending]
        self._pump()

    def _later(
        self, delay: float, phase: str, cmd: Command, *, cpu: bool = False, wait: float = 0.0
    ) -> None:
        """Answer ``cmd`` after ``delay``, then ``wait`` more (latency, not work); a ``cpu``
        step on a one-host lab (``shared_cpus``) is ``delay`` of work for one core, shared
        with the other computers' CPU work."""
        start = self.sim.loop.now

        def done() -> None:
            if not self.alive:
                return
            self.phase(phase, start)
            self._answer(self.oracle.answer(cmd))  # type: ignore[arg-type]

        def waited() -> None:
            self._after(wait, done)

        if cpu:
            self._cpu_work(delay, waited, phase, self._step_cores(phase))
            return
        self.sim.loop.after(delay, waited)

    def _cpu_work(
        self, seconds: float, done: Callable[[], None], label: str, cores: float = 1.0
    ) -> None:
        """``done`` after ``seconds`` of work that keeps ``cores`` cores busy alone — on a
        one-host lab (``shared_cpus``) shared with the other computers' CPU work."""
        host = self.sim.host_cpu
        shared = self.sim.scenario.sim.shared_cpus
        if host is not None and shared and seconds > 0:
            cap = self.sim.host_core * cores
            flow = Flow(
                seconds * cap, (host,), cap, lambda _f: done(), label=f"{label} {self.name}"
            )
            self.sim.net.start(flow)
            return
        self.sim.loop.after(seconds, done)

    def _writeback(self, nbytes: float, done: Callable[[], None]) -> None:
        """``done`` once ``nbytes`` dirty bytes are written back through a one-host lab's
        shared disk and its kernel threads (:class:`WritebackJob`)."""
        self.job = WritebackJob(self, nbytes, done)

    def _after(self, delay: float, then: Callable[[], None]) -> None:
        """``then`` after ``delay`` seconds, if the computer is still alive."""

        def go() -> None:
            if self.alive:
                then()

        if delay > 0:
            self.sim.loop.after(delay, go)
        else:
            go()

    def _request_image(self) -> Image | None:
        """The image of the running operation, from the site (None if unknown)."""
        if self.session is None:
            return None
        try:
            return self.sim.scenario.site.repository(self.computer.repository).image(
                self.session.request.image
            )
        except OgError:  # an unknown image or repository: the core answers for it
            return None

    def _step_cores(self, phase: str) -> float:
        """Cores a CPU step keeps busy: a chunked operation's inspection, ``hw.chunks.
        inspect_cpu`` (the host as a whole, measured); anything else one."""
        if phase != "inspect" or not self.hw.chunk_inspect_cpu:
            return 1.0
        image = self._request_image()
        return self.hw.chunk_inspect_cpu if image is not None and image.chunked else 1.0

    def _listing_s(self) -> float:
        """A chunked image's cache inspection: one SMB listing per chunk-store directory of the
        chunks the CACHE lacks (their stored sizes) — a round trip each, latency not work."""
        if not self.hw.chunk_list_s:
            return 0.0
        image = self._request_image()
        if image is None or not image.chunked:
            return 0.0
        missing = image.stored_size - chunks_present(self.oracle.cache, image)
        return directories(chunk_count(image, missing)) * self.hw.chunk_list_s

    def _execute(self, cmd: Command) -> None:
        hw = self.hw
        stage = STAGE_OF.get(type(cmd))
        if stage:
            total = float(getattr(getattr(cmd, "image", None), "stored_size", 0) or 0)
            self.emit(stage, total=total if stage in ("fetch", "restore") else 0.0)
        if isinstance(cmd, InspectCache):
            self._later(hw.inspect_s, "inspect", cmd, cpu=True, wait=self._listing_s())
        elif isinstance(cmd, InspectTarget | InspectImage):
            self._later(hw.inspect_s, "inspect", cmd, cpu=True)
        elif isinstance(cmd, FormatCache | EmptyCache | EvictFromCache):
            self._later(hw.format_cache_s, "format-cache", cmd)
        elif isinstance(cmd, ConfigureOs):
            self._later(hw.postconf_s, "postconf", cmd, cpu=True)
        elif isinstance(cmd, FetchToCache):
            self._fetch(cmd)
        elif isinstance(cmd, RestorePartition):
            self._restore(cmd)
        else:
            raise NotImplementedError(f"the simulator cannot execute {cmd!r}")

    # ------------------------------------------------------------------ transfers

    def _fetch(self, cmd: FetchToCache) -> None:
        sim = self.sim
        start = sim.loop.now
        image = cmd.image

        def ok(nbytes: float) -> None:
            assert self.record is not None
            self.oracle.clock = sim.loop.now
            ev = self.oracle.answer(cmd)
            if isinstance(ev, TransferFailed):  # no room: only a strict (1.1.1d) session asks
                fail(ev.kind, ev.detail)
                return
            assert isinstance(ev, TransferFinished)
            self.record.bytes_moved += nbytes
            self.record.checksum_verified = ev.checksum == image.checksum
            began = self._phase_start if cmd.transport is Transport.MULTICAST else start
            self.phase("fetch", began, nbytes, str(cmd.transport))
            self._answer(ev)

        def fail(kind: FailureKind, detail: str) -> None:
            self.phase("fetch", start, 0.0, f"failed: {detail}")
            self._answer(TransferFailed(kind, detail))

        if cmd.transport is Transport.UNICAST:
            # a chunked image's update moves only the chunks the CACHE lacks (the core's count)
            size = cmd.size if image.chunked else image.stored_size
            if image.chunked:
                self._chunk_fetch(image, float(size), ok)
                return
            self.job = UnicastJob(
                self,
                self.repo,
                float(size),
                lambda: cache_write_rate(self.disk),
                ok,
                f"smb {self.name}",
            )
        elif cmd.transport is Transport.MULTICAST:
            assert cmd.multicast is not None
            self._wait(
                self._start_delay(cmd), lambda: self._mcast(image, cmd.multicast, False, ok, fail)
            )
        else:
            self._wait(self._start_delay(cmd), lambda: self._torrent(cmd, ok))

    def _chunk_fetch(self, image: Image, size: float, ok: Callable[[float], None]) -> None:
        """A chunked UNICAST update (``hw.chunks``): its setup (connections, manifest), then the
        chunks' bytes on the wire while their per-chunk CPU work (client and server) runs —
        the later of the two ends it —, the request latency the workers do not hide, and the
        ``syncfs`` of what it wrote (its fixed cost, the kernel's dirty bytes at the disk's
        write rate, or through a one-host lab's shared disk: :class:`WritebackJob`).  With ``hw.chunks.fetch_cpu`` the CPU work (the host's whole, measured)
        runs from the update's start at that many cores, alongside the setup and the wire."""
        hw = self.hw
        n = chunk_count(image, size)
        left = {"wire", "cpu"}

        def part(what: str) -> None:
            left.discard(what)
            if left:
                return
            dirty = min(size, hw.dirty_bytes)
            if self.sim.host_disk is not None and dirty > 0:  # through the host's one disk
                self._after(
                    n * hw.chunk_request_s + hw.chunk_syncfs_s,
                    lambda: self._writeback(dirty, lambda: ok(size)),
                )
                return
            flush = dirty / self.disk.write
            self._after(n * hw.chunk_request_s + hw.chunk_syncfs_s + flush, lambda: ok(size))

        def transfer() -> None:
            self.job = UnicastJob(
                self,
                self.repo,
                size,
                lambda: cache_write_rate(self.disk),
                lambda _n: part("wire"),
                f"smb {self.name}",
            )
            if not hw.chunk_fetch_cpu:
                self._cpu_work(n * hw.chunk_cpu_s, lambda: part("cpu"), "chunks")

        if hw.chunk_fetch_cpu:  # the host's whole CPU of the update, from its start
            cores = hw.chunk_fetch_cpu
            self._cpu_work(n * hw.chunk_cpu_s / cores, lambda: part("cpu"), "chunks", cores)
        self._after(hw.chunk_setup_s, transfer)

    def _start_delay(self, cmd: FetchToCache) -> float:
        """The engine's STARTDELAY (the agent draws from the same policy), seeded."""
        return self.sim.scenario.site.policy.start_delay.draw(
            str(cmd.transport), self.sim.rng.randint
        )

    def _wait(self, delay: float, then: Callable[[], None]) -> None:
        if delay <= 0:
            then()
            return
        start = self.sim.loop.now

        def go() -> None:
            if self.alive:
                self.phase("wait", start, detail="random start delay")
                then()

        self.sim.loop.after(delay, go)

    def _mcast(
        self,
        image: Image,
        params: object,
        direct: bool,
        ok: Callable[[float], None],
        fail: Callable[[FailureKind, str], None],
    ) -> None:
        from ogref.model import MulticastSession

        assert isinstance(params, MulticastSession)
        joined = self.sim.loop.now

        def started() -> None:
            self.phase("barrier", joined, detail="waiting for the session to start")
            self._phase_start = self.sim.loop.now

        source = self.master if self.master is not None else self.repo
        rx = Receiver(self, direct, ok, fail, started)
        self.job = rx

        def request(tries: int) -> None:
            # ogMcastRequest: ask the repository to start the sender; 5 tries 10 s apart → 60
            if not self.alive:
                return
            if self.link_up and source.up:
                session = self.sim.multicast_session(source, params, image, into_cache=not direct)
                session.join(rx)
            elif tries >= MCAST_REQUEST_TRIES:
                fail(
                    FailureKind.JOIN,
                    f"cannot reach {source.name} to start the session "
                    f"({MCAST_REQUEST_TRIES} tries)",
                )
            else:
                self.sim.loop.after(MCAST_REQUEST_RETRY_S, request, tries + 1)

        request(1)

    def _torrent(self, cmd: FetchToCache, ok: Callable[[float], None]) -> None:
        session = cmd.torrent
        assert session is not None
        joined = self.sim.loop.now
        swarm = self.sim.swarm(self.repo, cmd.image)

        def data() -> None:
            self.phase("download", joined, float(cmd.image.stored_size), "torrent")
            self._phase_start = self.sim.loop.now

        def done(nbytes: float) -> None:
            self.phase("seeding", self._phase_start, detail=str(session))
            ok(nbytes)

        def go() -> None:
            if self.alive:
                self.job = swarm.join(self, session, data, done)

        # the peer's start-up (announce, handshakes) before its first piece (0 by default)
        if self.repo.torrent_start_s > 0:
            self.sim.loop.after(self.repo.torrent_start_s, go)
        else:
            go()

    def _restore(self, cmd: RestorePartition) -> None:
        sim = self.sim
        start = sim.loop.now
        image = cmd.image

        def streamed(nbytes: float) -> None:
            # the stream is in; partclone's sync writes back what the kernel still holds
            dirty = sync_bytes(self.disk, image)
            if dirty <= 0:
                ok(nbytes)
                return
            if self.sim.host_disk is not None:
                self._writeback(dirty, lambda: ok(nbytes))
                return
            self.job = LocalJob(self, dirty, lambda: self.disk.write, lambda _n: ok(nbytes))

        def ok(nbytes: float) -> None:
            assert self.record is not None
            if cmd.source is not Source.CACHE:
                self.record.bytes_moved += nbytes
            self.phase(
                "restore",
                self._phase_start if direct_mcast else start,
                nbytes,
                f"{cmd.source} {cmd.transport}",
            )
            self.oracle.clock = sim.loop.now
            self._answer(self.oracle.answer(cmd))  # type: ignore[arg-type]

        def fail(kind: FailureKind, detail: str) -> None:
            self.phase("restore", start, 0.0, f"failed: {detail}")
            self._answer(RestoreFailed(kind, detail))

        direct_mcast = False
        if cmd.source is Source.CACHE:
            if image.chunked:
                self._chunk_restore(image, lambda: ok(0.0))
                return
            self.job = LocalJob(
                self,
                float(image.data_size),
                lambda: cache_restore_rate(self.disk, image),
                lambda n: ok(0.0),
            )
            return
        source = self.master if cmd.source is Source.MASTER and self.master else self.repo
        if cmd.transport is Transport.MULTICAST:
            assert cmd.multicast is not None
            direct_mcast = True
            self._mcast(image, cmd.multicast, True, streamed, fail)
        else:
            self.job = UnicastJob(
                self,
                source,
                float(image.stored_size),
                lambda: direct_restore_rate(self.disk, image),
                streamed,
                f"smb-direct {self.name}",
            )

    def _chunk_restore(self, image: Image, ok: Callable[[], None]) -> None:
        """A chunked restore from the CACHE: its used blocks (not the filesystem's size).

        With ``hw.chunks.restore`` (measured alone) the chunks are processed at that rate —
        on a one-host lab with ``hw.chunks.restore_cpu`` known, as that many cores' work
        shared with the other computers — and the restore's final ``fsync`` then writes what
        the kernel still holds (up to ``hw.disk.dirty``) at the disk's rate, as a DIRECT
        restore's sync does — on a one-host lab with ``backends.sim.shared_disk``, through the
        host's one disk and its kernel threads, shared with the other computers' writeback
        (:class:`WritebackJob`).  Without it, the disk and decompression model."""
        hw = self.hw
        used = float(image.restored_size)
        if not hw.chunk_restore_rate:
            self.job = LocalJob(
                self, used, lambda: chunked_restore_rate(self.disk, image), lambda _n: ok()
            )
            return
        dirty = min(used, hw.dirty_bytes)

        def flush(_n: float) -> None:
            if dirty <= 0:
                ok()
                return
            if self.sim.host_disk is not None:
                self._writeback(dirty, ok)
                return
            self.job = LocalJob(self, dirty, lambda: self.disk.write, lambda _n: ok())

        host = self.sim.host_cpu
        shared = self.sim.scenario.sim.shared_cpus
        if hw.chunk_restore_cpu and host is not None and shared:
            core = self.sim.host_core
            work = used / hw.chunk_restore_rate * hw.chunk_restore_cpu * core
            self.job = LocalJob(self, work, lambda: hw.chunk_restore_cpu * core, flush)
            return
        self.job = LocalJob(self, used, lambda: hw.chunk_restore_rate, flush)

    # ------------------------------------------------------------------ outcome

    def _finish(self, fin: Finish) -> None:
        assert self.record is not None and self.session is not None
        rec = self.record
        rec.method_used = str(fin.method_used) if fin.method_used else None
        rec.fallback_reasons = [s.reason for s in self.session.switches]
        image = self._request_image() if self.hw.chunk_report_s else None
        if image is not None and image.chunked:  # the agent's report (hw.chunks.report)
            cores = self.hw.chunk_report_cpu or 1.0
            self._cpu_work(
                self.hw.chunk_report_s,
                lambda: self._after(
                    0.0, lambda: self._end("ok" if fin.ok else "failed", int(fin.code), fin.message)
                ),
                "report",
                cores,
            )
            return
        self._end("ok" if fin.ok else "failed", int(fin.code), fin.message)

    def _end(self, status: str, code: int | None, message: str) -> None:
        rec = self.record
        assert rec is not None
        rec.status = status  # type: ignore[assignment]
        rec.code = code
        rec.message = message
        rec.finished = self.sim.loop.now
        self.job = None
        self.session = None
        self.emit("", note=message, code=code, final=True)
        done, self.on_end = self.on_end, lambda: None
        done()

    def emit(
        self,
        stage: str,
        *,
        total: float = 0.0,
        done: float = 0.0,
        note: str = "",
        code: int | None = None,
        final: bool = False,
    ) -> None:
        """Tell the run's progress view what this computer does now (virtual time)."""
        if self.sim.emit is nothing:
            return
        rec = self.record
        if final:
            status = "OFF" if rec is not None and rec.status == "crashed" else "OPG"
        else:
            status = "BSY" if self.alive else "OFF"
        self.sim.emit(
            ComputerEvent(
                name=self.name,
                status=status,
                stage=stage,
                done=done,
                total=total,
                method=(rec.method_used or rec.method_requested or "") if rec else "",
                note=note,
                code=code,
                final=final,
                t=round(self.sim.loop.now, 3),
            )
        )

    def phase(self, name: str, start: float, nbytes: float = 0.0, detail: str = "") -> None:
        """Record a finished phase."""
        if self.record is not None:
            self.record.phases.append(
                Phase(name=name, start=start, end=self.sim.loop.now, bytes=nbytes, detail=detail)
            )
            if nbytes:
                self.emit(name, done=nbytes, total=nbytes)

    def log(self, text: str) -> None:
        """A tracking-log line."""
        if self.record is not None:
            self.record.log.append(LogLine(t=round(self.sim.loop.now, 6), text=text))

    # ------------------------------------------------------------------ faults

    def crash(self) -> None:
        """Power off: the running step stops and the operation ends as crashed."""
        if not self.alive:
            return
        self.alive = False
        self.link_up = False
        if self.job is not None:
            self.job.cancel()
        if self.record is not None and self.session is not None:
            self.log("client crashed")
            self._end("crashed", None, f"the computer crashed at {self.sim.loop.now:.1f}s")

    def changed(self) -> None:
        """Link, loss or disk changed: let the running step re-evaluate."""
        if self.job is not None:
            self.job.refresh()
