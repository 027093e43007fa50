"""restoreImage on a real partition: image file → decompress → partclone.restore.

Checks in OpenGnSys's order (§2.5): partition present (3), image present (2), header readable
(33), image data size ≤ partition size (30), image and partition not locked (4), and — unlike
OpenGnSys — the filesystem type, refused (20) unless a change is allowed.  Python reads the file
through one reused buffer into an enlarged pipe and counts and hashes it in that same pass (the
decompressor gets exactly the bytes that were hashed); the whole-file MD5 is compared with
``.full.sum`` after the pipeline, so a partial or corrupt stream is never reported restored (33;
every stage's exit status is checked too).  A failed restore wipes the filesystem signatures it
may have half written, so the partition cannot pass for a restored one.  Those stream
safeguards live in :func:`restore_stream`, which the network restores
(:mod:`ogref.transports.stream`) use too.  It takes no cache decisions.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ogref.errors import (
    FilesystemError,
    ImageError,
    ImageFileError,
    ImageSizePartitionError,
    LockedError,
    PartitionError,
)
from ogref.model.image import Compressor
from ogref.model.storage import Filesystem
from ogref.runtime import compressor, filesystem, fingerprint, imagefile, partclone
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.lock import LockFile, is_locked, partition_lock_path
from ogref.runtime.mount import unmount_device
from ogref.runtime.proc import Progress, copy_fd, run, run_pipeline

DEFAULT_LOCK_DIR = Path("/var/lock")


@dataclass(frozen=True)
class RestoreResult:
    """What a restore did."""

    name: str
    device: str
    filesystem: Filesystem
    bytes_read: int
    checksum: str
    seconds: float
    verified: bool


def restore_image(
    store: ImageStore,
    name: str,
    device: str,
    *,
    allow_fs_change: bool = False,
    lock_dir: Path = DEFAULT_LOCK_DIR,
    progress: Progress | None = None,
    expected_md5: str = "",
) -> RestoreResult:
    """Restore image ``name`` of ``store`` onto the partition ``device``."""
    start = time.monotonic()
    if not os.path.exists(device):
        raise PartitionError(f"partition {device} does not exist")
    files = imagefile.require_image(store, name)
    comp, header = imagefile.read_header(files.img)
    info = imagefile.read_info(files)
    image_fs = info.filesystem if info else header.filesystem
    check_target(device, files.name, header.device_size, image_fs, files.lock, allow_fs_change)
    expected = expected_md5 or imagefile.read_sum(files.full_sum)
    total = files.img.stat().st_size
    digest = imagefile.StreamDigest()

    def seen(data: memoryview) -> None:
        digest.update(data)
        if progress is not None:
            progress(digest.size, total)

    def feed(stream: IO[bytes]) -> None:
        src = os.open(files.img, os.O_RDONLY | os.O_CLOEXEC)
        try:
            with contextlib.suppress(OSError):
                os.posix_fadvise(src, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            copy_fd(src, stream.fileno(), seen)
        finally:
            os.close(src)

    restore_stream(
        feed,
        lambda: (digest.md5, digest.size),
        comp,
        image_fs,
        device,
        expected_md5=expected,
        expected_size=total,
        lock_dir=lock_dir,
        what=f"restore {files.img.name} to {device}",
        md5_source=".full.sum",
    )
    return RestoreResult(
        files.name, device, image_fs, total, digest.md5, time.monotonic() - start, bool(expected)
    )


def check_target(
    device: str,
    name: str,
    data_size: int,
    image_fs: Filesystem,
    image_lock: Path,
    allow_fs_change: bool,
) -> None:
    """restoreImage's checks after the image is found, in OpenGnSys's order: the image's data
    fits the partition (30), the image is not locked (4), and — unlike OpenGnSys — the partition
    holds no other filesystem unless the change is allowed (20).  Shared by every image format."""
    part_size = filesystem.device_size(device)
    if data_size > part_size:
        raise ImageSizePartitionError(
            f"image {name} needs {data_size} bytes, partition {device} has {part_size}"
        )
    if is_locked(image_lock):
        raise LockedError(f"image {name} is locked ({image_lock})")
    current = filesystem.detect(device)
    if current not in (Filesystem.EMPTY, image_fs) and not allow_fs_change:
        raise FilesystemError(
            f"{device} holds {current}, image {name} is {image_fs}: allow the change explicitly"
        )


@contextlib.contextmanager
def guarded_write(
    device: str, image_fs: Filesystem, lock_dir: Path
) -> Iterator[fingerprint.Held | None]:
    """The partition while an image is written onto it: unmounted and locked; after the block,
    NTFS gets ``ntfsfix`` (partclone does not copy its backup boot sector, feasibility §2.6);
    any failure — in the block or in ``ntfsfix`` — wipes the filesystem signatures it may have
    half written, so the partition cannot pass for a restored one.  Shared by every format.

    Yields the record of what the partition held (:func:`ogref.runtime.fingerprint.take`:
    read and deleted before anything is written, so an interrupted write leaves none); a
    writer records what it wrote inside the block, under the partition lock."""
    unmount_device(device)
    with LockFile(partition_lock_path(lock_dir, device), f"partition {device}"):
        held = fingerprint.take(lock_dir, device)
        try:
            yield held
            if image_fs is Filesystem.NTFS:
                run(["ntfsfix", device], error=ImageError, what="ntfsfix after restore")
        except BaseException:
            fingerprint.take(lock_dir, device)  # a record written in the block is void
            _invalidate(device)
            raise


_CORRUPT_WORDS = (
    "crc",
    "checksum",
    "corrupt",
    "unexpected end",
    "truncated",
    "premature",
    "broken",
    "data error",
    "decompression",
    "invalid",
    "read",
    "magic",
)


def restore_stream(
    feed: Callable[[IO[bytes]], None],
    fed: Callable[[], tuple[str, int]],
    comp: Compressor,
    image_fs: Filesystem,
    device: str,
    *,
    expected_md5: str,
    expected_size: int,
    lock_dir: Path,
    what: str,
    md5_source: str = "the image",
    pipeline_error_is_corrupt: bool = True,
) -> tuple[str, int]:
    """Restore a stored image stream onto ``device``: the one place restoreImage's safeguards
    live, for a file (:func:`restore_image`) and for the network (SMB or ``udp-receiver``,
    :mod:`ogref.transports.stream`).

    ``feed`` writes the stored stream into the decompressor (or partclone); ``fed`` then says
    the MD5 and size of what it wrote.  The partition is unmounted and locked; every stage's
    exit status is checked (a decompressor or partclone complaint, or a short stream, is a
    corrupt image: 33 — unless ``pipeline_error_is_corrupt`` is off, as for a network source,
    whose failures are the transfer's, not the image's); the size and whole-stream MD5 must be
    the expected ones (else 33); NTFS gets ``ntfsfix`` (partclone does not copy its backup boot
    sector, feasibility §2.6); any failure wipes the filesystem signatures it may have half
    written.  Returns ``fed()``.
    """
    decomp = compressor.decompress_argv(comp)
    with guarded_write(device, image_fs, lock_dir):
        with partclone.run_log("restore") as log:  # a failure keeps the log and names it
            stages = [partclone.restore_argv(device, log)]
            if decomp:
                stages.insert(0, decomp)
            try:
                run_pipeline(stages, error=ImageError, what=what, feed=feed)
            except ImageError as exc:
                if not pipeline_error_is_corrupt:
                    raise
                corrupt = any(w in exc.message.lower() for w in _CORRUPT_WORDS)
                if corrupt or (expected_size and fed()[1] < expected_size):
                    raise ImageFileError(
                        f"corrupt or truncated image stream: {exc.message}"
                    ) from None
                raise
        md5, moved = fed()
        if expected_size and moved != expected_size:
            raise ImageFileError(f"{what}: got {moved} of {expected_size} bytes")
        if expected_md5 and md5 != expected_md5:
            raise ImageFileError(
                f"{what}: whole-stream MD5 {md5} differs from {md5_source} {expected_md5}"
            )
    return md5, moved


def _invalidate(device: str) -> None:
    """Erase filesystem signatures after a failed restore (the content is not trustworthy)."""
    # best effort: the restore error is what the caller must see
    with contextlib.suppress(Exception):
        run(["wipefs", "-a", "-q", device], error=ImageError, check=False)
