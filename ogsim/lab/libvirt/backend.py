"""The ``libvirt`` backend of ``ogsim run``: a scenario's classroom as PXE-booting VMs.

``run(scenario, seed, out_dir)`` builds (or reuses) the live client and a test OS image named
after each of the scenario's images, prepares each VM's disk as the scenario says (OS partition,
CACHE or none — the netns lab's disk builder, on the host, before the VM exists), brings the
classroom up (:class:`Classroom`: network, boot server, and the same server and repository
services as the netns lab on the bridge), wakes every computer and waits for its live client —
the real agent, ``ogref.agent`` — to report (OPG, yellow).  Then it runs the scenario's
operations in order: Restore/Deploy/updateCache are submitted to the server by operation index,
exactly as the netns backend does (the agents run the decision core with the network transports:
SMB, multicast, BitTorrent; BSY, red), and boot is the console's "boot once" (the boot server
sends that MAC to its own disk for one boot, the server reboots the live client) or "boot target"
(permanent, and a hard reset proves it survives a reboot); the booted test OS reports its
hostname to the server (LNX).  ``results.operations[i]`` is always the scenario's operation ``i``;
the power-on and disk preparation are events and ``metrics.extra`` timings.  A computer's
``hw.firmware`` (``bios``, ``uefi``, ``uefi-secureboot``) picks its VM's firmware and network
boot (:mod:`ogsim.lab.libvirt.firmware`); a UEFI computer's first FAT partition becomes its ESP.
A boot operation over a classroom with UEFI computers goes through the live clients (the
console's command: efibootmgr BootNext / BootOrder on UEFI, the boot server's answer on BIOS),
and its result waits for the console's verdict (the OS reported, or the live client came back).  Times are seconds
from the first wake-up; ``at`` offsets only order the operations.  ``destroy(run_dir)`` removes
what an interrupted run left (its manifest).

URIs: ``qemu:///system`` (default; daemons started here if none runs).  ``qemu+ssh://user@host/
system`` runs the VMs on another host: the network is created there, but this process still
serves boot files, the server and the repository on the bridge address — which exists only on
the VM host — so a remote run needs this backend started *on* that host (e.g. over ssh).
Limits: ≤ 8 VMs (2 TCG cores).  Faults are not injected here (the netns lab does that).
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from ogref.console import plan_boot, scope_label
from ogref.model.status import ClientStatus
from ogref.site import BootSpec, RestoreSpec
from ogsim.lab.capabilities import probe, require
from ogsim.lab.clock import ScenarioClock
from ogsim.lab.console import Console
from ogsim.lab.libvirt import connection, firmware
from ogsim.lab.libvirt.classroom import Classroom
from ogsim.lab.libvirt.liveimage import DEFAULT_CACHE, test_os
from ogsim.lab.manifest import Manifest
from ogsim.lab.netns.backend import _computer, _Running, _site_yaml, _tell
from ogsim.lab.netns.disks import build_disk
from ogsim.progress import Emit, OperationEvent, StageEvent, nothing, operation_text
from ogsim.results import (
    ComputerResult,
    HostRecord,
    LogLine,
    Metrics,
    OperationResult,
    Phase,
    Results,
)
from ogsim.scenario import Scenario

MAX_VMS = 8
REPO_ROOT = Path("/var/lib/oglab/repo")
MIB = 1024**2
RUNNABLE = ("restore", "deploy", "update_cache")
Json = dict[str, Any]


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
        boot_timeout: float = 300.0,
        op_timeout: float = 900.0,
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
        self.t0 = time.time()
        self.clock = ScenarioClock(wall0=self.t0)
        self.timings: dict[str, Any] = {}
        self.emit: Emit = nothing
        self.told: dict[str, tuple[Any, ...]] = {}

    def rel(self, t: float | None = None) -> float:
        """Scenario time of wall instant ``t`` (now by default)."""
        return self.clock.of(time.time() if t is None else t)

    def note(self, text: str) -> None:
        self.events.append(LogLine(t=self.rel(), text=text))
        self.emit(StageEvent("vms", text, t=self.rel()))

    # ------------------------------------------------------------------ preparation

    def _repository(self) -> Path:
        # smbd reads it as root (force user), qemu never: outside the run dir all the same, as
        # the run dir's parents may be private (pytest).  Unique per run: two runs whose
        # directories share a name (``…/run``) must not share, or delete, one repository
        repo = REPO_ROOT / f"{self.run_dir.name[:40]}-{uuid.uuid4().hex[:8]}"
        Manifest(self.run_dir).record("file", str(repo))
        repo.mkdir(parents=True, exist_ok=True)
        for r in self.site.repositories:
            for image in r.images:
                built = test_os(self.cache, image.name, _payload_mib(image.stored_size))
                for f in Path(built["repo"]).iterdir():
                    subprocess.run(["cp", "-a", str(f), str(repo / f.name)], check=True)
                self.note(f"test image {image.name}: {built['stored_size']} bytes stored")
        for p in [REPO_ROOT.parent, REPO_ROOT, repo, *repo.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        return repo

    def firmware(self, name: str) -> str:
        """The computer's ``hw.firmware`` (``bios`` by default)."""
        return str(self.site.hw.get(name, {}).get("firmware") or "bios")

    def _build_disk(self, name: str, path: Path) -> None:
        """The scenario's disk 1 for ``name`` (partitions, CACHE) in ``path``, on the host."""
        pc = self.site.computer(name)
        mnt = path.with_name(f"{name}.cache-setup")
        mnt.mkdir()
        disk = build_disk(Manifest(self.run_dir), pc, 1.0, path.parent, mnt)
        if disk.backing != path:
            raise RuntimeError(f"disk of {name} built in {disk.backing}, not {path}")
        esp = ""
        if firmware.is_uefi(self.firmware(name)):
            esp = _mark_esp(disk.device, disk.partitions)
        subprocess.run(["losetup", "-d", disk.device], check=True, timeout=60)
        parts = ", ".join(f"{n}:{fs}" for n, fs in sorted(disk.partitions.items()))
        self.note(
            f"{name}: disk prepared ({parts}{', CACHE' if disk.cache_node else ', no CACHE'}{esp})"
        )

    # ------------------------------------------------------------------ run

    def run(self, seed: int) -> Results:
        names = [pc.name for pc in self.site.computers]
        if len(names) > MAX_VMS:
            raise ValueError(f"the libvirt lab runs at most {MAX_VMS} VMs ({len(names)} asked)")
        lacking = firmware.missing({self.firmware(n) for n in names})
        if lacking:
            raise ValueError("the scenario's UEFI computers need: " + "; ".join(lacking))
        caps = probe()
        verdict = require(self.sc, "libvirt", caps)  # before anything is created
        for note in verdict.notes:
            self.note(note)
        wall = time.monotonic()
        results = Results(
            scenario=self.sc.name,
            description=self.sc.spec.description,
            backend="libvirt",
            seed=seed,
            scale=(self.sc.spec.backends.libvirt.scale if self.sc.spec.backends.libvirt else 1.0),
            host=HostRecord(**caps.record(), notes=verdict.notes),
        )
        try:
            return self._run(results, names, wall)
        finally:  # the repository copy (and anything else recorded) on every exit path
            Manifest(self.run_dir).destroy()

    def _run(self, results: Results, names: list[str], wall: float) -> Results:
        self.run_dir = self.run_dir.resolve()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        t = time.monotonic()
        repo = self._repository()
        self.timings["test_image_s"] = round(time.monotonic() - t, 2)
        site_file = self.run_dir / "site.yaml"
        _site_yaml(self.sc, site_file)
        rooms = self.site.classrooms
        lab = Classroom(
            self.run_dir,
            names,
            uri=self.uri,
            repo_dir=repo,
            site_file=site_file,
            cache=self.cache,
            log=self.note,
            disk_builder=self._build_disk,
            subnet=rooms[0].computers[0].subnet if rooms and rooms[0].computers else None,
            firmwares={n: self.firmware(n) for n in names},
        )
        for n, seat in lab.seats.items():
            seat.efi_signed = self.site.hw.get(n, {}).get("efi_loader") != "unsigned"
        self.lab = lab
        extra: dict[str, Any] = {"uri": self.uri}
        extra["lab_id"] = lab.lab_id
        extra["firmware"] = {n: s.firmware for n, s in lab.seats.items()}
        extra["netboot"] = {n: s.netboot for n, s in lab.seats.items()}
        with lab:
            extra["kvm"] = lab.kvm
            if lab.image is not None:
                extra["live_image"] = {
                    k: lab.image.info.get(k)
                    for k in ("key", "initrd_bytes", "uncompressed_bytes", "cached")
                }
            self.t0 = time.time()
            self.clock = ScenarioClock(wall0=self.t0)  # until the classroom is up: since power-on
            lab.t0 = time.monotonic()
            extra["boot_s"] = self._wake_all(names)
            self.clock = ScenarioClock(wall0=time.time())  # scenario time 0: the live clients wait
            results.operations = self._operations()
            extra["time"] = self.clock.record()
            self.timings["scenario_s"] = self.rel()
        self.timings.update(lab.timings)
        extra["timings"] = self.timings
        results.events = self.events
        every = [c for op in results.operations for c in op.computers]
        results.metrics = Metrics(
            makespan_s=max((c.finished or 0.0 for c in every), default=0.0),
            computers=len(names),
            ok=sum(1 for c in every if c.status == "ok"),
            failed=sum(1 for c in every if c.status != "ok"),
            bytes_total=sum(c.bytes_moved for c in every),
            events=len(self.events),
            wall_s=round(time.monotonic() - wall, 2),
            extra=extra,
        )
        return results

    # ------------------------------------------------------------------ server

    @property
    def console(self) -> Console:
        assert self.lab is not None and self.lab.services is not None
        return self.lab.services.console

    def _clients(self) -> dict[str, Json]:
        return {c["name"]: c for c in self.console.clients()}

    def _wake_all(self, names: list[str]) -> dict[str, float | None]:
        """Power every VM on; wait for each live client's agent (OPG); seconds per computer."""
        lab = self.lab
        assert lab is not None
        for n in names:
            lab.power_on(n)
        self.note(f"magic packets sent, {len(names)} domains started")
        ready: dict[str, float | None] = dict.fromkeys(names)
        deadline = time.monotonic() + self.boot_timeout
        while time.monotonic() < deadline and any(v is None for v in ready.values()):
            for n, c in self._clients().items():
                if ready.get(n, 0.0) is None and c["status"] == str(ClientStatus.OPG):
                    ready[n] = round(self.rel() - lab.seats[n].powered_at, 2)
                    self.note(
                        f"{n}: live client waiting (OPG, {ClientStatus.OPG.colour}) "
                        f"{ready[n]} s after power-on"
                    )
            time.sleep(0.5)
        for n, v in ready.items():
            if v is None:
                self.note(f"{n}: the live client did not report within {self.boot_timeout:.0f} s")
        return ready

    def _operations(self) -> list[OperationResult]:
        """The scenario's operations at their scenario times: restores are submitted to the
        server when due (its command queue runs them concurrently where its rules allow); a
        boot — driven by the lab itself through PXE — starts once no running operation holds
        one of its computers, and later operations wait behind it; idle gaps are skipped."""
        todo = sorted(enumerate(self.site.operations), key=lambda io: (io[1].at, io[0]))
        running: dict[int, tuple[str, float, str, RestoreSpec, set[str]]] = {}
        done: dict[int, OperationResult] = {}
        while todo or running:
            now = self.clock.now()
            while todo and todo[0][1].at <= now:
                index, op = todo[0]
                body = getattr(op, op.kind)
                if op.kind in RUNNABLE and isinstance(body, RestoreSpec):
                    sub = self.console.submit(index)
                    if "refused" in sub:
                        done[index] = self._refused(index, op.kind, body, sub["refused"])
                    else:
                        names = set(sub["computers"])
                        running[index] = (str(sub["op"]), now, op.kind, body, names)
                        self.emit(
                            OperationEvent(
                                index,
                                operation_text(op.kind, body, len(names)),
                                computers=len(names),
                                t=now,
                            )
                        )
                        self.note(
                            f"operation {index} ({op.kind} {body.method}) submitted to "
                            f"{len(names)} computers"
                        )
                elif isinstance(body, BootSpec):
                    targets = {pc.name for pc in self.site.scope(body.to)}
                    if any(targets & r[4] for r in running.values()):
                        break  # its computers are busy: it (and what follows) waits
                    self.emit(
                        OperationEvent(
                            index, operation_text("boot", body, len(targets)), t=self.rel()
                        )
                    )
                    done[index] = self._boot(index, body)
                else:
                    self.note(f"operation {index} ({op.kind}) is not run by the libvirt lab")
                    done[index] = OperationResult(index=index, kind=op.kind, at=self.rel())
                todo.pop(0)
            for index, (op_id, at, kind, body, _names) in list(running.items()):
                status = self.console.status(op_id)
                if self.emit is not nothing:
                    seen = _Running(index, kind, body, op_id, at, 0.0)
                    seen.records = {rec["name"]: rec for rec in status.get("records", [])}
                    _tell(self.emit, seen, self._clients(), self.clock, self.told)
                if status["done"] or self.rel() - at > self.op_timeout:
                    del running[index]
                    done[index] = self._restored(index, kind, body, at, status)
            if not running and todo and todo[0][1].at > self.clock.now():
                skip = self.clock.skip_to(todo[0][1].at, "idle: nothing running")
                if skip is not None:
                    self.note(f"idle from {skip.start:g} s to {skip.end:g} s skipped")
                continue
            if todo or running:
                time.sleep(1.0)
        return [done[i] for i in sorted(done)]

    def _refused(self, index: int, kind: str, spec: RestoreSpec, why: Json) -> OperationResult:
        at = self.rel()
        self.note(f"operation {index} ({kind}) refused ({why['code']}): {why['message']}")
        recs = [
            ComputerResult(
                name=pc.name,
                classroom=pc.classroom,
                status="refused",
                code=int(why["code"]),
                message=str(why["message"]),
                started=at,
                finished=at,
            )
            for pc in self.site.scope(spec.to)
        ]
        return OperationResult(index=index, kind=kind, at=at, computers=recs)

    def _restored(
        self, index: int, kind: str, spec: RestoreSpec, at: float, status: Json
    ) -> OperationResult:
        records = [_computer(r, self.clock, set()) for r in status.get("records", [])]
        finished = [r.finished for r in records if r.finished is not None]
        return OperationResult(
            index=index,
            kind=kind,
            at=at,
            image=spec.image,
            method=str(spec.method),
            scope=scope_label(spec.to),
            computers=records,
            makespan=round(max(finished) - at, 3) if finished else None,
        )

    def _boot(self, index: int, spec: BootSpec) -> OperationResult:
        lab = self.lab
        assert lab is not None
        at = self.rel()
        targets = [pc.name for pc in self.site.scope(spec.to)]
        kind = "boot-target" if spec.permanent else "boot-once"
        clients = self._clients()
        before = {n: len(clients[n]["os"]) for n in targets}
        marks = {n: len(lab.serial(n)) for n in targets}
        logs: dict[str, list[LogLine]] = {}
        for n in targets:
            plan = plan_boot(
                self.site.computer(n), spec.disk, spec.partition, spec.permanent, "linux"
            )
            logs[n] = [LogLine(t=at, text=f"{kind}: {step}") for step in plan.steps]
        if any(firmware.is_uefi(lab.seats[n].firmware) for n in targets):
            first, second, again = self._boot_from_live(index, spec, targets, before, logs, marks)
        else:
            first, second, again = self._boot_by_pxe(spec, targets, clients, before, logs)
        recs = []
        for n in targets:
            reps = [r for r in (first[n], second.get(n)) if r is not None]
            want = 2 if spec.permanent else 1
            ok = len(reps) == want and all(
                r["hostname"] == n and r["status"] == str(ClientStatus.LNX) for r in reps
            )
            last = reps[-1] if reps else None
            msgs = [
                f"{r['status']} ({ClientStatus.LNX.colour}) hostname={r['hostname']} "
                f"root={r.get('fstab_root', '')}"
                + (f" firmware={r['firmware']}" if r.get("firmware") else "")
                + (f" secure_boot={r['secure_boot']}" if "secure_boot" in r else "")
                for r in reps
            ]
            if len(reps) < want:
                msgs.append("the restored OS did not report" + (" after the reset" if reps else ""))
                refused = _refusal(lab.serial(n)[marks[n] :])
                if refused:
                    msgs.append(f"the firmware refused the boot loader: {refused!r}")
            f1, f2 = first[n], second.get(n)
            phases = [Phase(name=kind, start=at, end=self.rel(f1["t"]) if f1 else self.rel())]
            if spec.permanent:
                end = self.rel(f2["t"]) if f2 else self.rel()
                phases.append(Phase(name="reboot", start=again, end=end))
            for r in reps:
                logs[n].append(
                    LogLine(t=self.rel(r["t"]), text=f"OS started: hostname {r['hostname']}")
                )
            recs.append(
                ComputerResult(
                    name=n,
                    classroom=self.site.computer(n).classroom,
                    status="ok" if ok else "failed",
                    code=0 if ok else None,
                    message="; after reboot: ".join(msgs),
                    started=at,
                    finished=self.rel(last["t"]) if last else None,
                    phases=phases,
                    os_hostname=str(last["hostname"]) if last else None,
                    os_firmware=str(last["firmware"]) if last and last.get("firmware") else None,
                    os_secure_boot=(
                        bool(int(last["secure_boot"]))
                        if last and last.get("secure_boot") is not None
                        else None
                    ),
                    log=logs[n],
                )
            )
        finished = [r.finished for r in recs if r.finished is not None]
        return OperationResult(
            index=index,
            kind=kind,
            at=at,
            scope=scope_label(spec.to),
            computers=recs,
            makespan=round(max(finished) - at, 3) if finished else None,
        )

    def _boot_by_pxe(
        self,
        spec: BootSpec,
        targets: list[str],
        clients: dict[str, Json],
        before: dict[str, int],
        logs: dict[str, list[LogLine]],
    ) -> tuple[dict[str, Json | None], dict[str, Json | None], float]:
        """BIOS classrooms: the boot server's per-MAC answer (disk once / disk), then the
        console's reboot of the live clients (a reset of a running OS)."""
        lab = self.lab
        assert lab is not None
        live = []
        for n in targets:
            lab.set_boot(n, "disk" if spec.permanent else "disk-once")
            if clients[n]["status"] == str(ClientStatus.OPG):
                live.append(n)
            else:  # a booted OS has no agent of ours: the console's reboot is a reset
                logs[n].append(LogLine(t=self.rel(), text="reset (no live client to reboot)"))
                lab.reset(n)
        if live:
            self.console.reboot(live)
            for n in live:
                logs[n].append(LogLine(t=self.rel(), text="reboot sent to the live client"))
        first = self._wait_os(targets, before, 1)
        second: dict[str, Json | None] = {}
        again = self.rel()
        if spec.permanent:
            for n in targets:
                logs[n].append(LogLine(t=again, text="hard reset: the boot target must survive it"))
                lab.reset(n)
            second = self._wait_os(targets, before, 2)
        return first, second, again

    def _boot_from_live(
        self,
        index: int,
        spec: BootSpec,
        targets: list[str],
        before: dict[str, int],
        logs: dict[str, list[LogLine]],
        marks: dict[str, int],
    ) -> tuple[dict[str, Json | None], dict[str, Json | None], float]:
        """A classroom with UEFI computers: the console's boot operation goes to each live
        client (one not in the live client is reset into it first), which sets the firmware's
        BootNext (once) or BootOrder (target) with efibootmgr — a BIOS one leaves it to the boot
        server's per-MAC answer — and reboots; a boot target must survive a hard reset."""
        lab = self.lab
        assert lab is not None
        clients = self._clients()
        away = [n for n in targets if clients[n]["status"] != str(ClientStatus.OPG)]
        for n in away:
            lab.set_boot(n, "live")
            logs[n].append(LogLine(t=self.rel(), text="reset into the live client first"))
            lab.reset(n)
        if away:
            self._wait_live(away)
        for n in targets:
            bios = not firmware.is_uefi(lab.seats[n].firmware)
            lab.set_boot(n, ("disk" if spec.permanent else "disk-once") if bios else "live")
        sub = self.console.submit(index)
        for n in targets:
            text = f"console boot operation {sub.get('op')} sent to the live client"
            logs[n].append(LogLine(t=self.rel(), text=text))
        first = self._wait_os(targets, before, 1, give_up_when_live=True, marks=marks)
        second: dict[str, Json | None] = {}
        again = self.rel()
        if spec.permanent:
            for n in targets:
                if first[n] is None:
                    continue
                logs[n].append(LogLine(t=again, text="hard reset: the boot target must survive it"))
                lab.reset(n)
            second = self._wait_os([n for n in targets if first[n]], before, 2)
        # the console's record of each computer ends when its OS reports, or fails when it
        # came back to the live client instead: wait for that verdict, and log it
        op = str(sub.get("op", ""))
        deadline = time.monotonic() + self.boot_timeout
        status = self.console.status(op)
        while not status.get("done") and time.monotonic() < deadline:
            time.sleep(1.0)
            status = self.console.status(op)
        for rec in status.get("records", []):
            if rec.get("name") in logs:
                text = f"console: {rec.get('status')} ({rec.get('code')}): {rec.get('message')}"
                logs[rec["name"]].append(LogLine(t=self.rel(), text=text))
        return first, second, again

    def _wait_live(self, names: list[str]) -> None:
        deadline = time.monotonic() + self.boot_timeout
        while time.monotonic() < deadline:
            clients = self._clients()
            if all(clients[n]["status"] == str(ClientStatus.OPG) for n in names):
                return
            time.sleep(1.0)
        self.note(f"{', '.join(names)}: not back in the live client within {self.boot_timeout} s")

    def _wait_os(
        self,
        names: list[str],
        before: dict[str, int],
        nth: int,
        give_up_when_live: bool = False,
        marks: dict[str, int] | None = None,
    ) -> dict[str, Json | None]:
        """Each computer's ``nth`` OS report after ``before`` (None when it never came; with
        ``give_up_when_live``, also when its live client left and came back instead, or its
        console — from byte ``marks[name]`` on — shows the firmware refusing the loader)."""
        lab = self.lab
        assert lab is not None
        got: dict[str, Json | None] = dict.fromkeys(names)
        left: set[str] = set()
        back: set[str] = set()
        deadline = time.monotonic() + self.boot_timeout
        while time.monotonic() < deadline and any(
            v is None and n not in back for n, v in got.items()
        ):
            clients = self._clients()
            for n in names:
                reps = clients[n]["os"]
                if got[n] is None and len(reps) >= before[n] + nth:
                    got[n] = reps[before[n] + nth - 1]
                if give_up_when_live and got[n] is None and n not in back:
                    if clients[n]["status"] != str(ClientStatus.OPG):
                        left.add(n)
                    elif n in left:
                        back.add(n)
                        self.note(f"{n}: the live client came back instead of the restored OS")
                    refused = _refusal(lab.serial(n)[marks[n] :]) if marks else ""
                    if refused and n not in back:
                        back.add(n)
                        self.note(f"{n}: the firmware refused the boot loader: {refused}")
            time.sleep(1.0)
        return got


