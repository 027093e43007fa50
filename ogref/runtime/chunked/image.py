"""A chunked image in an image directory: where its manifest and the chunk store live, loading
it, publishing a new version, verifying every chunk.

Beside ``<name>.img`` (the OpenGnSys format) a chunked image is ``<name>.manifest.json``; the
directory's chunk store is ``<dir>/chunks``.  Publishing keeps the previous manifest as
``.ant``, as OpenGnSys keeps the previous ``.img``.  Creating and restoring are elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ogref.errors import NotFoundError
from ogref.runtime.chunked import manifest
from ogref.runtime.chunked.chunker import default_workers
from ogref.runtime.chunked.manifest import Manifest
from ogref.runtime.chunked.store import ChunkStore
from ogref.runtime.imagefile import ImageStore

CHUNK_DIR = "chunks"


def manifest_path(images: ImageStore, name: str) -> Path:
    """``<dir>/<name>.manifest.json`` (the name checked as every image name is)."""
    files = images.files(name)
    return files.root / f"{files.name}{manifest.SUFFIX}"


def chunk_store(images: ImageStore) -> ChunkStore:
    """The directory's chunk store, shared by all its chunked images."""
    return ChunkStore(images.root / CHUNK_DIR)


def exists(images: ImageStore, name: str) -> bool:
    return manifest_path(images, name).is_file()


def load(images: ImageStore, name: str) -> Manifest:
    """The image's manifest: NotFoundError (2) if missing, ImageFileError (33) if damaged."""
    path = manifest_path(images, name)
    if not path.is_file():
        raise NotFoundError(f"chunked image {name} not found in {images.root}")
    return manifest.load(path)


def publish(images: ImageStore, name: str, made: Manifest) -> Path:
    """Write the new manifest; the previous one becomes ``.ant``.  Chunks must be durable."""
    path = manifest_path(images, name)
    staged = Path(f"{path}.new")
    manifest.write(staged, made)
    if path.exists():
        os.replace(path, f"{path}.ant")
    os.replace(staged, path)
    return path


def verify(
    images: ImageStore,
    name: str,
    *,
    workers: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> list[tuple[str, str]]:
    """Re-hash every chunk of the image: the (digest, problem) of each bad one ([] if sound)."""
    made = load(images, name)
    store = chunk_store(images)
    unique = {c.digest: c.size for c in made.chunks}
    bad: list[tuple[str, str]] = []
    done = 0
    with ThreadPoolExecutor(workers or default_workers()) as pool:
        for (digest, size), problem in zip(
            unique.items(), pool.map(lambda item: store.verify(*item), unique.items()), strict=True
        ):
            done += size
            if progress is not None:
                progress(done, made.data_size)
            if problem:
                bad.append((digest, problem))
    return bad
