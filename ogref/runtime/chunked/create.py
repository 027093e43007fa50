"""Create a chunked image from a partition: ``partclone -c -a0`` → used blocks → chunk store.

partclone reads the filesystem's used blocks (its own bitmap, not a free-space guess) into a
checksum-free stream; :class:`~.blockstream.UsedBlocks` checks it, :func:`~.chunker.cut` stores
the chunks the store lacks; the chunks are made durable (while partclone waits for its last
progress tick) before the manifest is published.  The
partition is unmounted, locked and checked as createImage does; the image name is locked.
A differential image (``diff_of``) names its base; its chunk list stays complete.  With
``pack`` the image's pack and its ``.pack.torrent`` are written too, by the code the
repository's senders use (:func:`~.transfer.make_pack_torrent`).  Deliberately not done
(``docs/deviations.md``): the filesystem is not reduced.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import socket
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from ogref.errors import CacheSizeError, FilesystemError, ImageError, PartitionError
from ogref.model.storage import Filesystem
from ogref.runtime import filesystem, fingerprint, partclone
from ogref.runtime.chunked import chunk, chunker, image, transfer
from ogref.runtime.chunked.blockstream import ByteReader, UsedBlocks
from ogref.runtime.chunked.chunker import ChunkStats
from ogref.runtime.chunked.manifest import BaseRef, Chunking, Manifest
from ogref.runtime.chunked.store import ChunkStore
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.lock import LockFile, partition_lock_path
from ogref.runtime.mount import unmount_device
from ogref.runtime.proc import run_pipeline

DEFAULT_LOCK_DIR = Path("/var/lock")


@dataclass(frozen=True)
class ChunkedResult:
    """What a chunked create or convert produced."""

    manifest: Manifest
    path: Path
    stats: ChunkStats
    seconds: float
    diff_bytes: int | None = None  # differential: stored bytes of the chunks the base lacks
    pack: Path | None = None  # NAME.pack, when asked for
    pack_torrent: Path | None = None  # NAME.pack.torrent (None without libtorrent)


def chunk_stream(
    stream: ByteReader,
    store: ChunkStore,
    fs: Filesystem | None,
    *,
    chunking: Chunking,
    level: int,
    host: str,
    workers: int = 0,
    progress: Callable[[int], None] | None = None,
    durable: bool = False,
) -> tuple[Manifest, ChunkStats]:
    """Cut a partclone stream into ``store``; the manifest of what it held (not yet written).

    ``durable``: the new chunks are synced (``syncfs``) once the last used block is read and
    before the stream's end is awaited — partclone exits only on its progress thread's next
    tick (``-f 1``), up to a second after its last block, which the sync then overlaps."""
    blocks = UsedBlocks(stream, defer_end=True)
    refs, stats = chunker.cut(
        blocks, store, chunking=chunking, level=level, workers=workers, progress=progress
    )
    if durable:
        store.sync()
    blocks.end()
    made = Manifest(
        blocks.header,
        fs or blocks.header.filesystem,
        blocks.bitmap,
        tuple(refs),
        chunking,
        level,
        host,
        datetime.now(UTC).isoformat(timespec="seconds"),
    )
    return made, stats


def create_chunked(
    device: str,
    images: ImageStore,
    name: str,
    *,
    level: int = chunk.DEFAULT_LEVEL,
    chunking: Chunking = Chunking(),
    lock_dir: Path = DEFAULT_LOCK_DIR,
    host: str = "",
    check: bool = True,
    workers: int = 0,
    progress: Callable[[int, int], None] | None = None,
    diff_of: str = "",
    image_locked: bool = False,
    message: str = "",
    pack: bool = False,
    tracker: str = "",
) -> ChunkedResult:
    """Image the filesystem on ``device`` as chunked image ``name`` of ``images`` (OgError).

    ``diff_of`` names a chunked image of the same directory as the base: the manifest records
    it, and ``diff_bytes`` says what the chunks the base lacks occupy in the store (the store
    never holds a chunk twice, so nothing the base has is written again).  ``image_locked``:
    the caller holds the image lock already (an edit); ``message`` is kept in the manifest."""
    start = time.monotonic()
    if not os.path.exists(device):
        raise PartitionError(f"partition {device} does not exist")
    fs = filesystem.detect(device)
    if fs in (Filesystem.EMPTY, Filesystem.SWAP, Filesystem.CACHE):
        raise FilesystemError(f"{device} holds no filesystem that can be imaged")
    if partclone.program(fs) == "partclone.dd":
        raise FilesystemError(f"no partclone tool reads the used blocks of {fs} on {device}")
    images.check_writable()
    files = images.files(name)
    base = image.load(images, diff_of) if diff_of else None
    store = image.chunk_store(images)
    total = 0
    with ExitStack() as locks:
        if not image_locked:
            locks.enter_context(LockFile(files.lock, f"image {files.name}"))
        unmount_device(device)
        locks.enter_context(LockFile(partition_lock_path(lock_dir, device), f"partition {device}"))
        fingerprint.take(lock_dir, device)  # the check may repair: written again once made
        if check:
            filesystem.check(device, fs, repair=True)
        if progress is not None:
            total = filesystem.used_bytes(device, fs)
        out: list[tuple[Manifest, ChunkStats]] = []

        def tick(done: int) -> None:
            if progress is not None:
                progress(done, max(total, done))

        def drain(stream: IO[bytes]) -> None:
            out.append(
                chunk_stream(
                    stream,
                    store,
                    fs,
                    chunking=chunking,
                    level=level,
                    host=host or socket.gethostname(),
                    workers=workers,
                    progress=tick,
                    durable=True,
                )
            )

        with partclone.run_log("create") as log:
            argv = [*partclone.clone_argv(fs, device, log), "-a0"]
            try:
                run_pipeline([argv], error=ImageError, what=f"chunk {device}", drain=drain)
            except ImageError as exc:
                if _no_space(exc):
                    raise CacheSizeError(f"the chunk store filled up: {exc.message}") from exc
                raise
        made, stats = out[0]
        if message:
            made = dataclasses.replace(made, message=message)
        diff_bytes = None
        if base is not None:
            made = dataclasses.replace(made, base=BaseRef(diff_of, base.digest))
            diff_bytes = difference_bytes(made, base, store)
        path = image.publish(images, files.name, made)
        fingerprint.remember(lock_dir, device, files.name, made.digest)
        packed = torrent = None
        if pack:  # under the image lock, as createImage makes its .torrent
            torrent = transfer.make_pack_torrent(images, files.name, tracker)
            packed = transfer.pack_path(images, files.name)
    return ChunkedResult(made, path, stats, time.monotonic() - start, diff_bytes, packed, torrent)


def difference_bytes(made: Manifest, base: Manifest, store: ChunkStore) -> int:
    """Stored bytes of the chunks of ``made`` that ``base`` does not have."""
    have = {c.digest for c in base.chunks}
    return sum(store.size_on_disk(d) for d in {c.digest for c in made.chunks} - have)


def _no_space(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
