"""The manifest of a chunked image: what ``.sum``/``.full.sum``/``.torrent`` are to a ``.img``.

A versioned JSON document: the filesystem and partclone's header fields, partclone's used-block
bitmap (zstd, base64), the chunking parameters, the chunks (BLAKE3 name, uncompressed size)
that cover the used blocks in block order, and for a differential image the base it was made
against (the chunk list is always complete: a differential image restores alone).  It carries a BLAKE3 digest of its own canonical
encoding, checked on every load (a changed or truncated manifest is error 33).  It maps stream
offsets to device offsets (:meth:`Manifest.placements`).  It reads or writes no chunk.
"""

from __future__ import annotations

import base64
import bisect
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from ogref.errors import ImageFileError
from ogref.model.storage import Filesystem
from ogref.runtime import partclone
from ogref.runtime.chunked import chunk

FORMAT = "ogref-chunked"
VERSION = 1
SUFFIX = ".manifest.json"


@dataclass(frozen=True)
class ChunkRef:
    """One chunk of the used-block stream: its name and uncompressed size."""

    digest: str
    size: int


@dataclass(frozen=True)
class Chunking:
    """FastCDC's parameters (bytes); images share chunks only when they share these.

    The default average, 128 KiB, is bench-image's choice: a differential image within 1.3× of
    the changed data compressed (256 KiB: 1.47×), fewer files than 64 KiB."""

    min_size: int = 32 * 1024
    avg_size: int = 128 * 1024
    max_size: int = 512 * 1024


@dataclass(frozen=True)
class BaseRef:
    """The image a differential image was made against: its name and manifest digest."""

    name: str
    digest: str


@dataclass(frozen=True)
class Extent:
    """A run of used blocks: ``count`` blocks from ``start`` (block numbers)."""

    start: int
    count: int


def extents(bitmap: bytes, total_blocks: int) -> list[Extent]:
    """The runs of set bits of partclone's bitmap (bit ``i`` of byte ``i // 8``, LSB first)."""
    if total_blocks == 0:
        return []
    bits = bin(int.from_bytes(bitmap, "little") | (1 << (len(bitmap) * 8)))[3:][::-1]
    bits = bits[:total_blocks]
    return [Extent(m.start(), m.end() - m.start()) for m in re.finditer("1+", bits)]


