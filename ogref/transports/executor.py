"""The runtime executor with network transports: the live client's side of the lab.

``NetworkExecutor`` is the runtime's :class:`~ogref.runtime.executor.Executor` with the
repository reached over SMB instead of a local directory, and the transports the runtime leaves
to the lab: updateCache by UNICAST (pysmb, resumable), MULTICAST (``udp-receiver --file``) and
TORRENT (libtorrent); restores straight from the repository by UNICAST (SMB stream) and
MULTICAST (``udp-receiver`` stream).  Inspecting the repository goes through a local metadata
mirror, so the runtime's header and checksum code is used unchanged.  Like its base, it decides
nothing: every choice comes from the core's commands.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ogref.core.deploy import DeployRequest
from ogref.core.events import (
    FailureKind,
    FetchToCache,
    Finish,
    ImageInspected,
    InspectImage,
    RestoreFailed,
    RestoreFinished,
    RestorePartition,
    Source,
    TransferFailed,
    TransferFinished,
)
from ogref.errors import (
    ImageFileError,
    LockedError,
    MulticastReceiveFileError,
    NotFoundError,
    OgError,
    ProtocolJoinMasterError,
    RepositoryError,
)
from ogref.model.method import Transport
from ogref.model.policy import EngineConfig, McastProtocol
from ogref.runtime import imagefile
from ogref.runtime.executor import Executor, Machine
from ogref.runtime.proc import Progress
from ogref.transports import multicast, smb, stream, torrent
from ogref.transports.repository import ControlError, RepositoryControl


@dataclass(frozen=True)
class Phase:
    """A timed step of the operation, for the server's per-computer record."""

    name: str
    start: float
    end: float
    bytes: int = 0
    detail: str = ""


@dataclass
class NetworkSetup:
    """How this client reaches the repository: SMB credentials, control API, own address."""

    smb: smb.SmbCredentials
    control: RepositoryControl
    interface: str
    client_ip: str  # with prefix
    torrent_timeout: float = 3600.0
    torrent_stall: float = 120.0
    clock: Callable[[], float] = time.monotonic
    phases: list[Phase] = field(default_factory=list)


