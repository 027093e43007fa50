"""createImage on a real partition: executes the core's :class:`CreateSession` commands.

partclone → compressor → a *staged* ``<name>.img`` hashed on the fly — whole-file MD5 and the
torrent's piece hashes in the same pass, no second read — (under ``<name>.img.lock``
and the partition lock); ``.info``, ``.sum`` and ``.full.sum`` written beside it; only then is
the previous version rotated to ``.ant`` and the new one renamed into place (rolled back if that
fails); the ``.torrent`` is made at once.  Every rule — the checks and their OpenGnSys codes,
the ``used × 0.65`` space estimate, reduce/extend, what happens on failure — comes from the core
session; this module only performs the steps and reports what happened.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ogref.core.create import CreateRequest, CreateSession
from ogref.core.events import (
    CheckFilesystem,
    Command,
    DiscardStaged,
    DropBackup,
    Event,
    ExtendFilesystem,
    Finish,
    InspectStore,
    InspectTarget,
    PublishImage,
    ReduceFilesystem,
    Source,
    StepFailed,
    StepFinished,
    StoreInspected,
    TargetInspected,
    WriteImage,
    WriteSidecars,
)
from ogref.errors import CacheSizeError, ImageError, LockedError, OgError, error_for
from ogref.model.image import CloneTool, Compressor, Image, ImageInfo
from ogref.model.policy import EngineConfig
from ogref.model.storage import Filesystem
from ogref.runtime import compressor, filesystem, imagefile, partclone
from ogref.runtime.imagefile import ImageFiles, ImageStore
from ogref.runtime.lock import LockFile, partition_lock_path
from ogref.runtime.mount import unmount_device
from ogref.runtime.proc import Poller, Progress, bytes_read_by, copy_fd, run_pipeline

DEFAULT_LOCK_DIR = Path("/var/lock")


@dataclass(frozen=True)
class CreateResult:
    """What createImage produced."""

    image: Image
    info: ImageInfo
    seconds: float
    used_bytes: int
    reduced: bool
    torrent: bool
    notes: tuple[str, ...] = field(default=())


def create_image(
    device: str,
    store: ImageStore,
    name: str,
    *,
    comp: Compressor = Compressor.ZSTD,
    level: int | None = None,
    reduce: bool = True,
    host: str = "",
    tracker: str = "",
    torrent: bool = True,
    lock_dir: Path = DEFAULT_LOCK_DIR,
    progress: Progress | None = None,
    target: Source = Source.REPO,
    torrent_piece: int = imagefile.TORRENT_PIECE,
) -> CreateResult:
    """Image the filesystem on ``device`` into ``store`` as ``name`` (raises the OgError).

    ``torrent_piece`` is the ``.torrent``'s piece size (OpenGnSys: 4 MiB, ``ctorrent -l``)."""
    imagefile.check_piece_size(torrent_piece)
    start = time.monotonic()
    files = store.files(name)  # refuses names that escape the store
    request = CreateRequest(1, 1, target, files.name, host or socket.gethostname(), reduce)
    session = CreateSession(request, EngineConfig(img_prog=CloneTool.PARTCLONE, img_comp=comp))
    step = _Steps(device, store, files, level, tracker, torrent, lock_dir, progress)
    step.piece_size = torrent_piece
    with ExitStack() as locks:
        step.locks = locks
        pending = session.start()
        while pending:
            cmd = pending.pop(0)
            event = step.answer(cmd)
            if event is not None:
                pending = [*session.handle(event), *pending]
    result = session.result
    assert isinstance(result, Finish)
    if not result.ok:
        raise error_for(result.code, result.message)
    info = session.info
    assert info is not None and step.digest and step.header is not None
    image = Image(
        name=files.name,
        filesystem=session.fs,
        data_size=step.header.device_size,
        stored_size=files.img.stat().st_size,
        compressor=step.comp_found,
        checksum=step.digest,
    )
    return CreateResult(
        image,
        info,
        time.monotonic() - start,
        session.used,
        session.reduced,
        step.made_torrent,
        tuple(step.notes),
    )


