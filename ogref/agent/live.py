"""The live client of one computer (our ogLive): runs the commands the service hands it —
restore, deploy, updateCache, create, clone (as MASTER or target), boot — with the runtime and
the network transports, and reports through its link to the service."""

import argparse
import contextlib
import hashlib
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from ogref import logs
from ogref.agent.link import ServiceLink
from ogref.agent.master import MasterExecutor
from ogref.agent.osinfo import read_os
from ogref.agent.protocol import image_from_json, image_to_json, request_from_json
from ogref.agent.share import admin_share
from ogref.core.events import (
    Source,
)
from ogref.errors import (
    MulticastSendPartitionError,
    NotFoundError,
    NotOsError,
    OgErr,
    OgError,
    RepositoryError,
    error_for,
)
from ogref.model import (
    ClientStatus,
    EngineConfig,
    Filesystem,
    Image,
    MulticastSession,
)
from ogref.repo.sender import SenderOptions, sender_argv, wait_until_listening
from ogref.repo.tracker import announce_url
from ogref.runtime import compressor, create, efiboot, filesystem, imagefile, partclone
from ogref.runtime import disk as rdisk
from ogref.runtime.cachefs import CachePartition, find_cache
from ogref.runtime.chunked import transfer
from ogref.runtime.executor import Machine
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.lock import LockFile, partition_lock_path
from ogref.runtime.loopdev import partition_path
from ogref.runtime.mount import unmount_device
from ogref.runtime.proc import run_pipeline
from ogref.transports.executor import NetworkSetup
from ogref.transports.repository import RepositoryControl
from ogref.transports.smb import SmbCredentials

log = logging.getLogger("ogref.agent")

Json = dict[str, Any]


