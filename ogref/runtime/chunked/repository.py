"""What an image directory holds, seen as a whole: every image version in either format, which
chunks each chunked version references, and which image locks are live.

A version is a manifest (``NAME.manifest.json``) or its previous version (``….ant``), or an
OpenGnSys file (``NAME.img`` / ``NAME.img.ant``), OU sub-directories included; the chunk store
is shared by the whole directory.  This module reads only: deleting is :mod:`.garbage`'s, the
report :mod:`.usage`'s.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ogref.runtime.chunked import image, manifest
from ogref.runtime.chunked.manifest import Manifest
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.lock import is_locked

CURRENT = "current"
ANT = "ant"
LOCK_SUFFIX = ".lock"


@dataclass(frozen=True)
class Version:
    """One stored version of an image: its name, ``current`` or ``ant``, format and file."""

    name: str
    version: str
    format: str  # "chunked" or "partclone"
    path: Path


def _outside_store(images: ImageStore, path: Path) -> bool:
    store = images.root / image.CHUNK_DIR
    return store not in path.parents


def versions(images: ImageStore) -> list[Version]:
    """Every image version in the directory, sorted by name then version."""
    root = images.root
    out: list[Version] = []
    if not root.is_dir():
        return out
    kinds = (
        (manifest.SUFFIX, CURRENT, "chunked"),
        (f"{manifest.SUFFIX}.ant", ANT, "chunked"),
        (".img", CURRENT, "partclone"),
        (".img.ant", ANT, "partclone"),
    )
    for suffix, which, fmt in kinds:
        for path in root.rglob(f"*{suffix}"):
            if path.is_file() and _outside_store(images, path):
                name = str(path.relative_to(root))[: -len(suffix)]
                if name.endswith(".img.new"):  # a partclone create's staged version
                    continue
                out.append(Version(name, which, fmt, path))
    return sorted(out, key=lambda v: (v.name, v.version != CURRENT, v.format))


def chunked_versions(images: ImageStore) -> list[tuple[Version, Manifest]]:
    """Every chunked version with its manifest (ImageFileError 33 if one is damaged: nobody
    can then say which chunks it needs, so nothing may be collected)."""
    return [(v, manifest.load(v.path)) for v in versions(images) if v.format == "chunked"]


def reference_counts(loaded: list[tuple[Version, Manifest]]) -> Counter[str]:
    """For each chunk, how many versions reference it (a version counts a chunk once)."""
    counts: Counter[str] = Counter()
    for _, made in loaded:
        counts.update({c.digest for c in made.chunks})
    return counts


def live_locks(images: ImageStore, *, ignore: Path | None = None) -> list[Path]:
    """The image locks (``NAME.img.lock``) held now: a create, edit or convert in progress
    (a lock left by a dead process of this host does not count)."""
    root = images.root
    if not root.is_dir():
        return []
    held = []
    for path in root.rglob(f"*{LOCK_SUFFIX}"):
        if ignore is not None and path == ignore:
            continue
        if _outside_store(images, path) and is_locked(path):
            held.append(path)
    return sorted(held)
