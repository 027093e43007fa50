"""The ``libvirt`` backend of ``ogsim run``: a scenario's classroom as PXE-booting VMs.

``run(scenario, seed, out_dir)`` builds (or reuses) the live client and a test OS image named
after each of the scenario's images, brings the classroom up (:class:`Classroom`), wakes every
computer, waits for the live client (OPG, yellow), partitions each blank disk as the scenario
says (OS partition, CACHE or none), then runs the scenario's operations in order with the real
runtime inside the VMs: Restore/Deploy/updateCache (BSY, red; the decision core switches methods
and logs why), and boot (once: iPXE boots the local disk for one boot; permanent: the boot target
stays on the disk and a reset proves it survives a reboot).  A booted test OS reports its
hostname to the server (LNX).  Operation times are wall-clock seconds from the first wake-up;
``at`` offsets only order the operations.  Returns :class:`~ogsim.results.Results`; the run
directory keeps the serial consoles and ``results.json``.  ``destroy(run_dir)`` removes what an
interrupted run left (its manifest).

URIs: ``qemu:///system`` (default; daemons started here if none runs).  ``qemu+ssh://user@host/
system`` runs the VMs on another host: the network is created there, but this process still
serves boot files, the server and the SMB share on the bridge address — which exists only on the
VM host — so a remote run needs this backend started *on* that host (e.g. over ssh) or a bridge
reachable from here; the URI is plumbed through everything for that reason.
Limits: ≤ 8 VMs (2 TCG cores); MULTICAST and TORRENT transfers inside the VMs need the netns
lab's transports (``ogref/transports``), which the runtime's executor does not run yet.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

from ogref.console import build_requests, operation_for, plan_boot
from ogref.model.status import ClientStatus
from ogref.site import BootSpec, RestoreSpec
from ogsim.lab.libvirt import connection
from ogsim.lab.libvirt.classroom import Classroom
from ogsim.lab.libvirt.liveimage import DEFAULT_CACHE, test_os
from ogsim.lab.manifest import Manifest
from ogsim.results import ComputerResult, LogLine, Metrics, OperationResult, Phase, Results
from ogsim.scenario import Scenario

MAX_VMS = 8
REPO_ROOT = Path("/var/lib/oglab/repo")
MIB = 1024**2


def _payload_mib(stored: int) -> int:
    """Test-image payload so the stored image is about the scenario's size, within 64–256 MiB."""
    want = stored if stored <= 256 * MIB else 64 * MIB
    return max(48, min(236, want // MIB - 18))


class LibvirtRun:
    """One scenario on one classroom (see the module docstring)."""

    def __init__(
        self,
        scenario: Scenario,
        run_dir: Path,
        *,
        uri: str = connection.DEFAULT_URI,
        cache: Path = DEFAULT_CACHE,
        boot_timeout: float = 240.0,
        op_timeout: float = 600.0,
    ) -> None:
        self.sc = scenario
        self.site = scenario.site
        self.run_dir = run_dir
        self.uri = uri
        self.cache = cache
        self.boot_timeout = boot_timeout
        self.op_timeout = op_timeout
        self.events: list[LogLine] = []
        self.lab: Classroom | None = None

    def note(self, text: str) -> None:
        t = self.lab.now() if self.lab else 0.0
        self.events.append(LogLine(t=t, text=text))

    # ------------------------------------------------------------------ preparation

    def _repository(self) -> Path:
        # smbd serves it as 'nobody': not under the run dir, whose parents may be 0700 (pytest)
        repo = REPO_ROOT / self.run_dir.name
        Manifest(self.run_dir).record("file", str(repo))
        repo.mkdir(parents=True, exist_ok=True)
        for r in self.site.repositories:
            for image in r.images:
                built = test_os(self.cache, image.name, _payload_mib(image.stored_size))
                for f in Path(built["repo"]).iterdir():
                    shutil.copy2(f, repo / f.name)
                self.note(f"test image {image.name}: {built['stored_size']} bytes stored")
        for p in [REPO_ROOT.parent, REPO_ROOT, repo, *repo.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        return repo

    def _disk_bytes(self) -> int:
        sizes = [d.size for pc in self.site.computers for d in pc.disks.disks if d.number == 1]
        return max([*sizes, 1024 * MIB])

    # ------------------------------------------------------------------ run

    def run(self, seed: int) -> Results:
        names = [pc.name for pc in self.site.computers]
        if len(names) > MAX_VMS:
            raise ValueError(f"the libvirt lab runs at most {MAX_VMS} VMs ({len(names)} asked)")
        wall = time.monotonic()
        results = Results(
            scenario=self.sc.name,
            description=self.sc.spec.description,
            backend="libvirt",
            seed=seed,
            scale=(self.sc.spec.backends.libvirt.scale if self.sc.spec.backends.libvirt else 1.0),
        )
        try:
            return self._run(results, names, wall)
        finally:  # the repository copy (and anything else recorded) on every exit path
            Manifest(self.run_dir).destroy()

    def _run(self, results: Results, names: list[str], wall: float) -> Results:
        repo = self._repository()
        lab = Classroom(
            self.run_dir,
            names,
            uri=self.uri,
            disk_bytes=self._disk_bytes(),
            repo_dir=repo,
            cache=self.cache,
            log=self.note,
        )
        self.lab = lab
        with lab:
            results.metrics.extra["live_image"] = (
                {
                    k: lab.image.info.get(k)
                    for k in ("key", "initrd_bytes", "uncompressed_bytes", "cached")
                }
                if lab.image
                else {}
            )
            results.metrics.extra["kvm"] = lab.kvm
            results.metrics.extra["uri"] = self.uri
            lab.t0 = time.monotonic()
            boot = self._wake_all(names)
            results.operations.append(boot)
            setup = self._setup_disks(names, len(results.operations))
            results.operations.append(setup)
            for spec in self.site.operations:
                idx = len(results.operations)
                kind = spec.kind
                body = getattr(spec, kind)
                if isinstance(body, RestoreSpec):
                    results.operations.append(self._restore(idx, kind, body))
                elif isinstance(body, BootSpec):
                    results.operations.append(self._boot(idx, body))
                else:
                    self.note(f"operation {kind} is not run by the libvirt lab")
            results.metrics.extra["timings"] = dict(lab.timings)
        results.metrics.extra["timings"] = dict(lab.timings)
        results.events = self.events
        every = [c for op in results.operations for c in op.computers]
        results.metrics = Metrics(
            makespan_s=max((op.makespan or 0.0) + op.at for op in results.operations)
            if results.operations
            else 0.0,
            computers=len(names),
            ok=sum(1 for c in results.operations[-1].computers if c.status == "ok")
            if results.operations
            else 0,
            failed=sum(1 for c in every if c.status != "ok"),
            bytes_total=sum(c.bytes_moved for c in every),
            events=len(self.events),
            wall_s=round(time.monotonic() - wall, 2),
            extra=results.metrics.extra,
        )
        return results

    def _log_since(self, name: str, t: float) -> list[LogLine]:
        assert self.lab is not None and self.lab.server is not None
        return [LogLine(t=x, text=s) for x, s in self.lab.server.clients[name].log if x >= t]

    def _op(
        self, index: int, kind: str, at: float, recs: list[ComputerResult], **kw: Any
    ) -> OperationResult:
        end = max((c.finished or at) for c in recs) if recs else at
        return OperationResult(
            index=index, kind=kind, at=at, computers=recs, makespan=round(end - at, 3), **kw
        )

    def _wake_all(self, names: list[str]) -> OperationResult:
        lab = self.lab
        assert lab is not None and lab.server is not None
        at = lab.now()
        for n in names:
            lab.power_on(n)
            self.note(f"{n}: magic packet sent, domain started")
        recs = []
        for n in names:
            ok = lab.server.wait_status(n, ClientStatus.OPG, self.boot_timeout)
            c = lab.server.clients[n]
            t_ready = next((t for t, s in c.history if s is ClientStatus.OPG), None)
            recs.append(
                ComputerResult(
                    name=n,
                    classroom=self.site.computer(n).classroom,
                    status="ok" if ok else "failed",
                    code=0 if ok else None,
                    message=f"live client waiting (OPG, {ClientStatus.OPG.colour})"
                    if ok
                    else "live client did not report",
                    started=lab.seats[n].powered_at,
                    finished=t_ready,
                    phases=[
                        Phase(
                            name="pxe-boot", start=lab.seats[n].powered_at, end=t_ready or lab.now()
                        )
                    ],
                    log=self._log_since(n, 0),
                )
            )
        return self._op(0, "power-on", at, recs)

    def _setup_disks(self, names: list[str], index: int) -> OperationResult:
        lab = self.lab
        assert lab is not None and lab.server is not None
        at = lab.now()
        sent = {}
        for n in names:
            pc = self.site.computer(n)
            part = pc.disks.partition(1, 1)
            os_size = part.size if part else 512 * MIB
            sent[n] = lab.server.send(
                n, "setup", os_size=os_size, cache_size=pc.cache.size if pc.cache else 0
            )
        return self._op(index, "setup-disk", at, [self._collect(n, sent[n], at) for n in names])

    def _collect(self, n: str, cid: int, at: float, **kw: Any) -> ComputerResult:
        lab = self.lab
        assert lab is not None and lab.server is not None
        res = lab.server.wait_result(n, cid, self.op_timeout)
        end = lab.now()
        if res is None:
            return ComputerResult(
                name=n,
                status="crashed",
                message="no answer",
                started=at,
                finished=None,
                log=self._log_since(n, at),
                **kw,
            )
        code = int(res.get("code", 1))
        return ComputerResult(
            name=n,
            classroom=self.site.computer(n).classroom,
            status="ok" if code == 0 else "failed",
            code=code,
            message=str(res.get("message", "")),
            started=at,
            finished=end,
            log=self._log_since(n, at),
            **kw,
        )

    def _restore(self, index: int, kind: str, spec: RestoreSpec) -> OperationResult:
        lab = self.lab
        assert lab is not None and lab.server is not None
        at = lab.now()
        pairs = build_requests(self.site, spec, operation_for(kind))
        cfg = "\n".join(f"{k}={v}" for k, v in self.site_engine().items())
        sent = {}
        for pc, req in pairs:
            sent[pc.name] = lab.server.send(
                pc.name,
                "restore",
                share=lab.share,
                image=req.image,
                method=str(req.method),
                operation=str(req.operation),
                disk=req.disk,
                partition=req.partition,
                multicast=str(req.multicast) if req.multicast else "",
                torrent=str(req.torrent),
                engine_cfg=cfg,
            )
        recs = []
        for pc, req in pairs:
            r = self._collect(pc.name, sent[pc.name], at, method_requested=str(req.method))
            res = lab.server.clients[pc.name].results.get(sent[pc.name], {})
            used = res.get("method_used")
            reasons = list(res.get("reasons") or [])
            r.method_used = used
            r.switched = bool(used and used != str(req.method))
            r.fallback_reasons = reasons if r.switched else []
            r.phases = [
                Phase(
                    name="restore",
                    start=at,
                    end=r.finished or lab.now(),
                    detail=str(res.get("seconds", "")),
                )
            ]
            recs.append(r)
        return self._op(
            index, kind, at, recs, image=spec.image, method=spec.method, scope=str(spec.to)
        )

    def site_engine(self) -> dict[str, Any]:
        return dict(self.sc.spec.engine)

    def _boot(self, index: int, spec: BootSpec) -> OperationResult:
        lab = self.lab
        assert lab is not None and lab.server is not None
        at = lab.now()
        targets = self.site.scope(spec.to)
        kind = "boot-target" if spec.permanent else "boot-once"
        waits: dict[str, int] = {}
        for pc in targets:
            plan = plan_boot(pc, spec.disk, spec.partition, spec.permanent, "linux")
            client = lab.server.clients[pc.name]
            for step in plan.steps:
                lab.server.add_log(pc.name, f"{kind}: {step}")
            lab.set_boot(pc.name, "disk" if spec.permanent else "disk-once")
            waits[pc.name] = len(client.os_reports)
            self._reboot(pc.name)
        recs = []
        for pc in targets:
            recs.append(self._wait_os(pc.name, at, waits[pc.name] + 1, kind))
        if spec.permanent:
            again = lab.now()
            for pc in targets:
                lab.server.add_log(pc.name, "reboot (the boot target must survive it)")
                lab.reset(pc.name)
            for i, pc in enumerate(targets):
                second = self._wait_os(pc.name, again, waits[pc.name] + 2, kind)
                first = recs[i]
                ok = first.status == "ok" and second.status == "ok"
                recs[i] = first.model_copy(
                    update={
                        "status": "ok" if ok else "failed",
                        "message": f"{first.message}; after reboot: {second.message}",
                        "finished": second.finished,
                        "phases": [
                            *first.phases,
                            Phase(name="reboot", start=again, end=second.finished or lab.now()),
                        ],
                        "log": self._log_since(pc.name, at),
                    }
                )
        return self._op(index, kind, at, recs, scope=str(spec.to))

    def _reboot(self, name: str) -> None:
        lab = self.lab
        assert lab is not None and lab.server is not None
        if lab.server.clients[name].status is ClientStatus.OPG:
            lab.server.send(name, "reboot")
        else:  # a booted OS has no agent here: the console's reboot is a reset
            lab.reset(name)

    def _wait_os(self, name: str, at: float, nth: int, kind: str) -> ComputerResult:
        lab = self.lab
        assert lab is not None and lab.server is not None
        c = lab.server.clients[name]
        lab.server.wait(lambda: len(c.os_reports) >= nth, self.boot_timeout)
        if len(c.os_reports) < nth:
            return ComputerResult(
                name=name,
                classroom=self.site.computer(name).classroom,
                status="failed",
                message="the restored OS did not report",
                started=at,
                log=self._log_since(name, at),
            )
        rep = c.os_reports[nth - 1]
        host = str(rep.get("hostname", ""))
        ok = host == name and rep.get("status") == "LNX"
        return ComputerResult(
            name=name,
            classroom=self.site.computer(name).classroom,
            status="ok" if ok else "failed",
            code=0 if ok else None,
            message=f"{rep.get('status')} ({ClientStatus.LNX.colour}) hostname={host} root={rep.get('fstab_root', '')}",
            started=at,
            finished=float(rep["t"]),
            phases=[Phase(name=kind, start=at, end=float(rep["t"]))],
            log=self._log_since(name, at),
        )


def run(
    scenario: Scenario,
    seed: int | None = None,
    out_dir: Path | None = None,
    *,
    uri: str = connection.DEFAULT_URI,
    cache: Path = DEFAULT_CACHE,
) -> Results:
    """Run ``scenario`` on VMs; the run directory is ``out_dir`` (default ``out/<name>/libvirt-<seed>``)."""
    s = scenario.spec.seed if seed is None else seed
    run_dir = (out_dir or Path("out") / scenario.name / f"libvirt-{s}").resolve()
    results = LibvirtRun(scenario, run_dir, uri=uri, cache=cache).run(s)
    results.write(run_dir / "results.json")
    return results


def destroy(run_dir: Path) -> list[str]:
    """Remove everything an interrupted run's manifest recorded; return the errors."""
    return Manifest(run_dir).destroy()


_lock = threading.Lock()