class Agent:
    """The live client of one computer."""

    def __init__(self, a: argparse.Namespace) -> None:
        self.name: str = a.name
        self.ip: str = a.ip
        self.work: Path = a.work
        self.disks = {int(k): v for k, v in (d.split("=", 1) for d in a.disk)}
        self.commands: queue.Queue[Json] = queue.Queue()  # from the link, in order
        self.command_id: str = ""
        self.control_url: str = a.control
        self.smb = SmbCredentials.from_file(a.repo_ip, a.smb_cred)
        self.status = ClientStatus.OPG
        self.stop = threading.Event()
        self.link: ServiceLink | None = None
        if a.service:
            self.link = ServiceLink(
                a.service,
                a.name,
                a.key_file,
                a.server_public_file.read_text().strip()
                if a.server_public_file
                else a.server_public,
                a.work / "seq",
                state=self.state,
                on_command=self.commands.put,
                busy=lambda: bool(self.command_id),
                log=lambda text: log.info("[%s] %s", self.name, text),
            )
        self.torrent_stall: float = a.torrent_stall
        self.grub: bool = a.grub
        self.efi_signed: bool = not a.efi_unsigned
        self.reboot_after = False  # a real boot: reboot once its result is with the service
        self.session = uuid.uuid4().hex  # this start of the live client (the service compares)
        # the OpenGnSys server OGAgent is pointed at by configureOs: the service's host
        self.og_server: str = urllib.parse.urlsplit(a.service).hostname or "" if a.service else ""
        self.repo_ip: str = a.repo_ip
        self.admin = (
            SmbCredentials.from_file(a.repo_ip, a.smb_admin_cred) if a.smb_admin_cred else None
        )
        self.emulate_boot: bool = a.emulate_boot
        self.os_report: str = a.os_report or ""
        self.boot_target: Json | None = None
        # what the current command is doing, sent with every exchange (stage, bytes done/total)
        self.command_kind: str = ""
        self.executor: MasterExecutor | None = None
        self.done_bytes = 0
        self.total_bytes = 0
        # each stage the current command has entered, with its last bytes: a stage shorter than
        # one exchange still reaches the service and the live views
        self.trail: list[Json] = []

    def log(self, text: str) -> None:
        """A tracking-log line: stdout (the screen) and the service."""
        log.info("[%s] %s", self.name, text)
        if self.link is not None:
            self.link.log(text)

    def state(self) -> Json:
        """What every exchange with the service tells of this computer."""
        return {
            "status": str(self.status),
            "ip": self.ip,
            "activity": self.activity(),
            "session": self.session,
        }

    def _nudge(self) -> None:
        if self.link is not None:
            self.link.nudge()

    def execute(self, cmd: Json) -> Json:
        """Run one command to its end; the per-computer record."""
        kind = cmd.get("kind")
        if kind in ("create", "clone_source", "boot"):
            run: Callable[[Json], Json] = {
                "create": self.create,
                "clone_source": self.clone_source,
                "boot": self.boot,
            }[str(kind)]
            began = time.time()
            try:
                rec = run(cmd)
            except OgError as exc:
                rec = {"code": int(exc.code), "message": exc.message}
            except Exception as exc:  # the agent survives and reports
                rec = {"code": int(OgErr.GENERIC), "message": f"{type(exc).__name__}: {exc}"}
            self.log(f"finished: code {rec['code']}: {rec['message']}")
            rec.setdefault("phases", [])
            rec.update(started=began, finished=time.time())
            return rec
        req = request_from_json(cmd["request"])
        policy = EngineConfig.from_text(cmd.get("engine", ""), source="server")
        machine = Machine(
            disks=self.disks,
            repository=self.work / "repo-mirror",
            cache_root=self.work / "cache",
            lock_dir=self.work / "lock",
            hostname=self.name,
            grub=self.grub,
            efi_signed=self.efi_signed,
            server=self.og_server,
        )
        for d in (machine.repository, machine.cache_root, machine.lock_dir):
            d.mkdir(parents=True, exist_ok=True)
        net = NetworkSetup(
            self.smb,
            RepositoryControl(self.control_url, cmd.get("repository_token")),
            "eth0",
            self.ip,
            torrent_stall=self.torrent_stall,
            clock=time.time,
        )
        ex = MasterExecutor(machine, net, log=self.log, progress=self._progress)
        ex.on_stage = self._enter  # the service hears of a new stage at once
        self.executor = ex
        if cmd.get("master"):
            ex.master_image = image_from_json(cmd["master"]["image"])
            ex.master_ip = str(cmd["master"]["ip"])
            ex.master_chunkcast = dict(cmd["master"].get("chunkcast") or {})
        started = time.time()
        try:
            fin = ex.run(req, policy)
            out: Json = {
                "code": int(fin.code),
                "message": fin.message,
                "method_used": str(fin.method_used) if fin.method_used else None,
                "reasons": list(fin.reasons),
            }
        except OgError as exc:
            out = {
                "code": int(exc.code),
                "message": exc.message,
                "method_used": None,
                "reasons": [],
            }
        except Exception as exc:  # the agent survives and reports
            out = {
                "code": int(OgErr.GENERIC),
                "message": f"{type(exc).__name__}: {exc}",
                "method_used": None,
                "reasons": [],
            }
        self.log(f"finished: code {out['code']}: {out['message']}")
        out.update(
            requested=str(req.method),
            switched=bool(
                ex.commands and any(type(c).__name__ == "MethodSwitched" for c in ex.commands)
            ),
            bytes_moved=ex.bytes_moved,
            checksum_verified=ex.verified,
            phases=[asdict(p) for p in net.phases],
            started=started,
            finished=time.time(),
        )
        out["trail"] = [dict(s) for s in self.trail]
        if ex.stream_md5:
            out["stream_md5"] = ex.stream_md5
        return out

    # ------------------------------------------------------------------ create, clone, boot

    def _phase(self, name: str, start: float, moved: int = 0, detail: str = "") -> Json:
        return {"name": name, "start": start, "end": time.time(), "bytes": moved, "detail": detail}

    def create(self, cmd: Json) -> Json:
        """createImage: the runtime's create path into the CACHE or the repository share."""
        c = cmd["create"]
        policy = EngineConfig.from_text(cmd.get("engine", ""), source="server")
        node = partition_path(self.disks[int(c["disk"])], int(c["partition"]))
        target = Source(str(c.get("target", "REPO")))
        name = str(c["image"])
        self.log(f"createImage {c['disk']} {c['partition']} {target} /{name}")
        lock_dir = self.work / "lock"
        lock_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.time()

        def make(store: ImageStore) -> create.CreateResult:
            return create.create_image(
                node,
                store,
                name,
                comp=policy.img_comp,
                reduce=policy.img_reduce,
                host=self.name,
                tracker=announce_url(self.repo_ip),
                lock_dir=lock_dir,
                target=target,
            )

        if target is Source.CACHE:
            number = find_cache(self.disks[1]) if 1 in self.disks else None
            if number is None:
                raise error_for(OgErr.NOTCACHE, "no CACHE partition to write the image to")
            cache = CachePartition(partition_path(self.disks[1], number), self.work / "cache", 1)
            cache.mount()
            try:
                made = make(cache.store)
            finally:
                cache.unmount()
        else:
            if self.admin is None:
                raise RepositoryError("no writer credentials for the repository (--smb-admin-cred)")
            with admin_share(self.admin, self.work) as store:
                self.log(f"repository mounted read-write as {self.admin.user} (smbnetfs)")
                made = make(store)
        for note in made.notes:
            self.log(f"createImage: {note}")
        img = made.image
        detail = f"{target} {img.stored_size} bytes stored, {made.used_bytes} used" + (
            ", reduced" if made.reduced else ""
        )
        return {
            "code": 0,
            "message": f"image {name} created in {target} ({img.stored_size} bytes, MD5 {img.checksum})",
            "method_used": None,
            "bytes_moved": img.stored_size if target is Source.REPO else 0,
            "checksum_verified": True,
            "image": {**image_to_json(img), "torrent": made.torrent},
            "phases": [self._phase("create", t0, img.stored_size, detail)],
        }

    def clone_source(self, cmd: Json) -> Json:
        """The MASTER's side of a clone: stream its partition (or a cached image) by multicast."""
        c = cmd["clone"]
        assert self.link is not None, "a MASTER needs the service"
        policy = EngineConfig.from_text(cmd.get("engine", ""), source="server")
        session = MulticastSession.parse(str(c["multicast"]))
        disk, number = int(c.get("disk", 1)), int(c.get("partition", 1))
        node = partition_path(self.disks[disk], number)
        logs = self.work / "mcast"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"ogMcastSend.{session.port}.{int(time.time())}"
        opts = SenderOptions(interface="eth0", fec=str(c.get("fec") or "8x8/128"))
        if policy.mcast_protocol.carries(into_cache=False, chunked=False):  # cut, or cached
            by_chunkcast = self._clone_by_chunkcast(cmd, policy, session, node)
            if by_chunkcast is not None:
                return by_chunkcast
        t0 = time.time()
        cache: CachePartition | None = None
        with contextlib.ExitStack() as stack:
            if c.get("from_cache"):
                cache = self._master_cache(stack)
                found = imagefile.inspect(cache.store, str(c["from_cache"]))
                if not found.found or found.image is None:
                    raise NotFoundError(f"{c['from_cache']} is not in the MASTER's cache")
                image = found.image
                # a chunked copy goes as its manifest + pack, read from the store as sent
                src_file: Path | None = None if image.chunked else cache.store.files(image.name).img
            else:
                if not os.path.exists(node):
                    raise error_for(OgErr.PARTITION, f"the MASTER has no partition {node}")
                fs = filesystem.detect(node)
                if fs in (Filesystem.EMPTY, Filesystem.CACHE, Filesystem.SWAP):
                    raise error_for(OgErr.FILESYS, f"{node} holds no filesystem to clone")
                unmount_device(node)
                stack.enter_context(
                    LockFile(partition_lock_path(self.work / "lock", node), f"partition {node}")
                )
                image = Image(
                    name=str(c["image"]),
                    filesystem=fs,
                    data_size=filesystem.device_size(node),
                    # a stream: its size and MD5 are known at its end (announced as plan_clone's
                    # model does: stored = data)
                    stored_size=filesystem.device_size(node),
                    checksum="",
                    compressor=policy.img_comp,
                    os_name=str(c.get("os_name", "")),
                )
                src_file = None
            argv = sender_argv(session, src_file, opts, log)
            self.log(f"MASTER: udp-sender on port {session.port} for {session.nclients} receivers")
            sender_out = stack.enter_context(open(f"{log}.out", "wb"))
            sender = subprocess.Popen(
                ["timeout", str(int(opts.timeout)), *argv],
                stdin=subprocess.PIPE if src_file is None else subprocess.DEVNULL,
                stdout=sender_out,
                stderr=subprocess.STDOUT,
            )
            try:
                if not wait_until_listening(sender, session.port + 1, 10):
                    raise MulticastSendPartitionError(
                        f"udp-sender did not start (exit {sender.poll()}): see {log}.out"
                    )
                assert self.link is not None
                self.link.ready(str(cmd["id"]), image_to_json(image))
                ready = time.time()
                md5 = hashlib.md5()
                sent = 0
                if src_file is None and cache is not None:  # a chunked cached image
                    assert sender.stdin is not None
                    for piece in transfer.clone_stream(cache.store, image.name):
                        md5.update(piece)
                        sender.stdin.write(piece)
                        sent += len(piece)
                    sender.stdin.close()
                    digest = md5.hexdigest()
                elif src_file is None:
                    assert sender.stdin is not None
                    pipe = sender.stdin

                    def drain(stream_: IO[bytes]) -> None:
                        nonlocal sent
                        while chunk := stream_.read(1 << 20):
                            md5.update(chunk)
                            pipe.write(chunk)
                            sent += len(chunk)
                        pipe.close()

                    stages = [partclone.clone_argv(image.filesystem, node, str(log) + ".partclone")]
                    comp = compressor.compress_argv(image.compressor, None)
                    if comp:
                        stages.append(comp)
                    run_pipeline(
                        stages,
                        error=MulticastSendPartitionError,
                        what=f"send partition {node}",
                        drain=drain,
                    )
                    digest = md5.hexdigest()
                else:
                    sent, digest = image.stored_size, image.checksum
                code = sender.wait(max(60, session.max_wait + 3600))
            except BaseException:
                if sender.poll() is None:
                    sender.kill()
                    sender.wait()
                raise
            if code:
                raise MulticastSendPartitionError(f"udp-sender exited {code}: see {log}.out")
        what = f"cached image {image.name}" if cache is not None else f"partition {disk}:{number}"
        return {
            "code": 0,
            "message": f"MASTER sent {what}: {sent} bytes, MD5 {digest}",
            "method_used": "MULTICAST",
            "bytes_moved": sent,
            "stream_md5": digest,
            "image": image_to_json(image),
            "phases": [
                self._phase("wait", t0, 0, "sender listening"),
                {**self._phase("send", ready, sent, f"udp-sender port {session.port}")},
            ],
        }

    def _clone_by_chunkcast(
        self, cmd: Json, policy: EngineConfig, session: MulticastSession, node: str
    ) -> Json | None:
        """The MASTER's side of a clone under ``MCASTPROTOCOL=CHUNKCAST``: a chunked image
        served by chunkcast — a cached image that is chunked straight from the CACHE's chunk
        store; the partition cut into a scratch chunk store first (the sender must know every
        object's size before it announces; removed at the end).  The session key goes to the
        targets with the "ready" (through the service).  None: a cached image that is not
        chunked, sent by udpcast as before."""
        from ogref.runtime.chunked import image as chunked_image
        from ogref.transports.chunkcast import engine as chunkcast
        from ogref.transports.chunkcast import runtime as chunkcast_runtime

        c = cmd["clone"]
        key = bytes.fromhex(chunkcast_runtime.new_key())
        t0 = time.time()
        with contextlib.ExitStack() as stack:
            if c.get("from_cache"):
                cache = self._master_cache(stack)
                images, name = cache.store, str(c["from_cache"])
                if not chunked_image.exists(images, name):
                    self.log(f"chunkcast: {name} in the CACHE is not chunked: udpcast")
                    return None
                made = chunked_image.load(images, name)
                what, size = f"cached image {name}", made.header.device_size
            else:
                if not os.path.exists(node):
                    raise error_for(OgErr.PARTITION, f"the MASTER has no partition {node}")
                fs = filesystem.detect(node)
                if fs in (Filesystem.EMPTY, Filesystem.CACHE, Filesystem.SWAP):
                    raise error_for(OgErr.FILESYS, f"{node} holds no filesystem to clone")
                name = str(c["image"])
                scratch = self.work / "chunkcast" / f"clone-{session.port}"
                shutil.rmtree(scratch, ignore_errors=True)  # this agent's own leftover, if any
                scratch.mkdir(parents=True)
                stack.callback(shutil.rmtree, scratch, True)
                self.log(f"MASTER: cutting {node} into chunks for chunkcast")
                made = chunkcast.cut_partition(node, scratch, name, self.work / "lock")
                images = ImageStore(scratch)
                what, size = f"partition {node}", filesystem.device_size(node)
            store = chunked_image.chunk_store(images)
            stored = sum(store.size_on_disk(r.digest) for r in set(made.chunks))
            image = Image(name=name, filesystem=made.filesystem, data_size=size,
                          stored_size=stored, checksum="", compressor=policy.img_comp,
                          os_name=str(c.get("os_name", "")))  # fmt: skip
            cut = time.time()
            self.log(f"MASTER: chunkcast on port {session.port} for {session.nclients} receivers "
                     f"({len(made.chunks)} chunks, {stored} bytes)")  # fmt: skip

            def ready() -> None:
                assert self.link is not None
                self.link.ready(str(cmd["id"]), image_to_json(image), {"key": key.hex()})

            stats = chunkcast.serve(images, name, session, key,
                                    interface_ip=self.ip.split("/")[0], on_ready=ready)  # fmt: skip
        sent = int(stats["data_bytes"])
        return {
            "code": 0,
            "message": f"MASTER sent {what} by chunkcast: {sent} bytes, image {made.digest}",
            "method_used": "MULTICAST",
            "bytes_moved": sent,
            "image": image_to_json(image),
            "phases": [
                self._phase("create", t0, stored, "chunks for chunkcast"),
                self._phase("send", cut, sent, f"chunkcast port {session.port}"),
            ],
        }

    def _report_os(self, status: ClientStatus, hostname: str, root: str, os_name: str) -> None:
        if not self.os_report:
            return
        data = json.dumps(
            {"hostname": hostname, "status": str(status), "fstab_root": root, "os": os_name}
        ).encode()
        req = urllib.request.Request(
            self.os_report, data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as answer:
            answer.read()

    def _boot_os(self, disk: int, number: int) -> tuple[ClientStatus, str]:
        node = partition_path(self.disks[disk], number)
        if not os.path.exists(node):
            raise error_for(OgErr.PARTITION, f"partition {disk}:{number} does not exist")
        if rdisk.table_kind(self.disks[disk]).value == "MSDOS" and not rdisk.has_active(
            self.disks[disk]
        ):
            raise NotOsError(f"no active partition on disk {disk}: the BIOS would not boot it")
        status, hostname, root, os_name = read_os(node, self.disks[disk])
        self.log(
            f"emulated boot of {disk}:{number}: {os_name}, hostname {hostname}"
            + (f", / on {root}" if root else "")
        )
        self._report_os(status, hostname, root, os_name)
        self.status = status
        return status, hostname

    def _real_boot(self, b: Json) -> Json:
        """Boot once / boot target on a real machine, then reboot: on UEFI the firmware's boot
        entry for this computer (configureOs made it) as BootNext (once) or first in BootOrder
        (target); on BIOS the boot server's PXE answer for this MAC decides (OpenGnSys's
        per-MAC menu), so only the reboot is ours."""
        t0 = time.time()
        for step in b.get("steps", []):
            self.log(step)
        permanent = bool(b.get("permanent"))
        if efiboot.active():
            label = efiboot.label_for(self.name)
            found = efiboot.entries().numbers(rf"^{label}\b")
            if not found:
                raise NotOsError(f"no firmware boot entry {label!r}: restore and configure first")
            number = found[0]
            after = efiboot.boot_target(number) if permanent else efiboot.boot_once(number)
            how = f"BootOrder {','.join(after.order)}" if permanent else f"BootNext {after.next}"
            text = f"UEFI: Boot{number} {label!r}: {how}"
        else:
            text = "BIOS: the boot server's PXE answer for this computer decides"
        self.log(f"{text}; rebooting")
        self.reboot_after = True
        return {
            "code": 0,
            "message": f"{'boot target' if permanent else 'boot once'}: {text}; rebooting",
            "method_used": None,
            "awaiting_os": True,  # the service ends the record when the OS reports (or not)
            "phases": [self._phase("boot", t0, 0, text)],
        }

    def boot(self, cmd: Json) -> Json:
        """Boot once / boot target, emulated: check what configureOs left and report the OS."""
        b = cmd["boot"]
        if not self.emulate_boot:
            return self._real_boot(b)
        for step in b.get("steps", []):
            self.log(step)
        t0 = time.time()
        disk, number = int(b.get("disk", 1)), int(b.get("partition", 1))
        status, hostname = self._boot_os(disk, number)
        self.boot_target = {"disk": disk, "partition": number} if b.get("permanent") else None
        return {
            "code": 0,
            "message": f"OS booted: {status} hostname {hostname}"
            + (" (boot target set)" if self.boot_target else ""),
            "method_used": None,
            "os_hostname": hostname,
            "os_status": str(status),
            "phases": [self._phase("boot", t0, 0, f"emulated: {status}")],
        }

    # ------------------------------------------------------------------ service mode

    def _master_cache(self, stack: contextlib.ExitStack) -> CachePartition:
        """The MASTER's CACHE mounted for a clone from it (unmounted when ``stack`` closes)."""
        number = find_cache(self.disks[1]) if 1 in self.disks else None
        if number is None:
            raise error_for(OgErr.NOTCACHE, "the MASTER has no CACHE partition")
        cache = CachePartition(partition_path(self.disks[1], number), self.work / "cache")
        cache.mount()
        stack.callback(cache.unmount)
        return cache

    def _enter(self, stage: str) -> None:
        self.trail.append({"stage": stage, "done": 0, "total": 0})
        self._nudge()

    def _progress(self, done: int, total: int) -> None:
        self.done_bytes, self.total_bytes = done, total
        if self.trail:
            self.trail[-1].update(done=done, total=total)

    def activity(self) -> Json:
        """What the current command is doing (empty when idle): its id, stage and bytes."""
        if not self.command_id:
            return {}
        ex = self.executor
        return {
            "id": self.command_id,
            "stage": (ex.stage if ex is not None else "") or self.command_kind,
            "done": self.done_bytes,
            "trail": [dict(s) for s in self.trail],
            "total": self.total_bytes,
        }

    def _power(self, kind: str) -> None:
        """Restart or stop this machine (the live client's own reboot / poweroff)."""
        self.log(f"{kind} requested by the service")
        if self.emulate_boot:  # a namespace: never the host's reboot
            self._emulated_power(kind)
            return
        self.status = ClientStatus.OFF
        if self.link is not None:
            self.link.flush(10)
        os.sync()
        subprocess.run([kind, "-f"], check=False)
        self.stop.set()

    def _emulated_power(self, kind: str) -> None:
        if kind == "poweroff":
            self.status = ClientStatus.OFF
            self.stop.set()
            return
        target = self.boot_target
        if target is None:
            self.status = ClientStatus.OPG
            self.log("emulated reboot: PXE → live client waiting (OPG)")
            return
        self.log(f"emulated reboot: boot target {target['disk']}:{target['partition']}")
        try:
            self._boot_os(int(target["disk"]), int(target["partition"]))
        except OgError as exc:
            self.status = ClientStatus.OPG
            self.log(f"boot target failed ({exc.message}): back to the live client")

    def serve(self) -> int:
        """Take commands from the service until told to stop (or killed)."""
        assert self.link is not None
        self.link.start()
        self.log(f"ogLive ready ({self.ip}), status {self.status}")
        try:
            while not self.stop.is_set():
                try:
                    cmd = self.commands.get(timeout=0.5)
                except queue.Empty:
                    continue
                kind = cmd.get("kind")
                if kind == "halt":
                    self.status = ClientStatus.OFF
                    break
                if kind in ("reboot", "poweroff"):
                    self._power(str(kind))
                    self.link.nudge()
                    continue
                self.status = ClientStatus.BSY
                self.executor, self.done_bytes, self.total_bytes = None, 0, 0
                self.trail = []
                self.command_id = str(cmd.get("id", ""))
                self.command_kind = str(kind or "")
                self.link.nudge()
                try:
                    result = self.execute(cmd)
                finally:
                    if not self.reboot_after:
                        self.command_id = ""
                if self.status is ClientStatus.BSY:  # a boot leaves the booted OS's status
                    self.status = ClientStatus.OPG
                # the link keeps the result until the service has it (a pulled cable ends)
                self.link.done(str(cmd["id"]), result)
                if self.reboot_after:  # a real boot: the result at the service, then the reboot
                    self.link.delivered(60)  # still "busy": the exchanges do not long-poll
                    self.reboot_after = False
                    self.command_id = ""
                    self._power("reboot")
        finally:
            self.link.flush(10)
            self.link.close()
        return 0


def _terminated(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ogref.agent")
    p.add_argument("--name", required=True)
    p.add_argument("--ip", required=True, help="address with prefix, e.g. 10.0.1.11/24")
    p.add_argument("--disk", action="append", default=[], help="N=/dev/loopX")
    p.add_argument("--repo-ip", required=True)
    p.add_argument("--smb-cred", required=True, type=Path)
    p.add_argument("--key-file", type=Path, help="this computer's private key (PEM, mode 0600)")
    p.add_argument(
        "--control", required=True, help="the repository's control API: http://repo:2009"
    )
    p.add_argument("--service", help="the console service: http://server:2008")
    p.add_argument("--server-public", default="", help="the service's public key (hex) to pin")
    p.add_argument("--server-public-file", type=Path, help="… or the file holding it")
    p.add_argument("--work", required=True, type=Path)
    p.add_argument("--torrent-stall", type=float, default=120.0)
    p.add_argument("--grub", action="store_true", help="configureOs installs GRUB")
    p.add_argument(
        "--efi-unsigned",
        action="store_true",
        help="on UEFI, configureOs installs GRUB's unsigned image (Secure Boot refuses it)",
    )
    p.add_argument("--smb-admin-cred", type=Path, help="writer account (createImage into REPO)")
    p.add_argument(
        "--emulate-boot",
        action="store_true",
        help="no real boot or reboot (a namespace): boot checks and reports the restored OS",
    )
    p.add_argument("--os-report", help="http://server:8781/api/os, where a booted OS reports")
    p.add_argument("--once", type=Path, help="run this command JSON and print the result")
    a = p.parse_args(argv)
    logs.configure()
    a.work.mkdir(parents=True, exist_ok=True)
    # killed politely (a shutdown, the lab's teardown): unwind like an error, so a restore in
    # progress wipes the signatures of the half-written filesystem before the agent exits
    signal.signal(signal.SIGTERM, _terminated)
    signal.signal(signal.SIGHUP, _terminated)
    agent = Agent(a)
    if a.once:
        cmd = json.loads(a.once.read_text())
        result = agent.execute(cmd)
        print("RESULT " + json.dumps(result), flush=True)
        return 0 if result["code"] == 0 else 1
    return agent.serve()


if __name__ == "__main__":
    sys.exit(main())
