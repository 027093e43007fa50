"""createImage on a real partition: partclone → compressor → ``<name>.img`` with sidecars.

Sequence (OpenGnSys §2.6, with its weaknesses fixed): write test (14); image and partition
locks (4); space estimate ``used × 0.65`` against free space plus the old ``.ant`` (16); fsck;
optional reduce (17); the stream is written to ``<name>.img.new`` while ``<name>.img.lock``
exists, hashed on the fly; ``.info``, ``.sum`` and ``.full.sum`` are written; only then is the
previous version rotated to ``.ant`` and the new one renamed into place (rolled back if that
fails); the ``.torrent`` is made at once; the filesystem is extended back (18).  A failed
creation leaves the previous image current and intact.  No decision about *whether* to create
is taken here.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ogref.errors import CacheSizeError, FilesystemError, ImageError, PartitionError
from ogref.model.image import CloneTool, Compressor, Image, ImageInfo
from ogref.model.storage import Filesystem
from ogref.runtime import compressor, filesystem, imagefile, partclone
from ogref.runtime.imagefile import ImageFiles, ImageStore
from ogref.runtime.lock import LockFile, partition_lock_path
from ogref.runtime.mount import unmount_device
from ogref.runtime.proc import Poller, Progress, bytes_read_by, run_pipeline

# OpenGnSys's estimate of the compressed size (lzop); kept for every compressor (conservative)
SIZE_FACTOR = 0.65
_CHUNK = 1 << 20
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
) -> CreateResult:
    """Image the filesystem on ``device`` into ``store`` as ``name``."""
    start = time.monotonic()
    if not os.path.exists(device):
        raise PartitionError(f"partition {device} does not exist")
    files = store.files(name)
    store.check_writable()
    files.img.parent.mkdir(parents=True, exist_ok=True)
    fs = filesystem.detect(device)
    if fs in (Filesystem.EMPTY, Filesystem.SWAP, Filesystem.CACHE):
        raise FilesystemError(f"{device} holds no filesystem that can be imaged ({fs})")
    notes: list[str] = []
    unmount_device(device)
    with (
        LockFile(files.lock, f"image {files.name}"),
        LockFile(partition_lock_path(lock_dir, device), f"partition {device}"),
    ):
        used = filesystem.used_bytes(device, fs)
        _check_space(store, files, used)
        filesystem.check(device, fs, repair=True)
        reduced = reduce and fs.shrinkable and filesystem.reduce(device, fs)
        try:
            staged = files.staged()
            digest = _write_stream(device, fs, comp, level, staged, used, progress)
            comp_found, header = imagefile.read_header(staged.img)
            info = ImageInfo(
                CloneTool.PARTCLONE,
                comp,
                fs,
                math.ceil(header.device_size / 1024),
                host or socket.gethostname(),
            )
            imagefile.write_text(staged.info, f"{info}\n")
            imagefile.write_sums(staged, digest)
            imagefile.publish(staged, files)
        except BaseException:
            imagefile.discard(files.staged())
            raise
        finally:
            if reduced:
                filesystem.extend(device, fs)
        made_torrent = False
        if torrent:
            made_torrent = imagefile.make_torrent(files, tracker, digest)
            if not made_torrent:
                notes.append("libtorrent is not importable: no .torrent written")
    image = Image(
        name=files.name,
        filesystem=fs,
        data_size=header.device_size,
        stored_size=files.img.stat().st_size,
        compressor=comp_found,
        checksum=digest,
    )
    return CreateResult(
        image, info, time.monotonic() - start, used, reduced, made_torrent, tuple(notes)
    )


def _check_space(store: ImageStore, files: ImageFiles, used: int) -> None:
    """OpenGnSys's estimate: used × 0.65 must be below free space plus the old ``.ant``."""
    required = int(used * SIZE_FACTOR)
    free = store.free_space()
    ant = Path(f"{files.img}.ant")
    if required >= free and ant.exists() and required < free + ant.stat().st_size:
        for path in files.all_paths():
            Path(f"{path}.ant").unlink(missing_ok=True)  # the backup of the backup makes room
        free = store.free_space()
    if required >= free:
        raise CacheSizeError(
            f"not enough room in {store.root} for image {files.name}: "
            f"needs about {required} bytes, {free} free"
        )


def _write_stream(
    device: str,
    fs: Filesystem,
    comp: Compressor,
    level: int | None,
    staged: ImageFiles,
    expected: int,
    progress: Progress | None,
) -> str:
    """Run partclone | compressor into ``staged.img``; return its whole-file MD5."""
    md5 = hashlib.md5()
    no_space = False

    def drain(stream: IO[bytes]) -> None:
        nonlocal no_space
        with open(staged.img, "wb") as out:
            while True:
                chunk = stream.read(_CHUNK)
                if not chunk:
                    break
                md5.update(chunk)
                try:
                    out.write(chunk)
                except OSError as exc:
                    no_space = exc.errno in (errno.ENOSPC, errno.EDQUOT)
                    raise
            out.flush()
            os.fsync(out.fileno())

    pids: list[int] = []
    poller = None
    if progress is not None:

        def tick() -> None:
            if pids:
                progress(min(bytes_read_by(pids[0]), expected), expected)

        poller = Poller(tick)
    stages = [partclone.clone_argv(fs, device, _logfile("create"))]
    comp_argv = compressor.compress_argv(comp, level)
    if comp_argv:
        stages.append(comp_argv)

    def started(found: list[int]) -> None:
        pids.extend(found)
        if poller:
            poller.start()

    try:
        run_pipeline(
            stages,
            error=ImageError,
            what=f"create image from {device}",
            drain=drain,
            on_start=started,
        )
    except ImageError as exc:
        if no_space:
            raise CacheSizeError(f"the repository filled up while writing: {exc.message}") from None
        raise
    finally:
        if poller:
            poller.stop()
    if progress is not None:
        progress(expected, expected)
    return md5.hexdigest()


def _logfile(kind: str) -> str:
    return os.path.join(tempfile.gettempdir(), f"ogref-partclone-{kind}-{os.getpid()}.log")
