"""A restore fed from the network: bytes arrive from SMB or from ``udp-receiver`` and go through
decompress → ``partclone.restore`` onto the partition, hashed and counted on the way.

The same guarantees as the runtime's file restore: the partition is locked and unmounted, every
stage's exit status is checked (the network source's too), the whole-file MD5 of the stream must
equal the image's, NTFS gets ``ntfsfix``, and a failed restore wipes the signatures it may have
half written.  It takes no decision about which source to use.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ogref.errors import ImageError, ImageFileError
from ogref.model.image import Image
from ogref.model.storage import Filesystem
from ogref.runtime import compressor, partclone
from ogref.runtime.lock import LockFile, partition_lock_path
from ogref.runtime.mount import unmount_device
from ogref.runtime.proc import run, run_pipeline

Source = Callable[[Callable[[bytes], Any], Any], int]
"""A stream source: called with (write, md5); writes every byte, returns how many."""


@dataclass(frozen=True)
class StreamRestored:
    """What a streamed restore did."""

    bytes_read: int
    checksum: str


def restore_from(
    source: Source, image: Image, device: str, *, lock_dir: Path, what: str
) -> StreamRestored:
    """Restore ``image`` onto ``device`` reading it from ``source``."""
    md5 = hashlib.md5()
    moved = 0

    def feed(stream: IO[bytes]) -> None:
        nonlocal moved
        moved = source(stream.write, md5)

    decomp = compressor.decompress_argv(image.compressor)
    unmount_device(device)
    with LockFile(partition_lock_path(lock_dir, device), f"partition {device}"):
        try:
            with partclone.run_log("net") as log:
                stages = [partclone.restore_argv(device, log)]
                if decomp:
                    stages.insert(0, decomp)
                run_pipeline(stages, error=ImageError, what=what, feed=feed)
            if image.stored_size and moved != image.stored_size:
                raise ImageFileError(f"{what}: received {moved} of {image.stored_size} bytes")
            digest = md5.hexdigest()
            if image.checksum and digest != image.checksum:
                raise ImageFileError(f"{what}: stream MD5 {digest} differs from {image.checksum}")
            if image.filesystem is Filesystem.NTFS:
                run(["ntfsfix", device], error=ImageError, what="ntfsfix after restore")
        except BaseException:
            with contextlib.suppress(Exception):
                run(["wipefs", "-a", "-q", device], error=ImageError, check=False)
            raise
    return StreamRestored(moved, digest)
