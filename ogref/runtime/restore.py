"""restoreImage on a real partition: image file → decompress → partclone.restore.

Checks in OpenGnSys's order (§2.5): partition present (3), image present (2), header readable
(33), image data size ≤ partition size (30), image and partition not locked (4), and — unlike
OpenGnSys — the filesystem type, refused (20) unless a change is allowed.  Python reads the file
through one reused buffer into an enlarged pipe and counts and hashes it in that same pass (the
decompressor gets exactly the bytes that were hashed); the whole-file MD5 is compared with
``.full.sum`` after the pipeline, so a partial or corrupt stream is never reported restored (33;
every stage's exit status is checked too).  A failed restore wipes the filesystem signatures it
may have half written, so the partition cannot pass for a restored one.  It takes no cache
decisions.
"""

from __future__ import annotations

import contextlib
import os
import time
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
from ogref.runtime import compressor, filesystem, imagefile, partclone
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
    part_size = filesystem.device_size(device)
    if header.device_size > part_size:
        raise ImageSizePartitionError(
            f"image {files.name} needs {header.device_size} bytes, partition {device} has {part_size}"
        )
    if is_locked(files.lock):
        raise LockedError(f"image {files.name} is locked ({files.lock})")
    current = filesystem.detect(device)
    if current not in (Filesystem.EMPTY, image_fs) and not allow_fs_change:
        raise FilesystemError(
            f"{device} holds {current}, image {files.name} is {image_fs}: allow the change explicitly"
        )
    expected = expected_md5 or imagefile.read_sum(files.full_sum)
    total = files.img.stat().st_size
    unmount_device(device)
    with LockFile(partition_lock_path(lock_dir, device), f"partition {device}"):
        try:
            digest, moved = _run(files.img, comp, device, total, progress)
            if moved != total:
                raise ImageFileError(f"read {moved} of {total} bytes of {files.img}")
            if expected and digest != expected:
                raise ImageFileError(
                    f"{files.img}: whole-file MD5 {digest} differs from .full.sum {expected}"
                )
            if image_fs is Filesystem.NTFS:
                # partclone does not copy the NTFS backup boot sector (feasibility §2.6)
                run(["ntfsfix", device], error=ImageError, what="ntfsfix after restore")
        except BaseException:
            _invalidate(device)
            raise
    return RestoreResult(
        files.name, device, image_fs, moved, digest, time.monotonic() - start, bool(expected)
    )


def _run(
    img: Path, comp: Compressor, device: str, total: int, progress: Progress | None
) -> tuple[str, int]:
    digest = imagefile.StreamDigest()

    def seen(data: memoryview) -> None:
        digest.update(data)
        if progress is not None:
            progress(digest.size, total)

    def feed(stream: IO[bytes]) -> None:
        src = os.open(img, os.O_RDONLY | os.O_CLOEXEC)
        try:
            with contextlib.suppress(OSError):
                os.posix_fadvise(src, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            copy_fd(src, stream.fileno(), seen)
        finally:
            os.close(src)

    decomp = compressor.decompress_argv(comp)
    with partclone.run_log("restore") as log:  # a failure keeps the log and names it
        stages = [partclone.restore_argv(device, log)]
        if decomp:
            stages.insert(0, decomp)
        try:
            what = f"restore {img.name} to {device}"
            run_pipeline(stages, error=ImageError, what=what, feed=feed)
        except ImageError as exc:
            text = exc.message.lower()
            corrupt = any(
                w in text
                for w in (
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
            )
            if corrupt or digest.size < total:
                raise ImageFileError(f"corrupt or truncated image stream: {exc.message}") from None
            raise
    return digest.md5, digest.size


def _invalidate(device: str) -> None:
    """Erase filesystem signatures after a failed restore (the content is not trustworthy)."""
    # best effort: the restore error is what the caller must see
    with contextlib.suppress(Exception):
        run(["wipefs", "-a", "-q", device], error=ImageError, check=False)
