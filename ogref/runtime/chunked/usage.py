"""The repository usage report: per image version, what it is and what it costs in the
directory, and the totals with the deduplication ratio.

Per version: format, ``current``/``ant``, filesystem, logical size (the used blocks' bytes; for
an OpenGnSys file its ``.info`` size when known), chunks, **stored** bytes (what it would occupy
alone: its distinct chunks' files, or the ``.img``), bytes **owned alone** (chunks no other
version references: what deleting it would free) and **shared** bytes.  Totals: the chunk
store's bytes (unreferenced chunks counted apart as garbage), the ``.img`` files' bytes, the
repository bytes (both), the sum of the versions' stored sizes, and the dedup ratio = repository
bytes / that sum (below 1: sharing saves space).  Sizes are file sizes.  It changes nothing.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from typing import Any

from ogref.runtime import imagefile
from ogref.runtime.chunked import image, repository
from ogref.runtime.imagefile import ImageStore


@dataclass(frozen=True)
class VersionUsage:
    """One version's line of the report."""

    name: str
    version: str
    format: str
    filesystem: str
    logical_bytes: int
    chunks: int
    stored_bytes: int
    owned_bytes: int
    shared_bytes: int
    base: str = ""


@dataclass
class Usage:
    """The whole report."""

    images: list[VersionUsage] = field(default_factory=list)
    chunk_store_bytes: int = 0
    chunk_files: int = 0
    garbage_bytes: int = 0
    garbage_chunks: int = 0
    image_file_bytes: int = 0

    @property
    def repository_bytes(self) -> int:
        return self.chunk_store_bytes + self.image_file_bytes

    @property
    def images_bytes(self) -> int:
        """The sum of the versions' stored sizes (each counted as if alone)."""
        return sum(v.stored_bytes for v in self.images)

    @property
    def dedup_ratio(self) -> float | None:
        total = self.images_bytes
        return round(self.repository_bytes / total, 4) if total else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": [asdict(v) for v in self.images],
            "chunk_store_bytes": self.chunk_store_bytes,
            "chunk_files": self.chunk_files,
            "garbage_bytes": self.garbage_bytes,
            "garbage_chunks": self.garbage_chunks,
            "image_file_bytes": self.image_file_bytes,
            "repository_bytes": self.repository_bytes,
            "images_bytes": self.images_bytes,
            "dedup_ratio": self.dedup_ratio,
        }


def report(images: ImageStore) -> Usage:
    """Measure the directory (ImageFileError 33 if a manifest is damaged)."""
    out = Usage()
    sizes: dict[str, int] = {}
    for digest, path in image.chunk_store(images).entries():
        with contextlib.suppress(FileNotFoundError):
            sizes[digest] = path.stat().st_size
    out.chunk_store_bytes = sum(sizes.values())
    out.chunk_files = len(sizes)
    loaded = repository.chunked_versions(images)
    counts = repository.reference_counts(loaded)
    garbage = set(sizes) - set(counts)
    out.garbage_chunks = len(garbage)
    out.garbage_bytes = sum(sizes[d] for d in garbage)
    rows: list[VersionUsage] = []
    for v, made in loaded:
        distinct = {c.digest for c in made.chunks}
        owned = sum(sizes.get(d, 0) for d in distinct if counts[d] == 1)
        stored = sum(sizes.get(d, 0) for d in distinct)
        base = made.base.name if made.base else ""
        fs = str(made.filesystem)
        row = VersionUsage(
            v.name, v.version, v.format, fs, made.data_size, len(made.chunks), stored, owned,
            stored - owned, base,
        )  # fmt: skip
        rows.append(row)
    for v in repository.versions(images):
        if v.format != "partclone":
            continue
        size = v.path.stat().st_size
        out.image_file_bytes += size
        fs, logical = "", 0
        if v.version == repository.CURRENT:
            with contextlib.suppress(Exception):
                info = imagefile.read_info(images.files(v.name))
                if info is not None:
                    fs, logical = str(info.filesystem), info.size_kb * 1024
        rows.append(VersionUsage(v.name, v.version, v.format, fs, logical, 0, size, size, 0))
    out.images = sorted(rows, key=lambda r: (r.name, r.version != repository.CURRENT, r.format))
    return out
