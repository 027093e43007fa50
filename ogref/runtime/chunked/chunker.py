"""Cut a stream of used blocks into content-defined chunks and store the new ones.

FastCDC (``pyfastcdc``, the 2020 variant) finds the boundaries, so an allocation change in the
filesystem shifts the stream without moving every later boundary.  Hashing, compressing and
writing each chunk run in a thread pool (BLAKE3 and zstd release the GIL) while the main thread
reads and cuts; at most a bounded number of chunks are in flight.  Only chunks the store lacks
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

    def work(data: bytes) -> tuple[ChunkRef, int]:
        name = chunk.digest(data)
        if store.has(name):
            return ChunkRef(name, len(data)), 0
        frame = chunk.compress(data, level)
        return ChunkRef(name, len(data)), len(frame) if store.put(name, frame) else 0

    def collect(fut: Future[tuple[ChunkRef, int]]) -> None:
        ref, stored = fut.result()
        refs.append(ref)
        stats.chunks += 1
        stats.stream_bytes += ref.size
        if stored:
            stats.new_chunks += 1
            stats.new_stored_bytes += stored
        if progress is not None:
            progress(stats.stream_bytes)

    pending: deque[Future[tuple[ChunkRef, int]]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="ogref-chunk") as pool:
        try:
            for piece in cdc.cut_stream(source):
                pending.append(pool.submit(work, bytes(piece.data)))
                while len(pending) > 4 * workers or (pending and pending[0].done()):
                    collect(pending.popleft())
            while pending:
                collect(pending.popleft())
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise
    return refs, stats
