"""Repository housekeeping: deleting an image or one of its versions, and collecting the chunks
no manifest references any more, safely while another client creates an image.

**Why a concurrent create is safe.**  A create (edit and convert too) holds its image lock
(``NAME.img.lock``) from before it reads the store until after its manifest is published, and
every chunk it will reference is either written by it or *claimed* (:meth:`ChunkStore.claim`
sets its mtime to now) while it holds that lock.  A collection:

1. takes the store's own lock (one collection at a time) and stamps an **epoch**: the mtime of a
   file it writes in the store, on the store's own clock (the chunks' mtimes come from the same
   filesystem, so a client's or a server's clock skew does not matter);
2. refuses (4, LockedError) if any image lock is live: a create that started before the epoch
   could hold chunks older than the epoch that no manifest names yet;
3. reads every manifest, ``.ant`` versions included (a damaged one stops it: 33);
4. for each chunk no manifest references: renames it aside, looks at its mtime, and deletes it
   only if that mtime is older than the epoch, else renames it back.

A create not seen in step 2 took its lock after it, so after the epoch: each chunk it writes
or claims has an mtime ≥ the epoch.  If its claim came before the rename in step 4, the
collection sees the fresh mtime and puts the chunk back; if after, the claim finds no file and
the create writes the chunk again (content-addressed: the same bytes).  Either way the chunk is
there when the manifest is published.  A collection interrupted between rename and rename-back
leaves ``.<digest>.gc-<pid>`` files: the next collection puts back those a manifest names and
deletes the others.  Stale temporary chunk files (``.<digest>.….tmp``) older than the epoch are
removed too.

Deleting (:func:`delete`) takes the image's lock, removes the version's files, then collects
only the chunks those versions referenced (a chunk any other manifest names stays); if another
image's lock is live the chunks are left for a later ``gc`` and the result says so.
Nothing else is deleted here; which chunks are shared is :mod:`.repository`'s answer.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ogref.errors import LockedError, NotFoundError
from ogref.runtime.chunked import image, manifest, repository, transfer
from ogref.runtime.chunked.store import SUFFIX, ChunkStore
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.lock import LockFile

GC_LOCK = ".gc.lock"
EPOCH = ".gc-epoch"
ASIDE = ".gc-"

Phase = Callable[[str], None]
"""Called with the name of each step a collection reaches (``locks-checked``, ``scanned``):
tests use it to run a create at a precise moment."""


@dataclass
class Collected:
    """What a collection did."""

    chunks_freed: int = 0
    bytes_freed: int = 0
    chunks_kept_recent: int = 0  # unreferenced but claimed or written since the epoch
    chunks_restored: int = 0  # set aside by an interrupted collection, named by a manifest
    temporaries_removed: int = 0
    chunks_referenced: int = 0


@dataclass
class Deleted:
    """What a deletion did: files removed, chunks freed (or left for ``gc``)."""

    name: str
    format: str
    removed: list[str] = field(default_factory=list)
    collected: Collected | None = None
    deferred: str = ""  # why chunks were left for a later gc ("" if collected)
    dependents: list[str] = field(default_factory=list)  # differential images naming it


def collect(
    images: ImageStore,
    *,
    only: set[str] | None = None,
    ignore_lock: Path | None = None,
    on_phase: Phase | None = None,
) -> Collected:
    """Delete the chunks no manifest references (``only``: among these digests).

    LockedError (4) while an image lock is live (``ignore_lock``: the caller's own) or another
    collection runs; ImageFileError (33) if a manifest is damaged."""
    store = image.chunk_store(images)
    done = Collected()
    if not store.root.is_dir():
        return done
    with LockFile(store.root / GC_LOCK, f"garbage collection of {store.root}"):
        epoch = _stamp(store)
        busy = repository.live_locks(images, ignore=ignore_lock)
        if busy:
            names = ", ".join(str(p.relative_to(images.root)) for p in busy)
            raise LockedError(f"images are being written ({names}): garbage collection waits")
        if on_phase is not None:
            on_phase("locks-checked")
        counts = repository.reference_counts(repository.chunked_versions(images))
        done.chunks_referenced = len(counts)
        if on_phase is not None:
            on_phase("scanned")
        _leftovers(store, counts, epoch, done)
        for digest, path in list(store.entries()):
            if digest in counts or (only is not None and digest not in only):
                continue
            _drop(path, f"{ASIDE}{os.getpid()}", epoch, done)
    return done


def _stamp(store: ChunkStore) -> int:
    """The epoch: the mtime (ns) of a file written now in the store, on the store's clock."""
    path = store.root / EPOCH
    with open(path, "wb") as f:
        f.write(str(os.getpid()).encode())
        f.flush()
        os.fsync(f.fileno())
    return path.stat().st_mtime_ns


def _drop(path: Path, tag: str, epoch: int, done: Collected) -> None:
    """Set the chunk aside, delete it if older than the epoch, else put it back."""
    aside = path.with_name(f".{path.name}{tag}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return
    st = aside.stat()
    if st.st_mtime_ns >= epoch:  # a create wrote or claimed it since the epoch
        os.replace(aside, path)
        done.chunks_kept_recent += 1
        return
    aside.unlink()
    done.chunks_freed += 1
    done.bytes_freed += st.st_size


def _leftovers(store: ChunkStore, counts: dict[str, int], epoch: int, done: Collected) -> None:
    """Finish what an interrupted collection or create left: chunks set aside (put back if
    named, else deleted) and temporary files older than the epoch."""
    for sub in store.root.iterdir():
        if len(sub.name) != 2 or not sub.is_dir():
            continue
        for path in sub.glob(".*"):
            name = path.name
            if ASIDE in name and name.find(SUFFIX) == 65:
                digest = name[1:65]
                target = store.path(digest)
                if digest in counts and not target.exists():
                    os.replace(path, target)
                    done.chunks_restored += 1
                else:
                    path.unlink(missing_ok=True)
            elif name.endswith(".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime_ns < epoch:
                        path.unlink()
                        done.temporaries_removed += 1


def delete(
    images: ImageStore,
    name: str,
    *,
    version: str = "",
    on_phase: Phase | None = None,
) -> Deleted:
    """Delete image ``name`` (every version) or only its previous version (``version="ant"``),
    in either format; for a chunked image free the chunks no other manifest references.

    NotFoundError (2) if there is no such image or version, LockedError (4) if it is being
    written."""
    files = images.files(name)
    path = image.manifest_path(images, name)
    if version not in ("", repository.ANT):
        raise NotFoundError(f"image {name}: no version {version!r} (only 'ant' can be named)")
    chunked = path.is_file() or Path(f"{path}.ant").is_file()
    current = path if chunked else files.img
    ant = Path(f"{current}.ant")
    if version and not ant.is_file():
        raise NotFoundError(f"image {name} has no previous version (.ant) in {images.root}")
    if not (current.is_file() or ant.is_file()):
        raise NotFoundError(f"image {name} not found in {images.root}")
    if chunked:
        pack = transfer.pack_path(images, files.name)  # and its .torrent: made from it
        targets = [ant] if version else [path, ant, pack, Path(f"{pack}.torrent")]
    else:
        olds = [Path(f"{p}.ant") for p in files.all_paths()]
        targets = olds if version else [*files.all_paths(), *olds]
    present = [p for p in targets if p.is_file()]
    out = Deleted(files.name, "chunked" if chunked else "partclone")
    with LockFile(files.lock, f"image {files.name}") as lock:
        freed: set[str] = set()
        for target in present:
            if chunked and target.name.endswith((manifest.SUFFIX, f"{manifest.SUFFIX}.ant")):
                with contextlib.suppress(Exception):  # a damaged manifest: gc finds its chunks
                    freed |= {c.digest for c in manifest.load(target).chunks}
            target.unlink()
            out.removed.append(str(target.relative_to(images.root)))
        if not chunked:
            return out
        out.dependents = [
            v.name
            for v, made in _loadable(images)
            if made.base is not None and made.base.name == files.name
        ]
        try:
            out.collected = collect(images, only=freed, ignore_lock=lock.path, on_phase=on_phase)
        except LockedError as exc:
            out.deferred = f"{exc.message}; run `ogref image gc` later"
    return out


def _loadable(images: ImageStore) -> list[tuple[repository.Version, manifest.Manifest]]:
    out = []
    for v in repository.versions(images):
        if v.format == "chunked":
            with contextlib.suppress(Exception):
                out.append((v, manifest.load(v.path)))
    return out
