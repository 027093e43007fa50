"""What a chunkcast session moves: object 0 is the image's manifest (one zstd frame of its JSON),
objects 1… are the image's *distinct* chunks in the order of their first appearance in the
manifest — both ends derive the same numbering from the same manifest.  A chunk the manifest
lists several times (zero runs) travels once and is written at each of its offsets.

It maps objects to chunks and stream offsets; it reads or writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import zstandard

from ogref.runtime.chunked import chunk
from ogref.runtime.chunked.manifest import ChunkRef, Manifest

MANIFEST = 0


@dataclass(frozen=True)
class ImageObjects:
    """The objects of one image: each distinct chunk and the stream offsets it is written at."""

    manifest: Manifest
    chunks: tuple[ChunkRef, ...]  # object i + 1
    offsets: tuple[tuple[int, ...], ...]  # stream offsets of object i + 1

    @classmethod
    def of(cls, made: Manifest) -> ImageObjects:
        index: dict[str, int] = {}
        refs: list[ChunkRef] = []
        offs: list[list[int]] = []
        for offset, ref in zip(made.chunk_offsets(), made.chunks, strict=True):
            i = index.get(ref.digest)
            if i is None:
                i = index[ref.digest] = len(refs)
                refs.append(ref)
                offs.append([])
            offs[i].append(offset)
        return cls(made, tuple(refs), tuple(tuple(o) for o in offs))

    @property
    def count(self) -> int:
        """Objects, the manifest included."""
        return len(self.chunks) + 1

    def ref(self, obj: int) -> ChunkRef:
        return self.chunks[obj - 1]

    def written_bytes(self, obj: int) -> int:
        """Bytes object ``obj`` puts on the device (its size times its occurrences)."""
        return self.chunks[obj - 1].size * len(self.offsets[obj - 1])


def manifest_frame(made: Manifest) -> tuple[bytes, int]:
    """Object 0: the manifest's JSON as one zstd frame, and the JSON's size."""
    raw = made.to_json()
    return zstandard.ZstdCompressor(level=9).compress(raw), len(raw)


def manifest_hash(frame: bytes) -> bytes:
    return bytes.fromhex(chunk.digest(frame))
