"""Random access to the partition a chunked image describes, without restoring it: the bytes at
any device offset, fetched from the chunks that hold them (each decompressed and re-hashed once,
then kept in a small cache); blocks partclone's bitmap marks unused read as zeros.

What a FUSE file serves (:mod:`.fusefs`) and what ``ogref image mount`` loop-mounts.  A damaged
or missing chunk is error 33 on the read that needs it.  It writes nothing.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict

from ogref.runtime.chunked.manifest import Manifest
from ogref.runtime.chunked.store import ChunkStore

CACHE_CHUNKS = 64  # decompressed chunks kept (≤ 64 × 512 KiB with the default chunking)


class PartitionView:
    """The partition of ``made`` as a read-only byte range of ``made.header.device_size``."""

    def __init__(self, made: Manifest, store: ChunkStore, cache_chunks: int = CACHE_CHUNKS):
        self.made = made
        self.store = store
        self.size = made.header.device_size
        bs = made.header.block_size
        self._runs: list[tuple[int, int, int]] = []  # (device offset, length, stream offset)
        pos = 0
        for ext in made.extents:
            self._runs.append((ext.start * bs, ext.count * bs, pos))
            pos += ext.count * bs
        self._run_starts = [r[0] for r in self._runs]
        self._chunk_starts = made.chunk_offsets()
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cache_max = cache_chunks
        self._lock = threading.Lock()

    def read(self, offset: int, size: int) -> bytes:
        """``size`` bytes from device offset ``offset`` (short at the end of the device)."""
        if offset >= self.size or size <= 0:
            return b""
        size = min(size, self.size - offset)
        out = bytearray(size)
        end = offset + size
        i = max(0, bisect.bisect_right(self._run_starts, offset) - 1)
        while i < len(self._runs) and self._runs[i][0] < end:
            dev, length, stream = self._runs[i]
            lo, hi = max(offset, dev), min(end, dev + length)
            if lo < hi:
                self._stream(stream + lo - dev, memoryview(out)[lo - offset : hi - offset])
            i += 1
        return bytes(out)

    def _stream(self, offset: int, into: memoryview) -> None:
        """Fill ``into`` with used-block stream bytes from ``offset``."""
        j = bisect.bisect_right(self._chunk_starts, offset) - 1
        done = 0
        while done < len(into):
            data = self._chunk(j)
            at = offset + done - self._chunk_starts[j]
            take = min(len(into) - done, len(data) - at)
            into[done : done + take] = data[at : at + take]
            done += take
            j += 1

    def _chunk(self, index: int) -> bytes:
        with self._lock:
            data = self._cache.get(index)
            if data is not None:
                self._cache.move_to_end(index)
                return data
        ref = self.made.chunks[index]
        data = self.store.read(ref.digest, ref.size)  # re-hashed: 33 if damaged
        with self._lock:
            self._cache[index] = data
            while len(self._cache) > self._cache_max:
                self._cache.popitem(last=False)
        return data