REFUSALS = ("Access Denied", "Security Violation", "Verification failed")


def _refusal(console: str) -> str:
    """The firmware's (or shim's) line refusing an image, from a serial console text."""
    for line in console.splitlines():
        if any(r in line for r in REFUSALS):
            return line.strip()[:200]
    return ""


def _mark_esp(device: str, partitions: dict[int, Any]) -> str:
    """Give the first FAT partition of a GPT disk the ESP type (a UEFI computer's disk)."""
    fat = sorted(n for n, fs in partitions.items() if str(fs).startswith("FAT"))
    if not fat:
        return ", no ESP (no FAT partition)"
    subprocess.run(["parted", "-s", device, "set", str(fat[0]), "esp", "on"], check=True)
    return f", ESP on {fat[0]}"


def run(
    scenario: Scenario,
    seed: int | None = None,
    out_dir: Path | None = None,
    *,
    uri: str = connection.DEFAULT_URI,
    cache: Path = DEFAULT_CACHE,
    emit: Emit = nothing,
) -> Results:
    """Run ``scenario`` on VMs; the run directory is ``out_dir`` (default ``out/<name>/libvirt-<seed>``)."""
    s = scenario.spec.seed if seed is None else seed
    run_dir = (out_dir or Path("out") / scenario.name / f"libvirt-{s}").resolve()
    lab = LibvirtRun(scenario, run_dir, uri=uri, cache=cache)
    lab.emit = emit
    results = lab.run(s)
    results.write(run_dir / "results.json")
    return results


def destroy(run_dir: Path) -> list[str]:
    """Remove everything an interrupted run's manifest recorded; return the errors."""
    return Manifest(run_dir).destroy()
