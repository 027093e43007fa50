"""A synthetic chunked image for the labs' multicast runs: a made-up filesystem of ``size`` bytes
of used blocks (a mix of random, text-like and zero data, with unused holes) cut by the real
chunker into an image directory's chunk store, published as a real manifest.  No partition and
no partclone are involved: the transfers, not the filesystem, are under test.  Also writes the
same data as one flat file (what udpcast and UFTP send, for side-by-side runs) and the device
image a correct restore must produce (for bit-for-bit comparisons).
"""

from __future__ import annotations

import io
import os
import random
from dataclasses import dataclass
from pathlib import Path

from ogref.model.storage import Filesystem
from ogref.runtime import partclone
from ogref.runtime.chunked import chunker, image
from ogref.runtime.chunked.manifest import Manifest
from ogref.runtime.chunked.restore import write_chunks
from ogref.runtime.imagefile import ImageStore

BLOCK = 4096


@dataclass(frozen=True)
class ChunkImage:
    directory: Path
    name: str
    manifest: Manifest
    manifest_path: Path
    flat: Path  # the chunk frames concatenated: the same bytes, as one file
    device: Path  # what a restore must leave on a zeroed device


def _data(rng: random.Random, size: int) -> bytes:
    words = [rng.randbytes(rng.randint(2, 9)).hex() for _ in range(400)]
    out = bytearray()
    while len(out) < size:
        kind = rng.random()
        n = rng.randint(64, 1024) * 1024
        if kind < 0.45:
            out += rng.randbytes(n)
        elif kind < 0.85:
            out += " ".join(rng.choice(words) for _ in range(n // 8)).encode()[:n]
        else:
            out += bytes(n)
    return bytes(out[:size])


def make(directory: Path, name: str, size: int, seed: int = 1) -> ChunkImage:
    """A chunked image ``name`` of about ``size`` bytes of used blocks in ``directory``."""
    rng = random.Random(seed)
    used_blocks = max(1, size // BLOCK)
    total = used_blocks + used_blocks // 8
    holes = set(rng.sample(range(total), total - used_blocks))
    bitmap = bytearray((total + 7) // 8)
    for b in range(total):
        if b not in holes:
            bitmap[b // 8] |= 1 << (b % 8)
    data = _data(rng, used_blocks * BLOCK)
    images = ImageStore(directory)
    directory.mkdir(parents=True, exist_ok=True)
    store = image.chunk_store(images)
    refs, _ = chunker.cut(io.BytesIO(data), store)
    store.sync()
    header = partclone.Header("0.3.23", "EXTFS", total * BLOCK, BLOCK, total, used_blocks)
    made = Manifest(header, Filesystem.EXT4, bytes(bitmap), tuple(refs), host="lab")
    path = image.publish(images, name, made)
    flat = directory / f"{name}.flat"
    with open(flat, "wb") as f:
        for ref in refs:
            f.write(store.frame(ref.digest))
    device = directory / f"{name}.device"
    fd = os.open(device, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, header.device_size)
        write_chunks(made, store, fd)
    finally:
        os.close(fd)
    return ChunkImage(directory, name, made, path, flat, device)
