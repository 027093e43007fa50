"""updateCache's UNICAST transfer from a repository directory into the CACHE, resumable.

The repository is a directory (the SMB share's mount point, or any local copy).  The copy goes
to ``<cache>/<name>.img`` in place; ``<name>.img.partial`` holds the whole-file MD5 being
fetched while it runs, so an interrupted copy of the same version resumes where it stopped
(its prefix is re-hashed, not re-read from the repository).  The whole-file MD5 of the result is
returned for the core to compare; the core decides to delete a bad copy (31).  Multicast and
torrent transports belong to the netns lab.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass

from ogref.errors import NotFoundError, UpdateCacheError
from ogref.model.image import Image
from ogref.runtime import imagefile
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.proc import Progress

_CHUNK = 4 << 20


@dataclass(frozen=True)
class Copied:
    """Result of a copy: whole-file MD5 of the cached file and the bytes actually moved."""

    checksum: str
    bytes_moved: int
    resumed_from: int


def fetch_unicast(
    repo: ImageStore,
    cache: ImageStore,
    image: Image,
    *,
    resume: bool = False,
    progress: Progress | None = None,
) -> Copied:
    """Copy ``image`` from ``repo`` into ``cache``; resume a partial copy when allowed."""
    src = repo.files(image.name)
    dst = cache.files(image.name)
    if not src.img.is_file():
        raise NotFoundError(f"image {image.name} not found in {repo.root}")
    dst.img.parent.mkdir(parents=True, exist_ok=True)
    total = src.img.stat().st_size
    md5 = hashlib.md5()
    offset = 0
    marker = imagefile.read_sum(dst.partial)
    if resume and dst.img.exists() and marker and marker == image.checksum:
        offset = min(dst.img.stat().st_size, total)
        with open(dst.img, "rb") as f:
            remaining = offset
            while remaining:
                chunk = f.read(min(_CHUNK, remaining))
                if not chunk:
                    break
                md5.update(chunk)
                remaining -= len(chunk)
    else:
        for path in (dst.img, dst.sum, dst.full_sum, dst.torrent):
            path.unlink(missing_ok=True)
    imagefile.write_text(dst.partial, (image.checksum or "unknown") + "\n")
    moved = 0
    try:
        with open(src.img, "rb") as fin, open(dst.img, "r+b" if offset else "wb") as fout:
            fin.seek(offset)
            fout.seek(offset)
            fout.truncate(offset)
            while True:
                chunk = fin.read(_CHUNK)
                if not chunk:
                    break
                md5.update(chunk)
                fout.write(chunk)
                moved += len(chunk)
                if progress is not None:
                    progress(offset + moved, total)
            fout.flush()
            os.fsync(fout.fileno())
    except OSError as exc:
        raise UpdateCacheError(
            f"copy of {image.name} interrupted after {offset + moved} of {total} bytes: "
            f"{exc.strerror} (resumable)"
        ) from None
    digest = md5.hexdigest()
    imagefile.write_text(dst.full_sum, digest + "\n")
    imagefile.write_text(dst.sum, imagefile.md5_last_mib(dst.img) + "\n")
    for suffix in (".info", ".torrent"):
        if src.sidecar(suffix).exists():
            shutil.copyfile(src.sidecar(suffix), dst.sidecar(suffix))
    dst.partial.unlink(missing_ok=True)
    return Copied(digest, moved, offset)