class _Steps:
    """Performs one create session's commands on the device and the store."""

    def __init__(
        self,
        device: str,
        store: ImageStore,
        files: ImageFiles,
        level: int | None,
        tracker: str,
        torrent: bool,
        lock_dir: Path,
        progress: Progress | None,
    ) -> None:
        self.device, self.store, self.files = device, store, files
        self.level, self.tracker, self.torrent = level, tracker, torrent
        self.lock_dir, self.progress = lock_dir, progress
        self.locks = ExitStack()
        self.fs = Filesystem.EMPTY
        self.used = 0
        self.digest = ""
        self.pieces: list[bytes] | None = None
        self.header: partclone.Header | None = None
        self.comp_found = Compressor.NONE
        self.made_torrent = False
        self.piece_size = imagefile.TORRENT_PIECE
        self.notes: list[str] = []

    def _lock(self, path: Path, what: str) -> bool:
        try:
            self.locks.enter_context(LockFile(path, what))
        except LockedError:
            return False
        return True

    def _step(self, fn: object, *args: object) -> Event:
        try:
            fn(*args)  # type: ignore[operator]
        except OgError as exc:
            return StepFailed(exc.message)
        return StepFinished()

    def answer(self, cmd: Command) -> Event | None:
        if isinstance(cmd, InspectTarget):
            return self._inspect_target()
        if isinstance(cmd, InspectStore):
            return self._inspect_store()
        if isinstance(cmd, DropBackup):
            for path in self.files.all_paths():
                Path(f"{path}.ant").unlink(missing_ok=True)
            return None
        if isinstance(cmd, CheckFilesystem):
            return self._step(lambda: filesystem.check(self.device, self.fs, repair=True))
        if isinstance(cmd, ReduceFilesystem):
            return self._step(filesystem.reduce, self.device, self.fs)
        if isinstance(cmd, ExtendFilesystem):
            return self._step(filesystem.extend, self.device, self.fs)
        if isinstance(cmd, WriteImage):
            return self._write(cmd.compressor)
        if isinstance(cmd, WriteSidecars):
            staged = self.files.staged()
            imagefile.write_text(staged.info, f"{cmd.info}\n")
            imagefile.write_sums(staged, self.digest)
            return None
        if isinstance(cmd, PublishImage):
            return self._publish()
        if isinstance(cmd, DiscardStaged):
            imagefile.discard(self.files.staged())
            return None
        return None  # Log, Finish

    def _inspect_target(self) -> TargetInspected:
        if not os.path.exists(self.device):
            return TargetInspected(exists=False)
        self.fs = filesystem.detect(self.device)
        size = filesystem.device_size(self.device)
        if self.fs in (Filesystem.EMPTY, Filesystem.SWAP, Filesystem.CACHE):
            return TargetInspected(True, size, self.fs)
        unmount_device(self.device)
        locked = not self._lock(
            partition_lock_path(self.lock_dir, self.device), f"partition {self.device}"
        )
        self.used = 0 if locked else filesystem.used_bytes(self.device, self.fs)
        return TargetInspected(True, size, self.fs, locked, self.used)

    def _inspect_store(self) -> StoreInspected:
        try:
            self.store.check_writable()
        except OgError as exc:
            self.notes.append(exc.message)  # why: the session's answer says only "not writable"
            return StoreInspected(present=True, writable=False)
        self.files.img.parent.mkdir(parents=True, exist_ok=True)
        locked = not self._lock(self.files.lock, f"image {self.files.name}")
        ant = Path(f"{self.files.img}.ant")
        backup = ant.stat().st_size if ant.exists() else 0
        return StoreInspected(True, True, self.store.free_space(), backup, locked)

    def _write(self, comp: Compressor) -> Event:
        staged = self.files.staged()
        try:
            digest = _write_stream(
                self.device,
                self.fs,
                comp,
                self.level,
                staged,
                self.used,
                self.progress,
                self.torrent and imagefile.torrent_supported(),
                self.piece_size,
            )
            self.digest, self.pieces = digest.md5, digest.pieces
            self.comp_found, self.header = imagefile.read_header(staged.img)
        except CacheSizeError as exc:
            return StepFailed(exc.message, no_space=True)
        except OgError as exc:
            return StepFailed(exc.message)
        return StepFinished(staged.img.stat().st_size, self.digest, self.header.device_size)

    def _publish(self) -> Event:
        try:
            imagefile.publish(self.files.staged(), self.files)
        except OSError as exc:
            return StepFailed(str(exc))
        if self.torrent:
            self.made_torrent = imagefile.make_torrent(
                self.files, self.tracker, self.digest, self.pieces, self.piece_size
            )
            if not self.made_torrent:
                self.notes.append("libtorrent is not importable: no .torrent written")
        return StepFinished()


def _write_stream(
    device: str,
    fs: Filesystem,
    comp: Compressor,
    level: int | None,
    staged: ImageFiles,
    expected: int,
    progress: Progress | None,
    pieces: bool,
    piece_size: int = imagefile.TORRENT_PIECE,
) -> imagefile.StreamDigest:
    """Run partclone | compressor into ``staged.img``; return its MD5 (and torrent pieces).

    The compressor's output crosses Python once: one reused buffer, written to the file and
    hashed in the same pass (MD5, and the torrent's SHA-1 pieces when ``pieces``), so the file is
    never read back.  Its writeback starts as it is written, and it is fsynced before the session
    may publish it.
    """
    digest = imagefile.StreamDigest(pieces=pieces, piece_size=piece_size)
    no_space = False

    def drain(stream: IO[bytes]) -> None:
        nonlocal no_space
        out = os.open(staged.img, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            copy_fd(stream.fileno(), out, digest.update, writeback=True)
            os.fsync(out)  # durable before it may be published; mostly written back already
        except OSError as exc:
            no_space = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            raise
        finally:
            os.close(out)

    pids: list[int] = []
    poller = None
    if progress is not None:

        def tick() -> None:
            if pids:
                progress(min(bytes_read_by(pids[0]), expected), expected)

        poller = Poller(tick)

    def started(found: list[int]) -> None:
        pids.extend(found)
        if poller:
            poller.start()

    try:
        with partclone.run_log("create") as log:
            stages = [partclone.clone_argv(fs, device, log)]
            comp_argv = compressor.compress_argv(comp, level)
            if comp_argv:
                stages.append(comp_argv)
            run_pipeline(
                stages,
                error=ImageError,
                what=f"create image from {device}",
                drain=drain,
                on_start=started,
            )
    except ImageError as exc:
        if no_space:
            err = CacheSizeError(f"the repository filled up while writing: {exc.message}")
            for note in getattr(exc, "__notes__", []):
                err.add_note(note)  # the kept partclone log
            raise err from None
        raise
    finally:
        if poller:
            poller.stop()
    if progress is not None:
        progress(expected, expected)
    return digest
