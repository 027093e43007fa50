"""Restore a chunked image onto a partition: chunks decompressed in parallel, written at their
device offsets out of order; unused blocks are not written (as ``partclone.restore``).

The checks and the safeguards are restoreImage's own (:func:`~ogref.runtime.restore.check_target`,
:func:`~ogref.runtime.restore.guarded_write`): partition present (3), manifest present (2) and
sound (33), data size ≤ partition (30), image not locked (4), filesystem change refused (20);
the partition unmounted and locked; every chunk's content re-hashed before it is written, a
missing or damaged one is 33 and the half-written filesystem's signatures are wiped; NTFS gets
``ntfsfix``.  A missing chunk is found before the partition is touched.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ogref.errors import ImageFileError, PartitionError
from ogref.runtime.chunked import image
from ogref.runtime.chunked.chunker import default_workers
from ogref.runtime.chunked.manifest import Manifest
from ogref.runtime.chunked.store import ChunkStore
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.restore import DEFAULT_LOCK_DIR, RestoreResult, check_target, guarded_write


def restore_chunked(
    images: ImageStore,
    name: str,
    device: str,
    *,
    allow_fs_change: bool = False,
    lock_dir: Path = DEFAULT_LOCK_DIR,
    workers: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> RestoreResult:
    """Restore chunked image ``name`` of ``images`` onto the partition ``device``."""
    start = time.monotonic()
    if not os.path.exists(device):
        raise PartitionError(f"partition {device} does not exist")
    made = image.load(images, name)
    files = images.files(name)
    check_target(
        device, files.name, made.header.device_size, made.filesystem, files.lock, allow_fs_change
    )
    store = image.chunk_store(images)
    missing = sorted({c.digest for c in made.chunks if not store.has(c.digest)})
    if missing:
        raise ImageFileError(
            f"chunked image {files.name}: {len(missing)} chunks missing from {store.root} "
            f"(first {missing[0]})"
        )
    with guarded_write(device, made.filesystem, lock_dir):
        fd = os.open(device, os.O_WRONLY | os.O_CLOEXEC)
        try:
            write_chunks(made, store, fd, workers=workers, progress=progress)
            os.fsync(fd)
        finally:
            os.close(fd)
    return RestoreResult(
        files.name,
        device,
        made.filesystem,
        made.data_size,
        made.digest,
        time.monotonic() - start,
        True,
    )


def write_chunks(
    made: Manifest,
    store: ChunkStore,
    fd: int,
    *,
    workers: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Read, check and write every chunk of ``made`` at its device offsets through ``fd``."""
    workers = workers or default_workers()

    def one(offset: int, digest: str, size: int) -> int:
        data = memoryview(store.read(digest, size))
        for dev_off, at, length in made.placements(offset, size):
            piece = data[at : at + length]
            while piece:
                n = os.pwrite(fd, piece, dev_off)
                piece, dev_off = piece[n:], dev_off + n
        return size

    done = 0
    pending: deque[Future[int]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="ogref-restore") as pool:
        try:
            for offset, ref in zip(made.chunk_offsets(), made.chunks, strict=True):
                pending.append(pool.submit(one, offset, ref.digest, ref.size))
                while len(pending) > 4 * workers or (pending and pending[0].done()):
                    done += pending.popleft().result()
                    if progress is not None:
                        progress(done, made.data_size)
            while pending:
                done += pending.popleft().result()
                if progress is not None:
                    progress(done, made.data_size)
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise
