"""An in-place restore by the partition's record (``restore.Recorded``): a chunk is skipped
when the recorded image had it at the same device offsets, and an all-zero chunk also when the
recorded image's zero chunks covered its offsets — the zero run cut from another point (one
changed byte before it) is not written again; zeros where the record holds data are."""

from __future__ import annotations

import os
import random
from pathlib import Path

from ogref.model.storage import Filesystem
from ogref.runtime import partclone
from ogref.runtime.chunked import chunk
from ogref.runtime.chunked.manifest import Chunking, ChunkRef, Manifest
from ogref.runtime.chunked.restore import Recorded, write_chunks
from ogref.runtime.chunked.store import ChunkStore

BS = 1024
SMALL = Chunking(512, 2048, 8192)
KIB = 1024


def _image(store: ChunkStore, pieces: list[bytes]) -> tuple[Manifest, bytes]:
    """A manifest whose chunks are ``pieces`` (every block used), stored in ``store``."""
    data = b"".join(pieces)
    blocks = len(data) // BS
    for piece in pieces:
        store.put(chunk.digest(piece), chunk.compress(piece))
    refs = tuple(ChunkRef(chunk.digest(p), len(p)) for p in pieces)
    header = partclone.Header("0.3.23", "EXTFS", blocks * BS, BS, blocks, blocks)
    bitmap = b"\xff" * ((blocks + 7) // 8)
    return Manifest(header, Filesystem.EXT4, bitmap, refs, SMALL), data


def _write(path: Path, made: Manifest, store: ChunkStore, known: Recorded | None) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        os.ftruncate(fd, made.header.device_size)
        stats = write_chunks(made, store, fd, workers=2, in_place=known is not None, known=known)
    finally:
        os.close(fd)
    return stats.written_bytes


def test_a_shifted_zero_run_is_not_written_again_zeros_over_data_are(tmp_path: Path) -> None:
    rng = random.Random(3)
    store = ChunkStore(tmp_path / "chunks")
    head, tail = rng.randbytes(20 * KIB), rng.randbytes(24 * KIB)
    zero = bytes(SMALL.max_size)
    base, base_data = _image(store, [head, *[zero] * 15, tail])
    # v2: the head's end changed and cut 1 KiB later: every zero chunk moves by 1 KiB
    head2 = head[:-KIB] + rng.randbytes(KIB) + bytes(KIB)
    v2, v2_data = _image(store, [head2, *[zero] * 14, bytes(7 * KIB), tail])
    assert len(v2_data) == len(base_data)
    part = tmp_path / "part"
    _write(part, base, store, None)
    written = _write(part, v2, store, Recorded(base))
    assert part.read_bytes() == v2_data
    assert written == len(head2) + 7 * KIB  # the 14 shifted zero chunks were not written
    # v3: zeros where the recorded image holds data (the tail) must be written
    v3, v3_data = _image(store, [head2, *[zero] * 14, bytes(7 * KIB), zero, zero, bytes(8 * KIB)])
    assert len(v3_data) == len(base_data)
    _write(part, base, store, None)
    written = _write(part, v3, store, Recorded(base))
    assert part.read_bytes() == v3_data
    assert written == len(head2) + 7 * KIB + len(tail)
