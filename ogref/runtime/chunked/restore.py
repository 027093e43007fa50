"""Restore a chunked image onto a partition: chunks decompressed in parallel, written at their
device offsets out of order; unused blocks are not written (as ``partclone.restore``).

The checks and the safeguards are restoreImage's own (:func:`~ogref.runtime.restore.check_target`,
:func:`~ogref.runtime.restore.guarded_write`): partition present (3), manifest present (2) and
sound (33), data size ≤ partition (30), image not locked (4), filesystem change refused (20);
the partition unmounted and locked; every chunk's content re-hashed before it is written, a
missing or damaged one is 33 and the half-written filesystem's signatures are wiped; NTFS gets
``ntfsfix``.  A missing chunk is found before the partition is touched.

In place (a differential image's default): a chunk the partition already holds is not
written.  What it holds is known one of two ways:

- **by record** (fast): the partition's record (:mod:`ogref.runtime.fingerprint`) says ogref
  last wrote (or made) image M there, and the filesystem's fingerprint is still the one that
  write left; then the chunks of M are on the partition at M's offsets, and a chunk of the new
  image with the same name at the same device offsets is skipped without reading it — and so
  is an all-zero chunk whose device offsets M covered with all-zero chunks (zero runs, such as
  unused inode tables, are cut at FastCDC's maximum size from wherever the last content-defined
  cut fell, so one changed inode before them shifts every zero chunk of the run: same bytes,
  other offsets).  Every other chunk is written.
- **by hash** (otherwise, or ``use_record=False``): each chunk's bytes are read from the
  partition at its offsets and hashed.

Either way onto the base only the difference is written, onto anything else every differing
chunk — the result is the image.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ogref.errors import ImageFileError, OgError, PartitionError
from ogref.model.image import Image
from ogref.runtime import fingerprint
from ogref.runtime.chunked import chunk, image, transfer
from ogref.runtime.chunked.chunker import default_workers
from ogref.runtime.chunked.manifest import ChunkRef, Manifest
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.restore import DEFAULT_LOCK_DIR, RestoreResult, check_target, guarded_write


@dataclass(frozen=True)
class ChunkedRestoreResult(RestoreResult):
    """A restore's result and what it wrote: chunks written and left as they were."""

    written_bytes: int = 0
    chunks_written: int = 0
    chunks_skipped: int = 0
    by_record: bool = False  # in place, what the partition held known from its record
    moved_bytes: int = 0  # a clone: the stream's bytes received
    stream_md5: str = ""  # a clone: their MD5 (the MASTER reports the same)


@dataclass
class WriteStats:
    """What :func:`write_chunks` did."""

    written_bytes: int = 0
    chunks_written: int = 0
    chunks_skipped: int = 0


def restore_chunked(
    images: ImageStore,
    name: str,
    device: str,
    *,
    allow_fs_change: bool = False,
    lock_dir: Path = DEFAULT_LOCK_DIR,
    workers: int = 0,
    progress: Callable[[int, int], None] | None = None,
    in_place: bool | None = None,
    chunks: ChunkReader | None = None,
    use_record: bool = True,
) -> ChunkedRestoreResult:
    """Restore chunked image ``name`` of ``images`` onto the partition ``device``.

    ``in_place`` (default: when the image is differential) writes only the chunks whose bytes
    the partition does not already hold, checked by hash.  ``chunks``: read the chunks from
    there instead of the directory's store (UNICAST-DIRECT from the repository share).
    ``use_record``: an in-place restore may trust the partition's record (see the module)."""
    start = time.monotonic()
    if not os.path.exists(device):
        raise PartitionError(f"partition {device} does not exist")
    made = image.load(images, name)
    files = images.files(name)
    check_target(
        device, files.name, made.header.device_size, made.filesystem, files.lock, allow_fs_change
    )
    store: ChunkReader = chunks if chunks is not None else image.chunk_store(images)
    missing = sorted({c.digest for c in made.chunks if not store.has(c.digest)})
    if missing:
        raise ImageFileError(
            f"chunked image {files.name}: {len(missing)} chunks missing from "
            f"{getattr(store, 'root', 'the repository')} "
            f"(first {missing[0]})"
        )
    if in_place is None:
        in_place = made.base is not None
    with guarded_write(device, made.filesystem, lock_dir) as held:
        fd = os.open(device, (os.O_RDWR if in_place else os.O_WRONLY) | os.O_CLOEXEC)
        try:
            known = None
            if in_place and use_record and held is not None:
                known = _known_chunks(images, made, held, fingerprint.of_fd(fd))
            stats = write_chunks(
                made,
                store,
                fd,
                workers=workers,
                progress=progress,
                in_place=in_place,
                known=known,
            )
            os.fsync(fd)
        finally:
            os.close(fd)
        fingerprint.remember(lock_dir, device, files.name, made.digest)  # under the lock
    return ChunkedRestoreResult(
        files.name,
        device,
        made.filesystem,
        made.data_size,
        made.digest,
        time.monotonic() - start,
        True,
        stats.written_bytes,
        stats.chunks_written,
        stats.chunks_skipped,
        known is not None,
    )


