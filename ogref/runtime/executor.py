"""Runs a :class:`~ogref.core.deploy.DeploySession` against real devices and files.

``Executor`` answers each command of the decision core: it inspects the target partition, the
image (header, whole-file MD5) and the CACHE; formats, empties or evicts the cache; deletes stale
copies; fetches by UNICAST from a repository directory; restores partitions; runs configureOs;
and feeds back the events.  It decides nothing itself — error codes, fallbacks and admission
come from the core.  Multicast and torrent transfers, and restores from a MASTER, belong to the
netns lab: they raise NotExecError (7) here.

Under the strict preset (``STRICT``: 1.1.1d's decisions) it refuses — before carrying them out —
the reproduced defects listed in :data:`REFUSED_DEFECTS` (``docs/deviations.md``): they would
destroy data on a real disk, or cannot be reproduced on this runtime's cache layout.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ogref.core.deploy import DeployRequest, DeploySession
from ogref.core.driver import drive
from ogref.core.events import (
    STAGE_OF,
    CacheInspected,
    Command,
    ConfigureOs,
    Defect,
    DeleteCachedCopy,
    EmptyCache,
    Event,
    EvictFromCache,
    FailureKind,
    FetchToCache,
    Finish,
    FormatCache,
    ImageInspected,
    InspectCache,
    InspectImage,
    InspectTarget,
    Log,
    MethodSwitched,
    PostconfFailed,
    PostconfFinished,
    RestoreFailed,
    RestoreFinished,
    RestorePartition,
    Source,
    TargetInspected,
    TransferFailed,
    TransferFinished,
)
from ogref.errors import (
    ImageFileError,
    LockedError,
    NotExecError,
    NotFoundError,
    OgError,
)
from ogref.model.image import Image
from ogref.model.method import Transport
from ogref.model.policy import EngineConfig
from ogref.runtime import cacheupdate, filesystem, imagefile, postconf, restore
from ogref.runtime.cachefs import DEFAULT_ROOT, CachePartition, find_cache
from ogref.runtime.chunked import image as chunked_image
from ogref.runtime.chunked import inventory, transfer
from ogref.runtime.chunked import restore as chunked_restore
from ogref.runtime.chunked.manifest import Manifest
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.lock import is_locked, partition_lock_path
from ogref.runtime.loopdev import partition_path
from ogref.runtime.proc import Progress

DEFAULT_REPO = Path("/opt/opengnsys/images")

# The 1.1.1d defects (rows of docs/deviations.md) a strict session may reproduce in planning and
# simulation, but the runtime will not carry out on real disks: why, for each.
REFUSED_DEFECTS: dict[int, str] = {
    2: "a leftover .torrent.bf would fail a good copy with 31; this runtime marks interrupted "
    "copies with ogLab's .partial, which 1.1.1d does not have, so it cannot tell that situation",
    4: "the stale cached copy would be deleted although nothing replaces it",
    5: "an outdated cached image would be restored over the partition as if current",
    10: "the image would be brought into the cache (replacing a stale copy, or formatting or "
    "emptying the cache) only to be refused for its size",
    11: "a partition of another filesystem would be overwritten without --allow-fs-change",
}


class StrictRefusedError(NotExecError):
    """The runtime will not reproduce this 1.1.1d defect on a real disk (OG_ERR_NOTEXEC, 7)."""


@dataclass
class Machine:
    """The client as the runtime sees it.

    Attributes:
        disks: disk number → block device (``{1: "/dev/sda"}``; loop devices in the lab).
        repository: the mounted repository directory (``/opt/opengnsys/images``).
        cache_root: where the CACHE is mounted (``/opt/opengnsys/cache``).
        lock_dir: partition locks (``/var/lock``).
        hostname: name written by configureOs.
        grub: install GRUB during configureOs when possible.
        server: the OpenGnSys server configureOs points OGAgent at (``ogagent.cfg``).
        efi_signed: on UEFI, configureOs installs Debian's signed shim + GRUB (False: GRUB's own
            unsigned image, which Secure Boot refuses).
    """

    disks: dict[int, str]
    repository: Path = DEFAULT_REPO
    cache_root: Path = DEFAULT_ROOT
    lock_dir: Path = Path("/var/lock")
    hostname: str = field(default_factory=socket.gethostname)
    grub: bool = True
    server: str = ""
    efi_signed: bool = True

    def device(self, disk: int) -> str:
        try:
            return self.disks[disk]
        except KeyError:
            raise NotFoundError(f"disk {disk} is not known (disks: {sorted(self.disks)})") from None

    def partition(self, disk: int, number: int) -> str:
        return partition_path(self.device(disk), number)


def _restore_failed(exc: OgError) -> RestoreFailed:
    """A restore of a local store's image that failed, as the core's failure kinds: a corrupt
    image, a locked partition, a missing image, or anything else (I/O)."""
    if isinstance(exc, ImageFileError):
        return RestoreFailed(FailureKind.CORRUPT, exc.message)
    if isinstance(exc, LockedError):
        return RestoreFailed(FailureKind.LOCKED, exc.message)
    if isinstance(exc, NotFoundError):
        return RestoreFailed(FailureKind.NOT_FOUND, exc.message)
    return RestoreFailed(FailureKind.IO, exc.message)


class Executor:
    """Executes one session's commands on a :class:`Machine`; use once per operation."""

    def __init__(
        self,
        machine: Machine,
        *,
        log: Callable[[str], None] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.machine = machine
        self.repo = ImageStore(machine.repository)
        self.log = log or (lambda _text: None)
        self.progress = progress
        self.cache: CachePartition | None = None
        self.notes: list[str] = []
        self.commands: list[Command] = []
        self._image: Image | None = None  # the image as inspected in the repository
        self.stage = ""  # what the machine is doing: inspect, fetch, restore, postconf
        self.on_stage: Callable[[str], None] = lambda _stage: None  # told when it changes

    # ------------------------------------------------------------------ running

    def run(self, request: DeployRequest, policy: EngineConfig) -> Finish:
        """Drive a session for ``request`` to its end; the cache is unmounted afterwards."""
        session = DeploySession(request, policy)
        try:
            self.commands = drive(session, self.answer)
        finally:
            self.close()
        assert session.result is not None
        return session.result

    def close(self) -> None:
        """Unmount the cache if this executor mounted it."""
        if self.cache is not None:
            self.cache.unmount()
            self.cache = None

    # ------------------------------------------------------------------ cache

    def _open_cache(self) -> CachePartition | None:
        if self.cache is not None:
            return self.cache
        disk1 = self.machine.disks.get(1)
        if disk1 is None:
            return None
        number = find_cache(disk1)
        if number is None:
            return None
        cache = CachePartition(partition_path(disk1, number), self.machine.cache_root, 1)
        cache.mount()
        self.cache = cache
        return cache

    def _cache_event(self) -> CacheInspected:
        cache = self._open_cache()
        if cache is None:
            return CacheInspected(None)
        return CacheInspected(cache.model(), self._present(cache))

    def _repo_manifest(self, name: str) -> Manifest:
        """The repository's manifest of a chunked image (the network executor's mirror)."""
        return chunked_image.load(self.repo, name)

    def _present(self, cache: CachePartition) -> int:
        """Of the chunked image being deployed: the bytes of its chunks the CACHE holds."""
        image = self._image
        if image is None or not image.chunked:
            return 0
        try:
            made = self._repo_manifest(image.name)
        except OgError:
            return 0
        sizes = inventory.chunk_sizes(chunked_image.chunk_store(cache.store))
        return inventory.present(made, sizes)

    # ------------------------------------------------------------------ answers

    def answer(self, cmd: Command) -> Event | None:
        """The event that follows ``cmd`` on the real machine (None for fire-and-forget)."""
        if isinstance(cmd, Defect) and cmd.row in REFUSED_DEFECTS:
            raise StrictRefusedError(
                f"refused on a real disk: {cmd.text} — {REFUSED_DEFECTS[cmd.row]}. STRICT=TRUE "
                "(the opengnsys-1.1.1d-strict preset) reproduces this for planning and "
                "simulation (ogref plan, ogsim run); docs/deviations.md lists what the runtime "
                "refuses"
            )
        if isinstance(cmd, Log):
            self.log(cmd.text)
            return None
        if isinstance(cmd, MethodSwitched):
            self.log(f"switched {cmd.requested} → {cmd.used}: {cmd.reason}")
            return None
        if isinstance(cmd, Finish):
            return None
        stage = STAGE_OF.get(type(cmd), self.stage)
        if stage != self.stage:
            self.stage = stage
            self.on_stage(stage)
        if isinstance(cmd, InspectTarget):
            return self._inspect_target(cmd)
        if isinstance(cmd, InspectImage):
            return self._inspect_image(cmd)
        if isinstance(cmd, InspectCache):
            return self._cache_event()
        if isinstance(cmd, FormatCache | EmptyCache | EvictFromCache):
            cache = self._open_cache()
            assert cache is not None, "the core frees a cache only after finding one"
            if isinstance(cmd, FormatCache):
                cache.format()
            elif isinstance(cmd, EmptyCache):
                cache.empty()
            else:
                cache.evict(cmd.names)
            return CacheInspected(cache.model(), self._present(cache))
        if isinstance(cmd, DeleteCachedCopy):
            cache = self._open_cache()
            if cache is not None:
                imagefile.discard(cache.store.files(cmd.name))
                transfer.discard(cache.store, cmd.name)
                self.log(f"deleted cached {cmd.name}: {cmd.reason}")
            return None
        if isinstance(cmd, FetchToCache):
            return self._fetch(cmd)
        if isinstance(cmd, RestorePartition):
            return self._restore(cmd)
        if isinstance(cmd, ConfigureOs):
            return self._configure(cmd)
        raise NotExecError(f"the runtime cannot execute {type(cmd).__name__}")

    def _inspect_target(self, cmd: InspectTarget) -> TargetInspected:
        node = self.machine.partition(cmd.disk, cmd.partition)
        if not os.path.exists(node):
            return TargetInspected(exists=False)
        fs = filesystem.detect(node)
        locked = is_locked(partition_lock_path(self.machine.lock_dir, node))
        return TargetInspected(True, filesystem.device_size(node), fs, locked)

    def _store(self, source: Source) -> ImageStore | None:
        if source is Source.REPO:
            return self.repo
        if source is Source.CACHE:
            cache = self._open_cache()
            return cache.store if cache else None
        raise NotExecError("restoring from a MASTER needs the netns lab (not implemented here)")

    def _inspect_image(self, cmd: InspectImage) -> ImageInspected:
        store = self._store(cmd.source)
        if store is None:
            return ImageInspected(found=False)
        found = imagefile.inspect(store, cmd.name)
        if found.detail:
            self.log(found.detail)
        if cmd.source is Source.REPO and found.image is not None:
            self._image = found.image
        return ImageInspected(found.found, found.readable, found.image, found.locked, found.detail)

    def _fetch(self, cmd: FetchToCache) -> TransferFinished | TransferFailed:
        if cmd.transport is not Transport.UNICAST:
            raise NotExecError(
                f"{cmd.transport} transfers into the cache run in the netns lab, not here"
            )
        cache = self._open_cache()
        assert cache is not None
        if cmd.image.chunked:
            return self._fetch_chunks(cmd, transfer.DirectorySource(self.repo), cache)
        try:
            done = cacheupdate.fetch_unicast(
                self.repo, cache.store, cmd.image, resume=cmd.resume, progress=self.progress
            )
        except NotFoundError as exc:
            return TransferFailed(FailureKind.NOT_FOUND, exc.message)
        except OgError as exc:
            return TransferFailed(FailureKind.IO, exc.message)
        if done.resumed_from:
            self.log(f"resumed the copy at byte {done.resumed_from}")
        return TransferFinished(done.checksum, done.bytes_moved)

    def _fetch_chunks(
        self,
        cmd: FetchToCache,
        source: transfer.ChunkSource,
        cache: CachePartition,
        new_source: Callable[[], transfer.ChunkSource] | None = None,
    ) -> TransferFinished | TransferFailed:
        """updateCache of a chunked image: only the chunks the CACHE lacks (resumable)."""
        try:
            done = transfer.fetch(
                source, cache.store, cmd.image.name, progress=self.progress, new_source=new_source
            )
        except NotFoundError as exc:
            return TransferFailed(FailureKind.NOT_FOUND, exc.message)
        except ImageFileError as exc:
            return TransferFailed(FailureKind.CHECKSUM, exc.message)
        except OgError as exc:
            return TransferFailed(FailureKind.IO, exc.message)
        self.log(
            f"chunks: {done.chunks_moved} fetched ({done.bytes_moved} bytes), "
            f"{done.chunks_present} already in the CACHE ({done.bytes_present} bytes)"
        )
        return TransferFinished(done.digest, done.bytes_moved)

    def _restore_chunked(
        self,
        cmd: RestorePartition,
        store: ImageStore,
        chunks: chunked_restore.ChunkReader | None = None,
    ) -> RestoreFinished | RestoreFailed:
        """The parallel, out-of-order restore of a chunked image from ``store`` (its chunks
        from ``chunks`` if given)."""
        node = self.machine.partition(cmd.disk, cmd.partition)
        try:
            done = chunked_restore.restore_chunked(
                store,
                cmd.image.name,
                node,
                allow_fs_change=cmd.change_filesystem,
                lock_dir=self.machine.lock_dir,
                progress=self.progress,
                chunks=chunks,
            )
        except OgError as exc:
            return _restore_failed(exc)
        if done.checksum != cmd.image.checksum and cmd.image.checksum:
            return RestoreFailed(FailureKind.CHECKSUM, "the manifest changed during the restore")
        self.log(
            f"restored {cmd.image.name}: {done.chunks_written} chunks written "
            f"({done.written_bytes} bytes), {done.chunks_skipped} already in place, "
            f"{done.seconds:.1f} s"
        )
        return RestoreFinished(done.written_bytes)

    def _restore(self, cmd: RestorePartition) -> RestoreFinished | RestoreFailed:
        local = cmd.source is Source.CACHE or cmd.transport is Transport.UNICAST
        chunked = cmd.image.chunked and local
        if not chunked and cmd.transport is Transport.MULTICAST and cmd.source is not Source.CACHE:
            raise NotExecError("MULTICAST-DIRECT restores run in the netns lab, not here")
        store = self._store(cmd.source)
        if store is None:
            return RestoreFailed(FailureKind.NOT_FOUND, "no CACHE partition")
        if chunked:
            return self._restore_chunked(cmd, store)
        node = self.machine.partition(cmd.disk, cmd.partition)
        try:
            done = restore.restore_image(
                store,
                cmd.image.name,
                node,
                allow_fs_change=cmd.change_filesystem,
                lock_dir=self.machine.lock_dir,
                progress=self.progress,
                expected_md5=cmd.image.checksum,
            )
        except OgError as exc:
            return _restore_failed(exc)
        self.log(f"restored {done.bytes_read} bytes in {done.seconds:.1f} s (MD5 {done.checksum})")
        return RestoreFinished(done.bytes_read)

    def _configure(self, cmd: ConfigureOs) -> PostconfFinished | PostconfFailed:
        try:
            report = postconf.configure_os(
                self.machine.device(cmd.disk),
                cmd.partition,
                self.machine.hostname,
                grub=self.machine.grub,
                server=self.machine.server,
                disk_no=cmd.disk,
                efi_signed=self.machine.efi_signed,
            )
        except OgError as exc:
            return PostconfFailed(exc.code, exc.message)
        for note in report.notes:
            self.log(f"configureOs: {note}")
        self.notes.extend(report.notes)
        return PostconfFinished()
