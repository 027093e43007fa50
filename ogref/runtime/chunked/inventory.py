"""Chunked images as the engine sees them: a manifest in an image directory (a repository share
or the CACHE) turned into the model's :class:`~ogref.model.Image` or
:class:`~ogref.model.CachedImage`, with the byte counts the decision core works on.

``inspect`` answers as ``imagefile.inspect`` answers for a ``.img``: missing (2), a damaged
manifest or a chunk missing from the store (33), the image lock.  A chunked image's stored size
is the compressed bytes of its distinct chunks; its checksum is the manifest's digest; a
differential one names its base and the bytes of its chunks the base lacks.  ``present`` counts
the bytes of an image's chunks a store already holds (what a cache update need not move), and
``cached_images`` lists a CACHE's chunked images with the bytes each one alone owns.  It
moves, writes or deletes nothing.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ogref.errors import ImageFileError, NotFoundError
from ogref.model.image import CloneTool, Compressor, Image, ImageFormat, ImageKind
from ogref.model.storage import CachedImage
from ogref.runtime.chunked import image as chunked_image
from ogref.runtime.chunked import manifest as manifest_mod
from ogref.runtime.chunked.manifest import Manifest
from ogref.runtime.chunked.store import SUFFIX, ChunkStore
from ogref.runtime.imagefile import ImageStore, Inspection
from ogref.runtime.lock import is_locked


def names(images: ImageStore) -> list[str]:
    """Every chunked image of the directory (``NAME.manifest.json``, one OU level included)."""
    out: list[str] = []
    if not images.root.is_dir():
        return out
    for path in sorted(images.root.rglob(f"*{manifest_mod.SUFFIX}")):
        rel = str(path.relative_to(images.root))
        if path.is_file() and not rel.startswith(f"{chunked_image.CHUNK_DIR}/"):
            out.append(rel[: -len(manifest_mod.SUFFIX)])
    return out


def chunk_sizes(store: ChunkStore) -> dict[str, int]:
    """Every chunk of the store and its stored (compressed) size, in one walk."""
    out: dict[str, int] = {}
    if not store.root.is_dir():
        return out
    with os.scandir(store.root) as subs:
        for sub in subs:
            if len(sub.name) != 2 or not sub.is_dir():
                continue
            with os.scandir(sub.path) as entries:
                for entry in entries:
                    if entry.name.endswith(SUFFIX) and not entry.name.startswith("."):
                        out[entry.name[: -len(SUFFIX)]] = entry.stat().st_size
    return out


def distinct(made: Manifest) -> set[str]:
    """The image's distinct chunk names."""
    return {c.digest for c in made.chunks}


def present(made: Manifest, sizes: dict[str, int]) -> int:
    """The stored bytes of ``made``'s chunks that a store (given by its ``sizes``) holds."""
    return sum(sizes.get(d, 0) for d in distinct(made))


@dataclass(frozen=True)
class Counted:
    """An image's chunks against a store: stored bytes of those present, names of the others."""

    stored: int
    missing: tuple[str, ...]


def count(made: Manifest, sizes: dict[str, int]) -> Counted:
    have = distinct(made)
    return Counted(
        sum(sizes[d] for d in have if d in sizes), tuple(sorted(d for d in have if d not in sizes))
    )


def to_image(
    made: Manifest,
    name: str,
    stored: int,
    *,
    repository: str = "repo",
    base: Manifest | None = None,
    sizes: dict[str, int] | None = None,
) -> Image:
    """The model's image for a manifest whose distinct chunks take ``stored`` bytes; a
    differential one's added size is counted against its ``base`` manifest when given."""
    kind, base_name, added = ImageKind.MONOLITHIC, "", 0
    if made.base is not None:
        kind, base_name = ImageKind.DIFFERENTIAL, made.base.name
        added = stored
        if base is not None and sizes is not None:
            ours = distinct(made) - distinct(base)
            added = sum(sizes.get(d, 0) for d in ours)
    return Image(
        name=name,
        filesystem=made.filesystem,
        data_size=made.header.device_size,
        used_size=made.data_size,
        stored_size=max(1, stored),
        repository=repository,
        tool=CloneTool.PARTCLONE,
        compressor=Compressor.ZSTD,
        checksum=made.digest,
        kind=kind,
        base=base_name,
        format=ImageFormat.CHUNKED,
        added_size=min(added, max(1, stored)),
    )


def inspect(
    images: ImageStore,
    name: str,
    *,
    repository: str = "repo",
    sizes: dict[str, int] | None = None,
) -> Inspection:
    """Find chunked image ``name`` in ``images``, as ``imagefile.inspect`` finds a ``.img``:
    missing (2); a damaged manifest, or chunks missing from the store (33)."""
    files = images.files(name)
    path = chunked_image.manifest_path(images, name)
    if not path.exists():
        return Inspection(found=False, detail=f"{path} not found")
    if not path.is_file():
        return Inspection(found=True, readable=True, detail=f"{path} is not a regular file")
    locked = is_locked(files.lock)
    try:
        made = manifest_mod.load(path)
    except ImageFileError as exc:
        return Inspection(found=True, readable=False, locked=locked, detail=exc.message)
    except OSError as exc:
        return Inspection(True, False, locked, detail=f"{path}: {exc.strerror or exc}")
    if sizes is None:
        sizes = chunk_sizes(chunked_image.chunk_store(images))
    counted = count(made, sizes)
    if counted.missing:
        return Inspection(
            True,
            False,
            locked,
            detail=f"chunked image {files.name}: {len(counted.missing)} chunks missing from "
            f"the store (first {counted.missing[0]})",
        )
    base = _base(images, made)
    image = to_image(
        made, files.name, counted.stored, repository=repository, base=base, sizes=sizes
    )
    return Inspection(found=True, readable=True, locked=locked, image=image)


def _base(images: ImageStore, made: Manifest) -> Manifest | None:
    if made.base is None:
        return None
    try:
        return chunked_image.load(images, made.base.name)
    except (NotFoundError, ImageFileError, OSError):
        return None


def load_quiet(path: Path) -> Manifest | None:
    """A manifest, or None if it is missing or damaged."""
    try:
        return manifest_mod.load(path)
    except (ImageFileError, OSError):
        return None


@dataclass(frozen=True)
class CacheChunks:
    """A CACHE's chunked images and the bytes of its store that no single one owns."""

    images: tuple[CachedImage, ...]
    shared: int
    sizes: dict[str, int]


def cached_images(images: ImageStore) -> CacheChunks:
    """The chunked images of a CACHE's image directory: each one's own bytes (chunks no other
    manifest there names), whether every chunk is present, its digest; and ``shared``, the
    store's other bytes (chunks several images share, chunks of an interrupted update)."""
    sizes = chunk_sizes(chunked_image.chunk_store(images))
    loaded: list[tuple[str, Manifest, float]] = []
    for name in names(images):
        path = chunked_image.manifest_path(images, name)
        made = load_quiet(path)
        if made is not None:
            loaded.append((name, made, path.stat().st_mtime))
    users: Counter[str] = Counter()
    for _name, made, _t in loaded:
        users.update(distinct(made))
    out = []
    owned = 0
    for name, made, mtime in loaded:
        have = distinct(made)
        own = sum(sizes.get(d, 0) for d in have if users[d] == 1)
        owned += own
        complete = all(d in sizes for d in have)
        out.append(CachedImage(name, own, made.digest, complete, mtime, chunked=True))
    return CacheChunks(tuple(out), max(0, sum(sizes.values()) - owned), sizes)