Runs = tuple[tuple[int, int], ...]  # (device offset, length) of each piece of a chunk


class Recorded:
    """What the partition holds by its record: image M's chunks by (name, device runs), and the
    device byte ranges M's all-zero chunks of FastCDC's maximum size cover (merged)."""

    def __init__(self, there: Manifest) -> None:
        self.zero = chunk.zero_digest(there.chunking.max_size)
        self.max_size = there.chunking.max_size
        self.chunks: set[tuple[str, Runs]] = set()
        zeros: list[tuple[int, int]] = []
        for offset, ref in zip(there.chunk_offsets(), there.chunks, strict=True):
            runs = _runs(there, offset, ref.size)
            self.chunks.add((ref.digest, runs))
            if ref.size == self.max_size and ref.digest == self.zero:
                zeros += [(dev, dev + n) for dev, n in runs]
        zeros.sort()
        merged: list[tuple[int, int]] = []
        for a, b in zeros:
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        self._starts = [a for a, _b in merged]
        self._zeros = merged

    def holds(self, digest: str, size: int, runs: Runs) -> bool:
        """Whether the partition holds this chunk at ``runs``: M had it there, or it is all
        zeros and M's zero chunks covered every byte of ``runs``."""
        if (digest, runs) in self.chunks:
            return True
        if size != self.max_size or digest != self.zero:
            return False
        return all(self._zeroed(dev, n) for dev, n in runs)

    def _zeroed(self, dev: int, n: int) -> bool:
        i = bisect.bisect_right(self._starts, dev) - 1
        return i >= 0 and self._zeros[i][1] >= dev + n


def _known_chunks(
    images: ImageStore, made: Manifest, held: fingerprint.Held, now: str | None
) -> Recorded | None:
    """The chunks the partition holds by its record (those of the image ogref last wrote
    there) — None when the record cannot be trusted (another fingerprint, no fingerprint, or
    that image's manifest no longer at hand)."""
    if now is None or now != held.fingerprint:
        return None
    if held.digest == made.digest:
        there = made
    else:
        names = [held.name] + ([made.base.name] if made.base is not None else [])
        found = None
        for name in names:
            try:
                cand = image.load(images, name)
            except OgError:
                continue
            if cand.digest == held.digest:
                found = cand
                break
        if found is None:
            return None
        there = found
    if there.header.block_size != made.header.block_size:
        return None
    return Recorded(there)


def _runs(made: Manifest, offset: int, size: int) -> Runs:
    return tuple((dev, n) for dev, _at, n in made.placements(offset, size))


NO_IMAGE_LOCK = Path("/nonexistent/ogref-clone.lock")
"""A clone's target has no image lock to respect: the MASTER holds the image."""


def restore_clone(
    source: Callable[[Callable[[bytes], Any], Any], int],
    image: Image,
    device: str,
    *,
    lock_dir: Path = DEFAULT_LOCK_DIR,
    allow_fs_change: bool = False,
) -> ChunkedRestoreResult:
    """A clone's target: restore chunked ``image`` onto ``device`` from ``source`` (a stream
    source such as :func:`ogref.transports.multicast.receiver_source`) carrying a MASTER's
    :func:`~.transfer.clone_stream` — its manifest (digest checked against ``image.checksum``)
    and its pack, each chunk checked and written at its offsets as it arrives; restoreImage's
    checks (30, 20) and safeguards (the partition wiped on any failure)."""
    start = time.monotonic()
    if not os.path.exists(device):
        raise PartitionError(f"partition {device} does not exist")
    check_target(
        device, image.name, image.data_size, image.filesystem, NO_IMAGE_LOCK, allow_fs_change
    )
    with guarded_write(device, image.filesystem, lock_dir):
        fd = os.open(device, os.O_WRONLY | os.O_CLOEXEC)
        try:
            writer = transfer.CloneWriter(fd, image.checksum)
            md5 = hashlib.md5()
            moved = source(writer.feed, md5)
            pack = writer.finish()
            os.fsync(fd)
        finally:
            os.close(fd)
        made = pack.made
        fingerprint.remember(lock_dir, device, image.name, made.digest)  # under the lock
    return ChunkedRestoreResult(
        image.name,
        device,
        made.filesystem,
        made.data_size,
        made.digest,
        time.monotonic() - start,
        True,
        pack.written,
        pack.kept,
        0,
        False,
        moved,
        md5.hexdigest(),
    )