class NetworkExecutor(Executor):
    """Executes a session's commands with the repository behind SMB, multicast and BitTorrent."""

    def __init__(
        self,
        machine: Machine,
        net: NetworkSetup,
        *,
        log: Callable[[str], None] | None = None,
        progress: Progress | None = None,
    ) -> None:
        super().__init__(machine, log=log, progress=progress)
        self.net = net
        self.mirror = smb.RepositoryMirror(net.smb, machine.repository)
        self.policy = EngineConfig()
        self.bytes_moved = 0
        self.verified: bool | None = None

    def run(self, request: DeployRequest, policy: EngineConfig) -> Finish:
        self.policy = policy
        return super().run(request, policy)

    def _phase(self, name: str, start: float, moved: int = 0, detail: str = "") -> None:
        self.net.phases.append(Phase(name, start, self.net.clock(), moved, detail))

    def _receiver(self) -> multicast.ReceiverConfig:
        return multicast.ReceiverConfig(
            self.net.interface,
            self.net.client_ip,
            self.net.smb.server,
            start_timeout=self.policy.mcast_error_session,
            receive_timeout=self.policy.mcast_wait,
        )

    # ------------------------------------------------------------------ inspection

    def _inspect_image(self, cmd: InspectImage) -> ImageInspected:
        if cmd.source is Source.REPO:
            t0 = self.net.clock()
            try:
                if not self.mirror.refresh(cmd.name):
                    return ImageInspected(found=False)
            except RepositoryError as exc:
                self.log(exc.message)
                return ImageInspected(found=False)
            finally:
                self._phase("inspect", t0)
        return super()._inspect_image(cmd)

    # ------------------------------------------------------------------ updateCache

    def _fetch(self, cmd: FetchToCache) -> TransferFinished | TransferFailed:
        cache = self._open_cache()
        assert cache is not None, "the core fetches only into a present cache"
        dst = cache.store.files(cmd.image.name)
        dst.img.parent.mkdir(parents=True, exist_ok=True)
        t0 = self.net.clock()
        try:
            if cmd.transport is Transport.UNICAST:
                moved, digest = self._fetch_unicast(cmd, dst)
            elif cmd.transport is Transport.MULTICAST:
                moved, digest = self._fetch_multicast(cmd, dst)
            else:
                moved, digest = self._fetch_torrent(cmd, dst)
        except NotFoundError as exc:
            self._phase("fetch", t0, 0, exc.message)
            return TransferFailed(FailureKind.NOT_FOUND, exc.message)
        except (ControlError, torrent.TorrentError) as exc:
            kind = FailureKind.JOIN
            if isinstance(exc, torrent.TorrentError) and exc.joined:
                kind = FailureKind.RECEIVE
            self._phase("fetch", t0, 0, str(exc))
            return TransferFailed(kind, str(exc))
        except ProtocolJoinMasterError as exc:  # the session never reached this computer
            self._phase("fetch", t0, 0, exc.message)
            return TransferFailed(FailureKind.JOIN, exc.message)
        except MulticastReceiveFileError as exc:
            self._phase("fetch", t0, 0, exc.message)
            return TransferFailed(FailureKind.RECEIVE, exc.message)
        except OgError as exc:
            self._phase("fetch", t0, 0, exc.message)
            return TransferFailed(FailureKind.IO, exc.message)
        self.bytes_moved += moved
        self._phase("fetch", t0, moved, str(cmd.transport))
        # sidecars as OpenGnSys's updateCache leaves them: .sum, .full.sum, and the repo's .info
        imagefile.write_sums(dst, digest)
        for suffix in (".info", ".torrent"):
            mirrored = self.mirror.sidecar(cmd.image.name, suffix)
            if mirrored.exists() and not dst.sidecar(suffix).exists():
                shutil.copyfile(mirrored, dst.sidecar(suffix))
        dst.partial.unlink(missing_ok=True)
        self.verified = not cmd.image.checksum or digest == cmd.image.checksum
        return TransferFinished(digest, moved)

    def _fetch_unicast(self, cmd: FetchToCache, dst: imagefile.ImageFiles) -> tuple[int, str]:
        md5 = hashlib.md5()
        offset = 0
        marker = imagefile.read_sum(dst.partial)
        if cmd.resume and dst.img.exists() and marker and marker == cmd.image.checksum:
            offset = dst.img.stat().st_size
            with open(dst.img, "rb") as f:
                while chunk := f.read(4 << 20):
                    md5.update(chunk)
            self.log(f"resuming the SMB copy at byte {offset}")
        imagefile.write_text(dst.partial, (cmd.image.checksum or "unknown") + "\n")
        total = cmd.image.stored_size

        def progress(n: int) -> None:
            if self.progress is not None:
                self.progress(offset + n, total)

        moved = smb.fetch_to_file(
            self.net.smb, cmd.image.name, dst.img, offset=offset, md5=md5, progress=progress
        )
        return moved, md5.hexdigest()

    def _fetch_multicast(self, cmd: FetchToCache, dst: imagefile.ImageFiles) -> tuple[int, str]:
        assert cmd.multicast is not None
        state = multicast.request_sender(
            self.net.control, cmd.image.name, cmd.multicast, self.net.client_ip
        )
        self.log(f"multicast sender {state} for {cmd.image.name} on port {cmd.multicast.port}")
        dst.img.unlink(missing_ok=True)
        total = cmd.image.stored_size
        report = self.progress

        def progress(n: int) -> None:
            if report is not None:
                report(n, total)

        moved = multicast.receive_file(self._receiver(), cmd.multicast, dst.img, progress)
        return moved, imagefile.md5_full(dst.img)

    def _fetch_torrent(self, cmd: FetchToCache, dst: imagefile.ImageFiles) -> tuple[int, str]:
        mirrored = self.mirror.sidecar(cmd.image.name, ".torrent")
        if not mirrored.exists():
            raise NotFoundError(f"{cmd.image.name}.img.torrent is not in the repository")
        shutil.copyfile(mirrored, dst.torrent)
        assert cmd.torrent is not None
        done = torrent.fetch(
            dst.torrent,
            dst.img.parent,
            cmd.torrent,
            str(self.net.client_ip).split("/")[0],
            timeout=self.net.torrent_timeout,
            stall=self.net.torrent_stall,
            log=self.log,
            progress=self.progress,
        )
        if done.seeded:
            now = self.net.clock()
            self.net.phases.append(Phase("seed", now - done.seeded, now, done.uploaded))
        self.log(
            f"torrent: {done.downloaded} bytes down, {done.uploaded} up"
            + (" (resumed)" if done.resumed else "")
        )
        return done.downloaded, imagefile.md5_full(dst.img)

    # ------------------------------------------------------------------ restore

    def _counted(self, source: stream.Source, total: int) -> stream.Source:
        """``source`` telling the progress callback the bytes it has written so far."""
        report = self.progress
        if report is None:
            return source

        def counted(write: Callable[[bytes], object], md5: object) -> int:
            done = 0

            def counting(chunk: bytes) -> object:
                nonlocal done
                out = write(chunk)
                done += len(chunk)
                report(done, total)
                return out

            return source(counting, md5)

        return counted

    def _restore(self, cmd: RestorePartition) -> RestoreFinished | RestoreFailed:
        t0 = self.net.clock()
        if cmd.source is not Source.REPO:
            result = super()._restore(cmd)
            self._phase("restore", t0, cmd.image.stored_size, str(cmd.source))
            if isinstance(result, RestoreFinished) and cmd.image.checksum:
                self.verified = True if self.verified is None else self.verified
            return result
        node = self.machine.partition(cmd.disk, cmd.partition)
        if (
            cmd.transport is Transport.MULTICAST
            and self.policy.mcast_protocol is McastProtocol.CHUNKCAST
        ):
            chunked = self._restore_chunkcast(cmd, node, t0)
            if chunked is not None:
                return chunked
        source: stream.Source
        if cmd.transport is Transport.MULTICAST:
            assert cmd.multicast is not None
            try:
                state = multicast.request_sender(
                    self.net.control, cmd.image.name, cmd.multicast, self.net.client_ip
                )
            except ControlError as exc:
                return RestoreFailed(FailureKind.JOIN, str(exc))
            self.log(f"multicast sender {state} for {cmd.image.name} on port {cmd.multicast.port}")
            source = multicast.receiver_source(self._receiver(), cmd.multicast)
        else:
            creds = self.net.smb

            def source(write: Callable[[bytes], object], md5: object) -> int:
                with smb.SmbShare(creds) as share:
                    return share.retrieve(smb.image_path(cmd.image.name), write, md5=md5)

        source = self._counted(source, cmd.image.stored_size)
        try:
            done = stream.restore_from(
                source,
                cmd.image,
                node,
                lock_dir=self.machine.lock_dir,
                what=f"{cmd.transport}-DIRECT restore of {cmd.image.name} to {node}",
            )
        except ImageFileError as exc:
            kind = FailureKind.RECEIVE if "udp-receiver" in exc.message else FailureKind.CORRUPT
            self._phase("restore", t0, 0, exc.message)
            return RestoreFailed(kind, exc.message)
        except LockedError as exc:
            return RestoreFailed(FailureKind.LOCKED, exc.message)
        except OgError as exc:
            kind = FailureKind.RECEIVE if "udp-receiver" in exc.message else FailureKind.IO
            if isinstance(exc.__cause__, ProtocolJoinMasterError):  # the session never came
                kind, exc = FailureKind.JOIN, exc.__cause__
            self._phase("restore", t0, 0, exc.message)
            return RestoreFailed(kind, exc.message)
        self.bytes_moved += done.bytes_read
        self.verified = True
        self._phase("restore", t0, done.bytes_read, f"{cmd.transport}-DIRECT")
        self.log(f"restored {done.bytes_read} bytes from the network (MD5 {done.checksum})")
        return RestoreFinished(done.bytes_read)

    # ------------------------------------------------------------------ chunkcast (MCASTPROTOCOL)

    def _restore_chunkcast(
        self, cmd: RestorePartition, node: str, t0: float
    ) -> RestoreFinished | RestoreFailed | None:
        """MULTICAST-DIRECT by chunkcast (:mod:`ogref.transports.chunkcast.engine`); None when
        the repository holds no chunked version of the image (then udpcast, as OpenGnSys)."""
        from ogref.transports.chunkcast import engine as chunkcast

        assert cmd.multicast is not None
        data = bytearray()
        try:
            with smb.SmbShare(self.net.smb) as share:
                share.retrieve(f"/{cmd.image.name}.manifest.json", data.extend)
        except Exception as exc:  # pysmb's OperationFailure, OSError: no manifest there
            self.log(f"chunkcast: no chunked version of {cmd.image.name} ({exc}): udpcast")
            return None
        try:
            key = chunkcast.request_session(
                self.net.control.base_url, self.net.control.token, cmd.image.name, cmd.multicast
            )
        except ControlError as exc:
            return RestoreFailed(FailureKind.JOIN, str(exc))
        try:
            stats = chunkcast.restore_direct(
                key=key,
                manifest_bytes=bytes(data),
                session=cmd.multicast,
                device=node,
                interface_ip=str(self.net.client_ip).split("/")[0],
                start_timeout=self.policy.mcast_error_session,
                receive_timeout=self.policy.mcast_wait,
                lock_dir=self.machine.lock_dir,
                log=self.log,
            )
        except ProtocolJoinMasterError as exc:
            self._phase("restore", t0, 0, exc.message)
            return RestoreFailed(FailureKind.JOIN, exc.message)
        except LockedError as exc:
            return RestoreFailed(FailureKind.LOCKED, exc.message)
        except OgError as exc:
            self._phase("restore", t0, 0, exc.message)
            return RestoreFailed(FailureKind.RECEIVE, exc.message)
        moved = int(stats["useful_bytes"])
        self.bytes_moved += moved
        self.verified = True  # every chunk was hashed against the manifest before it was written
        self._phase("restore", t0, moved, "MULTICAST-DIRECT chunkcast")
        return RestoreFinished(moved)
