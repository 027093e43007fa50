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

import contextlib
import hashlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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
from ogref.model.policy import EngineConfig
from ogref.runtime import imagefile
from ogref.runtime.cachefs import CachePartition
from ogref.runtime.chunked import image as chunked_image
from ogref.runtime.chunked import inventory, transfer
from ogref.runtime.chunked.manifest import Manifest
from ogref.runtime.chunked.store import ChunkStore
from ogref.runtime.executor import Executor, Machine
from ogref.runtime.proc import Progress
from ogref.runtime.restore import check_target, guarded_write
from ogref.transports import chunks, multicast, smb, stream, torrent
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
                    return self._inspect_chunked(cmd.name)
            except RepositoryError as exc:
                self.log(exc.message)
                return ImageInspected(found=False)
            finally:
                self._phase("inspect", t0)
        return super()._inspect_image(cmd)

    def _inspect_chunked(self, name: str) -> ImageInspected:
        """A chunked image of the share: its manifest mirrored, its chunks' sizes listed (not
        its base's manifest: what the CACHE holds is counted from the CACHE itself)."""
        try:
            made = chunks.mirror_manifest(self.net.smb, self.mirror.store, name)
        except ImageFileError as exc:
            return ImageInspected(True, False, detail=exc.message)
        if made is None:
            return ImageInspected(found=False)
        # the chunks the CACHE holds are the repository's frames: their sizes are known here;
        # only the sub-directories of the others are listed on the share
        local: dict[str, int] = {}
        with contextlib.suppress(OgError, OSError):
            cache = self._open_cache()
            if cache is not None:
                local = inventory.chunk_sizes(chunked_image.chunk_store(cache.store))
        wanted = inventory.distinct(made)
        with chunks.SmbChunkSource(self.net.smb) as share:
            sizes = {d: local[d] for d in wanted if d in local}
            sizes.update(share.sizes({d for d in wanted if d not in local}))
        found = inventory.inspect(self.mirror.store, name, sizes=sizes)
        if found.detail:
            self.log(found.detail)
        if found.image is not None:
            self._image = found.image
        return ImageInspected(found.found, found.readable, found.image, found.locked, found.detail)

    def _repo_manifest(self, name: str) -> Manifest:
        return chunked_image.load(self.mirror.store, name)

    # ------------------------------------------------------------------ updateCache

    def _fetch(self, cmd: FetchToCache) -> TransferFinished | TransferFailed:
        cache = self._open_cache()
        assert cache is not None, "the core fetches only into a present cache"
        dst = cache.store.files(cmd.image.name)
        dst.img.parent.mkdir(parents=True, exist_ok=True)
        t0 = self.net.clock()
        if cmd.image.chunked:
            return self._fetch_chunked(cmd, cache, t0)
        try:
            if cmd.transport is Transport.UNICAST:
                moved, digest = self._fetch_unicast(cmd, dst)
            elif cmd.transport is Transport.MULTICAST:
                moved, digest = self._fetch_multicast(cmd, dst)
            else:
                moved, digest = self._fetch_torrent(cmd, dst)
        except (OgError, ControlError) as exc:
            return self._fetch_failed(t0, exc)
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

    def _fetch_failed(
        self,
        t0: float,
        exc: OgError | ControlError | OSError,
        bad_data: FailureKind = FailureKind.IO,
    ) -> TransferFailed:
        """The failed updateCache's phase and what the core is told: the failure kind the
        fallback rules read, from the exception (``bad_data``: an image file error's kind)."""
        why = exc.message if isinstance(exc, OgError) else str(exc)
        kind = FailureKind.IO
        if isinstance(exc, NotFoundError):
            kind = FailureKind.NOT_FOUND
        elif isinstance(exc, ControlError | torrent.TorrentError):
            why = str(exc)
            joined = isinstance(exc, torrent.TorrentError) and exc.joined
            kind = FailureKind.RECEIVE if joined else FailureKind.JOIN
        elif isinstance(exc, ProtocolJoinMasterError):  # the session never reached this computer
            kind = FailureKind.JOIN
        elif isinstance(exc, MulticastReceiveFileError):
            kind = FailureKind.RECEIVE
        elif isinstance(exc, ImageFileError):
            kind = bad_data
        self._phase("fetch", t0, 0, why)
        return TransferFailed(kind, why)

    def _fetch_chunked(
        self, cmd: FetchToCache, cache: CachePartition, t0: float
    ) -> TransferFinished | TransferFailed:
        """updateCache of a chunked image: UNICAST moves only the chunks the CACHE lacks, one
        SMB connection per worker; MULTICAST and TORRENT carry the image's pack."""
        creds = self.net.smb
        if cmd.transport is not Transport.UNICAST:
            return self._fetch_pack(cmd, cache, t0)
        mirrored = chunked_image.manifest_path(self.mirror.store, cmd.image.name)
        try:
            # the manifest inspected (its digest is the image's checksum), not read again
            source = chunks.SmbChunkSource(creds, manifest=mirrored.read_bytes())
        except (RepositoryError, OSError) as exc:
            why = exc.message if isinstance(exc, RepositoryError) else str(exc)
            self._phase("fetch", t0, 0, why)
            return TransferFailed(FailureKind.JOIN, why)
        opened: list[chunks.SmbChunkSource] = []

        def new_source() -> transfer.ChunkSource:
            src = chunks.SmbChunkSource(creds)
            opened.append(src)
            return src

        try:
            result = self._fetch_chunks(cmd, source, cache, new_source)
        finally:
            for src in [source, *opened]:
                src.close()
        moved = result.bytes_moved if isinstance(result, TransferFinished) else 0
        self._phase("fetch", t0, moved, f"{cmd.transport} chunks")
        if isinstance(result, TransferFinished):
            self.bytes_moved += moved
            self.verified = not cmd.image.checksum or result.checksum == cmd.image.checksum
        return result

    def _fetch_pack(
        self, cmd: FetchToCache, cache: CachePartition, t0: float
    ) -> TransferFinished | TransferFailed:
        """MULTICAST or TORRENT of a chunked image: the repository's pack of all its chunks
        (udp-sender streams ``NAME.pack``; the swarm shares it by ``NAME.pack.torrent``); the
        chunks the CACHE lacks are kept (each checked), the others skipped."""
        name = cmd.image.name
        mirrored = chunked_image.manifest_path(self.mirror.store, name)
        try:
            raw = mirrored.read_bytes()
            made = Manifest.from_json(raw, f"{name} (repository)")
            store = chunked_image.chunk_store(cache.store)
            if cmd.transport is Transport.MULTICAST:
                moved, kept = self._pack_by_multicast(cmd, made, store)
            else:
                moved, kept = self._pack_by_torrent(cmd, made, cache)
            store.sync()
            with transfer.store_lock(cache.store):  # no eviction between the check and install
                lacking = transfer.missing(made, store)
                if lacking:
                    raise ImageFileError(f"the pack lacked {len(lacking)} of the image's chunks")
                transfer.install(cache.store, name, raw, made, locked=True)
        except (OgError, ControlError, OSError) as exc:  # a bad pack is a checksum failure
            return self._fetch_failed(t0, exc, bad_data=FailureKind.CHECKSUM)
        by_chunkcast = cmd.transport is Transport.MULTICAST and self.policy.mcast_protocol.carries(
            into_cache=True, chunked=True
        )
        how = "chunkcast" if by_chunkcast else "pack"
        self.log(f"{how} of {name}: {kept} chunks kept, {moved} bytes received")
        self.bytes_moved += moved
        self._phase("fetch", t0, moved, f"{cmd.transport} {how}")
        self.verified = not cmd.image.checksum or made.digest == cmd.image.checksum
        return TransferFinished(made.digest, moved)

    def _pack_by_multicast(
        self, cmd: FetchToCache, made: Manifest, store: ChunkStore
    ) -> tuple[int, int]:
        assert cmd.multicast is not None
        if self.policy.mcast_protocol.carries(into_cache=True, chunked=True):  # what it lacks
            return self._fetch_chunkcast(cmd, made, store)
        state = multicast.request_sender(
            self.net.control, cmd.image.name, cmd.multicast, self.net.client_ip
        )
        self.log(
            f"multicast sender {state} for {cmd.image.name}'s pack on port {cmd.multicast.port}"
        )
        unpacker = transfer.Unpacker(made, store)
        total = cmd.image.stored_size
        report = self.progress

        def feed(data: bytes) -> None:
            unpacker.feed(data)
            if report is not None:
                report(min(unpacker.bytes, total), total)

        moved = multicast.receiver_source(self._receiver(), cmd.multicast)(feed, hashlib.md5())
        unpacker.finish()
        return moved, unpacker.kept

    def _pack_by_torrent(
        self, cmd: FetchToCache, made: Manifest, cache: CachePartition
    ) -> tuple[int, int]:
        assert cmd.torrent is not None
        name = cmd.image.name
        pack = transfer.pack_path(cache.store, name)
        meta = Path(f"{pack}.torrent")
        with smb.SmbShare(self.net.smb) as share:
            remote = f"/{name}{transfer.PACK_SUFFIX}.torrent"
            if share.size(remote) is None:
                raise NotFoundError(
                    f"{name}{transfer.PACK_SUFFIX}.torrent is not in the repository"
                )
            meta.parent.mkdir(parents=True, exist_ok=True)
            meta.write_bytes(share.read(remote))
        done = self._torrent_fetch(meta, pack.parent, cmd.torrent)
        store = chunked_image.chunk_store(cache.store)
        try:
            with open(pack, "rb") as f:
                kept = transfer.unpack(f, made, store).kept
        finally:  # the chunks are in the store: the pack's room is given back
            pack.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            Path(f"{meta}.bf").unlink(missing_ok=True)
        return done.downloaded, kept

    def _torrent_fetch(
        self, meta: Path, save_dir: Path, session: torrent.TorrentSession
    ) -> torrent.TorrentDone:
        """Download ``meta``'s file into ``save_dir`` from this client's address, seeding as
        ``session`` says; the seeding time becomes a ``seed`` phase."""
        done = torrent.fetch(
            meta,
            save_dir,
            session,
            str(self.net.client_ip).split("/")[0],
            timeout=self.net.torrent_timeout,
            stall=self.net.torrent_stall,
            log=self.log,
            progress=self.progress,
        )
        if done.seeded:
            now = self.net.clock()
            self.net.phases.append(Phase("seed", now - done.seeded, now, done.uploaded))
        return done

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
        done = self._torrent_fetch(dst.torrent, dst.img.parent, cmd.torrent)
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

    def _restore_direct_chunked(self, cmd: RestorePartition) -> RestoreFinished | RestoreFailed:
        """UNICAST-DIRECT of a chunked image: the parallel restore reading chunks from the
        share (one SMB connection per worker), each re-hashed."""
        t0 = self.net.clock()
        try:
            listing = chunks.SmbChunkSource(self.net.smb)
        except RepositoryError as exc:
            return RestoreFailed(FailureKind.JOIN, exc.message)
        reader = chunks.PooledReader(self.net.smb, listing)
        try:
            result = self._restore_chunked(cmd, self.mirror.store, reader)
        finally:
            reader.close()
            listing.close()
        if isinstance(result, RestoreFinished):
            self.bytes_moved += cmd.image.stored_size
            self.verified = True
            self._phase("restore", t0, cmd.image.stored_size, "UNICAST-DIRECT chunks")
        return result

    def _restore_multicast_chunked(self, cmd: RestorePartition) -> RestoreFinished | RestoreFailed:
        """MULTICAST-DIRECT of a chunked image: the repository's pack, each chunk checked and
        written at its offsets as it arrives; restoreImage's checks and safeguards."""
        assert cmd.multicast is not None
        t0 = self.net.clock()
        node = self.machine.partition(cmd.disk, cmd.partition)
        name = cmd.image.name
        try:
            made = chunked_image.load(self.mirror.store, name)
            files = self.mirror.store.files(name)
            check_target(
                node,
                files.name,
                made.header.device_size,
                made.filesystem,
                files.lock,
                cmd.change_filesystem,
            )
            state = multicast.request_sender(
                self.net.control, name, cmd.multicast, self.net.client_ip
            )
            self.log(f"multicast sender {state} for {name}'s pack on port {cmd.multicast.port}")
            source = multicast.receiver_source(self._receiver(), cmd.multicast)
            with guarded_write(node, made.filesystem, self.machine.lock_dir):
                fd = os.open(node, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    writer = transfer.PackWriter(made, fd)
                    moved = source(writer.feed, hashlib.md5())
                    writer.finish()
                    if writer.missing():
                        raise ImageFileError(
                            f"the pack lacked {len(writer.missing())} of the image's chunks"
                        )
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except ControlError as exc:
            return RestoreFailed(FailureKind.JOIN, str(exc))
        except ProtocolJoinMasterError as exc:
            self._phase("restore", t0, 0, exc.message)
            return RestoreFailed(FailureKind.JOIN, exc.message)
        except MulticastReceiveFileError as exc:
            self._phase("restore", t0, 0, exc.message)
            return RestoreFailed(FailureKind.RECEIVE, exc.message)
        except ImageFileError as exc:
            self._phase("restore", t0, 0, exc.message)
            return RestoreFailed(FailureKind.CORRUPT, exc.message)
        except LockedError as exc:
            return RestoreFailed(FailureKind.LOCKED, exc.message)
        except OgError as exc:
            self._phase("restore", t0, 0, exc.message)
            return RestoreFailed(FailureKind.IO, exc.message)
        self.bytes_moved += moved
        self.verified = True
        self._phase("restore", t0, moved, "MULTICAST-DIRECT pack")
        return RestoreFinished(writer.written)

    def _restore(self, cmd: RestorePartition) -> RestoreFinished | RestoreFailed:
        t0 = self.net.clock()
        if cmd.image.chunked and cmd.source is Source.REPO:
            if cmd.transport is Transport.UNICAST:
                return self._restore_direct_chunked(cmd)
            if self.policy.mcast_protocol.carries(into_cache=False, chunked=True):  # by need
                node = self.machine.partition(cmd.disk, cmd.partition)
                by_chunkcast = self._restore_chunkcast(cmd, node, t0)
                if by_chunkcast is not None:
                    return by_chunkcast
            return self._restore_multicast_chunked(cmd)  # the whole pack through udpcast
        if cmd.source is not Source.REPO:
            result = super()._restore(cmd)
            self._phase("restore", t0, cmd.image.stored_size, str(cmd.source))
            if isinstance(result, RestoreFinished) and cmd.image.checksum:
                self.verified = True if self.verified is None else self.verified
            return result
        node = self.machine.partition(cmd.disk, cmd.partition)
        if cmd.transport is Transport.MULTICAST and self.policy.mcast_protocol.carries(
            into_cache=False, chunked=False
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

    def _fetch_chunkcast(
        self, cmd: FetchToCache, made: Manifest, store: ChunkStore
    ) -> tuple[int, int]:
        """MULTICAST-CACHE of a chunked image by chunkcast
        (:func:`ogref.transports.chunkcast.engine.fetch_to_cache`): the chunks the CACHE's
        store lacks, into it; (bytes received, chunks stored).  The caller checks that none is
        missing and installs the manifest, as for the pack."""
        from ogref.transports.chunkcast import engine as chunkcast

        assert cmd.multicast is not None
        key = chunkcast.request_session(
            self.net.control.base_url, self.net.control.token, cmd.image.name, cmd.multicast
        )
        self.log(f"chunkcast session for {cmd.image.name} into the CACHE on port "
                 f"{cmd.multicast.port}")  # fmt: skip
        stats = chunkcast.fetch_to_cache(  # errors 60 (never joined), 57 (lost or incomplete)
            key=key,
            made=made,
            session=cmd.multicast,
            store=store,
            interface_ip=str(self.net.client_ip).split("/")[0],
            start_timeout=self.policy.mcast_error_session,
            receive_timeout=self.policy.mcast_wait,
            log=self.log,
        )
        return int(stats["useful_bytes"]), int(stats["stored_objects"])

    def _chunkcast_failed(self, t0: float, exc: OgError) -> RestoreFailed:
        """A chunkcast restore that failed, for the core: the session never reached this
        computer (60) → JOIN, a partition locked by another restore → LOCKED (no phase: nothing
        was tried), anything else → RECEIVE."""
        if isinstance(exc, LockedError):
            return RestoreFailed(FailureKind.LOCKED, exc.message)
        self._phase("restore", t0, 0, exc.message)
        joined = not isinstance(exc, ProtocolJoinMasterError)
        return RestoreFailed(FailureKind.RECEIVE if joined else FailureKind.JOIN, exc.message)

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
        except OgError as exc:
            return self._chunkcast_failed(t0, exc)
        moved = int(stats["useful_bytes"])
        self.bytes_moved += moved
        self.verified = True  # every chunk was hashed against the manifest before it was written
        self._phase("restore", t0, moved, "MULTICAST-DIRECT chunkcast")
        return RestoreFinished(moved)
