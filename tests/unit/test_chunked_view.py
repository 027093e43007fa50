"""Random access into a chunked image (what ``ogref image mount`` serves): every byte range of
the partition equals what a restore writes, unused blocks read as zeros, a damaged chunk is 33."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pytest

from ogref.errors import ImageFileError
from ogref.model.storage import Filesystem
from ogref.runtime import partclone
from ogref.runtime.chunked import chunker
from ogref.runtime.chunked.manifest import Chunking, Manifest
from ogref.runtime.chunked.restore import write_chunks
from ogref.runtime.chunked.store import ChunkStore
from ogref.runtime.chunked.view import PartitionView

BS = 1024
TOTAL = 600


def _image(tmp_path: Path) -> tuple[Manifest, ChunkStore]:
    rng = random.Random(7)
    used = sorted(rng.sample(range(TOTAL), 350))
    bitmap = bytearray((TOTAL + 7) // 8)
    for b in used:
        bitmap[b // 8] |= 1 << (b % 8)
    data = rng.randbytes(len(used) * BS)
    store = ChunkStore(tmp_path / "chunks")
    small = Chunking(512, 2048, 8192)
    refs, _ = chunker.cut(io.BytesIO(data), store, chunking=small, workers=1)
    header = partclone.Header("0.3.23", "EXTFS", TOTAL * BS + 300, BS, TOTAL, len(used))
    return Manifest(header, Filesystem.EXT4, bytes(bitmap), tuple(refs), small), store


def test_reads_equal_a_restore_and_unused_blocks_are_zero(tmp_path: Path) -> None:
    made, store = _image(tmp_path)
    restored = tmp_path / "part"
    fd = os.open(restored, os.O_RDWR | os.O_CREAT)
    try:
        os.ftruncate(fd, made.header.device_size)
        write_chunks(made, store, fd, workers=2)
    finally:
        os.close(fd)
    want = restored.read_bytes()
    view = PartitionView(made, store, cache_chunks=3)
    assert view.read(0, view.size + 10) == want
    rng = random.Random(1)
    for _ in range(300):
        offset = rng.randrange(view.size)
        size = rng.choice([1, 511, 4096, 65536, 131072])
        assert view.read(offset, size) == want[offset : offset + size]
    assert view.read(view.size, 10) == b""


def test_a_damaged_chunk_is_33(tmp_path: Path) -> None:
    made, store = _image(tmp_path)
    ref = made.chunks[1]
    path = store.path(ref.digest)
    frame = bytearray(path.read_bytes())
    frame[len(frame) // 2] ^= 0xFF
    path.write_bytes(bytes(frame))
    view = PartitionView(made, store)
    with pytest.raises(ImageFileError):
        view.read(0, view.size)
