"""Cut a stream of used blocks into content-defined chunks and store the new ones.

FastCDC (``pyfastcdc``, the 2020 variant) finds the boundaries, so an allocation change in the
filesystem shifts the stream without moving every later boundary.  Hashing, compressing and
writing each chunk run in a thread pool (BLAKE3 and zstd release the GIL), a batch of about
:data:`BATCH` bytes of consecutive chunks per task, while the main thread reads and cuts; at
most a bounded number of batches are in flight.  Only chunks the store lacks
are compressed and written.  It does not know where the stream comes from.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from pyfastcdc import FastCDC

from ogref.runtime.chunked import chunk
from ogref.runtime.chunked.manifest import Chunking, ChunkRef
from ogref.runtime.chunked.store import ChunkStore

BATCH = 2 * 1024 * 1024  # bytes of consecutive chunks one task hashes, compresses and stores


class Readable(Protocol):
    """What the chunker reads: ``readinto`` (0 at the end)."""

    def readinto(self, b: memoryview) -> int: ...


@dataclass
class ChunkStats:
    """What a cut stored: chunks in the image, chunks new to the store, their bytes."""

    chunks: int = 0
    new_chunks: int = 0
    stream_bytes: int = 0
    new_stored_bytes: int = 0


def default_workers() -> int:
    """Threads for hashing and compressing: the CPUs this process may use."""
    return max(1, len(os.sched_getaffinity(0)))


def cut(
    source: Readable,
    store: ChunkStore,
    *,
    chunking: Chunking = Chunking(),
    level: int = chunk.DEFAULT_LEVEL,
    workers: int = 0,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[ChunkRef], ChunkStats]:
    """Chunk ``source`` into ``store``; the chunk list in stream order and what was new."""
    cdc = FastCDC(chunking.avg_size, min_size=chunking.min_size, max_size=chunking.max_size)
    stats = ChunkStats()
    refs: list[ChunkRef] = []
    workers = workers or default_workers()

    def work(batch: list[bytes]) -> list[tuple[ChunkRef, int]]:
        """Name each chunk; compress and store those the store lacks: (ref, bytes stored)."""
        out = []
        for data in batch:
            ref = ChunkRef(chunk.digest(data), len(data))
            stored = 0
            if not store.claim(ref.digest):  # reused: marked recent, kept by a concurrent GC
                frame = chunk.compress(data, level)
                stored = len(frame) if store.put(ref.digest, frame) else 0
            out.append((ref, stored))
        return out

    def collect(fut: Future[list[tuple[ChunkRef, int]]]) -> None:
        for ref, stored in fut.result():
            refs.append(ref)
            stats.chunks += 1
            stats.stream_bytes += ref.size
            if stored:
                stats.new_chunks += 1
                stats.new_stored_bytes += stored
        if progress is not None:
            progress(stats.stream_bytes)

    pending: deque[Future[list[tuple[ChunkRef, int]]]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="ogref-chunk") as pool:
        try:
            batch: list[bytes] = []
            size = 0
            for piece in cdc.cut_stream(source):
                batch.append(bytes(piece.data))
                size += piece.length
                if size < BATCH:
                    continue
                pending.append(pool.submit(work, batch))
                batch, size = [], 0
                while len(pending) > 2 * workers or (pending and pending[0].done()):
                    collect(pending.popleft())
            if batch:
                pending.append(pool.submit(work, batch))
            while pending:
                collect(pending.popleft())
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise
    return refs, stats