BATCH = 2 * 1024 * 1024  # bytes of consecutive chunks one task restores (fewer, larger writes)
_IOV_MAX = 1024


class ChunkReader(Protocol):
    """Where a restore reads chunks: a chunk store, or the repository over the network."""

    def has(self, digest: str) -> bool: ...

    def read(self, digest: str, size: int) -> bytes: ...


def write_chunks(
    made: Manifest,
    store: ChunkReader,
    fd: int,
    *,
    workers: int = 0,
    progress: Callable[[int, int], None] | None = None,
    in_place: bool = False,
    known: Recorded | None = None,
) -> WriteStats:
    """Read, check and write every chunk of ``made`` at its device offsets through ``fd``
    (``in_place``: only those the device does not already hold — by ``known``, the
    partition's record, or else checked by reading and hashing).

    Consecutive chunks are restored in batches of about :data:`BATCH` bytes per task, their
    writes merged where they are adjacent on the device; batches finish in any order."""
    workers = workers or default_workers()
    stats = WriteStats()

    def batch(items: list[tuple[int, ChunkRef]]) -> tuple[int, int, int]:
        """Restore consecutive chunks: (their bytes, bytes written, chunks written)."""
        writes: list[tuple[int, memoryview]] = []
        total = written = count = 0
        for offset, ref in items:
            total += ref.size
            places = list(made.placements(offset, ref.size))
            if in_place:
                if known is not None:
                    if known.holds(ref.digest, ref.size, tuple((d, n) for d, _a, n in places)):
                        continue
                elif _holds(fd, places, ref.size, ref.digest):
                    continue
            data = memoryview(store.read(ref.digest, ref.size))
            writes += [(dev, data[at : at + n]) for dev, at, n in places]
            written += ref.size
            count += 1
        _write_runs(fd, writes)
        return total, written, count

    done = 0
    pending: deque[Future[tuple[int, int, int]]] = deque()

    def collect(fut: Future[tuple[int, int, int]]) -> None:
        nonlocal done
        total, written, count = fut.result()
        done += total
        stats.written_bytes += written
        stats.chunks_written += count
        if progress is not None:
            progress(done, made.data_size)

    with ThreadPoolExecutor(workers, thread_name_prefix="ogref-restore") as pool:
        try:
            items: list[tuple[int, ChunkRef]] = []
            size = 0
            for offset, ref in zip(made.chunk_offsets(), made.chunks, strict=True):
                items.append((offset, ref))
                size += ref.size
                if size < BATCH:
                    continue
                pending.append(pool.submit(batch, items))
                items, size = [], 0
                while len(pending) > 2 * workers or (pending and pending[0].done()):
                    collect(pending.popleft())
            if items:
                pending.append(pool.submit(batch, items))
            while pending:
                collect(pending.popleft())
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise
    stats.chunks_skipped = len(made.chunks) - stats.chunks_written
    return stats


def _write_runs(fd: int, writes: list[tuple[int, memoryview]]) -> None:
    """Write pieces at their device offsets, adjacent ones in one ``pwritev``."""
    i = 0
    while i < len(writes):
        start, first = writes[i]
        views = [first]
        end = start + len(first)
        i += 1
        while i < len(writes) and writes[i][0] == end and len(views) < _IOV_MAX:
            views.append(writes[i][1])
            end += len(writes[i][1])
            i += 1
        _pwritev_all(fd, views, start)


write_runs = _write_runs  # public name: chunkcast's receiver writes its chunks with it


def _pwritev_all(fd: int, views: list[memoryview], offset: int) -> None:
    while views:
        n = os.pwritev(fd, views, offset)
        if n <= 0:
            raise OSError(f"pwritev wrote nothing at offset {offset}")
        offset += n
        while views and n >= len(views[0]):
            n -= len(views[0])
            views = views[1:]
        if views and n:
            views[0] = views[0][n:]


_scratch = threading.local()


def _holds(fd: int, places: list[tuple[int, int, int]], size: int, digest: str) -> bool:
    """Whether the device already holds the chunk's bytes at its offsets (by hash), read into
    a buffer each thread reuses."""
    buf: bytearray | None = getattr(_scratch, "buf", None)
    if buf is None or len(buf) < size:
        buf = bytearray(max(size, 1024 * 1024))
        _scratch.buf = buf
    view = memoryview(buf)[:size]
    for dev_off, at, length in places:
        got = 0
        while got < length:
            n = os.preadv(fd, [view[at + got : at + length]], dev_off + got)
            if n <= 0:
                return False
            got += n
    return chunk.digest(view) == digest