@dataclass(frozen=True)
class Manifest:
    """A chunked image.  ``header`` holds partclone's fields (device size, block size…)."""

    header: partclone.Header
    filesystem: Filesystem
    bitmap: bytes
    chunks: tuple[ChunkRef, ...]
    chunking: Chunking = Chunking()
    level: int = chunk.DEFAULT_LEVEL
    host: str = ""
    created: str = ""
    base: BaseRef | None = None
    message: str = ""  # why this version was made (``ogref image edit --message``)
    _extents: list[Extent] = field(default_factory=list, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        runs = extents(self.bitmap, self.header.total_blocks)
        used = sum(e.count for e in runs)
        if used != self.header.used_blocks:
            raise ImageFileError(
                f"manifest: bitmap has {used} used blocks, header {self.header.used_blocks}"
            )
        if sum(c.size for c in self.chunks) != self.data_size:
            raise ImageFileError("manifest: the chunks do not cover the used blocks exactly")
        self._extents.extend(runs)

    @property
    def data_size(self) -> int:
        """Bytes of used blocks (the stream the chunks cover)."""
        return self.header.used_blocks * self.header.block_size

    @property
    def extents(self) -> list[Extent]:
        return list(self._extents)

    def chunk_offsets(self) -> list[int]:
        """Each chunk's offset in the used-block stream."""
        out, pos = [], 0
        for ref in self.chunks:
            out.append(pos)
            pos += ref.size
        return out

    def placements(self, offset: int, size: int) -> Iterator[tuple[int, int, int]]:
        """Where stream bytes ``[offset, offset + size)`` go on the device: (device offset,
        offset in the piece, length) per extent crossed."""
        bs = self.header.block_size
        starts = self._stream_starts()
        i = bisect.bisect_right(starts, offset) - 1
        done = 0
        while done < size:
            ext = self._extents[i]
            within = offset + done - starts[i]
            take = min(size - done, ext.count * bs - within)
            yield ext.start * bs + within, done, take
            done += take
            i += 1

    def _stream_starts(self) -> list[int]:
        cached: list[int] | None = getattr(self, "_starts", None)
        if cached is None:
            cached, pos = [], 0
            for ext in self._extents:
                cached.append(pos)
                pos += ext.count * self.header.block_size
            object.__setattr__(self, "_starts", cached)
        return cached

    # ------------------------------------------------------------------ encoding

    def body(self) -> dict[str, Any]:
        h = self.header
        body: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "filesystem": str(self.filesystem),
            "partclone": {
                "version": h.version,
                "fs": h.fs_name,
                "device_size": h.device_size,
                "block_size": h.block_size,
                "total_blocks": h.total_blocks,
                "used_blocks": h.used_blocks,
            },
            "bitmap": base64.b64encode(zstandard.compress(self.bitmap, 19)).decode("ascii"),
            "hash": chunk.HASH,
            "compression": {"name": chunk.COMPRESSION, "level": self.level},
            "chunking": {
                "algorithm": "fastcdc2020",
                "min": self.chunking.min_size,
                "avg": self.chunking.avg_size,
                "max": self.chunking.max_size,
            },
            "chunks": [[c.digest, c.size] for c in self.chunks],
            "host": self.host,
            "created": self.created,
            "base": {"name": self.base.name, "digest": self.base.digest} if self.base else None,
        }
        if self.message:  # only when set: manifests without one keep their digest
            body["message"] = self.message
        return body

    def to_json(self) -> bytes:
        body = self.body()
        return json.dumps({**body, "digest": _digest(body)}, separators=(",", ":")).encode()

    @property
    def digest(self) -> str:
        """BLAKE3 of the canonical encoding: the image's identity, as ``.full.sum`` is."""
        return _digest(self.body())

    @classmethod
    def from_json(cls, data: bytes, source: str = "manifest") -> Manifest:
        """Parse and check a manifest; ImageFileError (33) if it is not a valid one."""
        try:
            doc = json.loads(data)
            digest = doc.pop("digest")
            if doc.get("format") != FORMAT or doc.get("version") != VERSION:
                raise ImageFileError(f"{source}: not an {FORMAT} v{VERSION} manifest")
            if digest != _digest(doc):
                raise ImageFileError(f"{source}: its digest does not match its content")
            pc = doc["partclone"]
            header = partclone.Header(
                pc["version"],
                pc["fs"],
                int(pc["device_size"]),
                int(pc["block_size"]),
                int(pc["total_blocks"]),
                int(pc["used_blocks"]),
            )
            ch = doc["chunking"]
            chunks = tuple(ChunkRef(str(d), int(n)) for d, n in doc["chunks"])
            if not all(chunk.is_digest(c.digest) and c.size > 0 for c in chunks):
                raise ImageFileError(f"{source}: a chunk entry is malformed")
            return cls(
                header,
                Filesystem.parse(doc["filesystem"]),
                zstandard.decompress(base64.b64decode(doc["bitmap"])),
                chunks,
                Chunking(int(ch["min"]), int(ch["avg"]), int(ch["max"])),
                int(doc["compression"]["level"]),
                str(doc["host"]),
                str(doc["created"]),
                BaseRef(str(doc["base"]["name"]), str(doc["base"]["digest"]))
                if doc.get("base")
                else None,
                str(doc.get("message", "")),
            )
        except ImageFileError:
            raise
        except Exception as exc:
            raise ImageFileError(f"{source}: unreadable manifest ({exc})") from None


def _digest(body: dict[str, Any]) -> str:
    return chunk.digest(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def load(path: Path) -> Manifest:
    """Read the manifest at ``path`` (ImageFileError 33 if it is damaged)."""
    return Manifest.from_json(path.read_bytes(), str(path))


def write(path: Path, manifest: Manifest) -> None:
    """Write ``manifest`` at ``path`` atomically and durably."""
    tmp = Path(f"{path}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(manifest.to_json())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
