"""Moving a chunked image into a CACHE: only the chunks the CACHE's store lacks, each one
checked against its name before it counts; and packs, the one-stream form of a set of chunks
that udpcast and BitTorrent carry.

``fetch`` is updateCache of a chunked image: the repository's manifest (its digest checked),
then every distinct chunk the CACHE's chunk store lacks, read from a :class:`ChunkSource`
(a directory, or the SMB share in :mod:`ogref.transports.chunks`), decompressed and re-hashed,
written atomically under its name; one ``syncfs``; then the manifest is installed (no ``.ant``
in a CACHE) and the chunks only the replaced version used are deleted.  An interrupted update
leaves whole, checked chunks behind and nothing else, so the next one continues where it
stopped: resumable at chunk granularity, with no marker to trust.

**The CACHE's chunks are freed safely while an update runs** (evict, empty, an update's own
prune).  Every deletion from a CACHE's store (:func:`prune`, :func:`discard`, :func:`empty`)
and an update's last step (every chunk of the image present? then the manifest installed) hold
the store's lock (``chunks/.cache.lock``, ``flock``; they wait for each other, nothing is
refused).  A deletion sees the manifests installed so far; a chunk an update is still
fetching, or found present at its start, is named by none yet and may be deleted — the
update's last step finds it missing, under the lock, fetches it again and only then installs
the manifest.  So an installed manifest never names a chunk the store lacks, and a deletion
never waits for a whole transfer.

A **pack** (``OGPACK1``) is a stream of chunks: an 8-byte magic, then per chunk its name (32
raw bytes of BLAKE3), its uncompressed size and its frame size (two little-endian u32) and the
zstd frame.  ``write_pack`` makes one from a store (``ensure_pack``: the repository's
``NAME.pack`` that udp-sender sends, ``make_pack_torrent``: with its ``NAME.pack.torrent``);
``Unpacker`` reads one from any byte stream, keeps the chunks a store lacks (each checked) and
skips the others.  It decides nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import struct
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from ogref.errors import ImageFileError, NotFoundError, UpdateCacheError
from ogref.runtime.chunked import chunk, inventory
from ogref.runtime.chunked import image as chunked_image
from ogref.runtime.chunked.manifest import Manifest
from ogref.runtime.chunked.store import ChunkStore, unpacked
from ogref.runtime.imagefile import ImageStore

PACK_MAGIC = b"OGPACK1\n"
_RECORD = struct.Struct("<32sII")
FETCH_WORKERS = 4


class ChunkSource(Protocol):
    """Where chunks come from: the repository (a directory, or its SMB share)."""

    def manifest_bytes(self, name: str) -> bytes: ...

    def frame(self, digest: str) -> bytes: ...


class DirectorySource:
    """Chunks and manifests of an image directory on a mounted file system."""

    def __init__(self, images: ImageStore) -> None:
        self.images = images
        self.store = chunked_image.chunk_store(images)

    def manifest_bytes(self, name: str) -> bytes:
        path = chunked_image.manifest_path(self.images, name)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"chunked image {name} not found in {self.images.root}") from None

    def frame(self, digest: str) -> bytes:
        return self.store.frame(digest)


def checked(digest: str, size: int, frame: bytes) -> bytes:
    """``frame`` if it decompresses to ``size`` bytes whose hash is ``digest``; else 33."""
    unpacked(digest, size, frame)
    return frame


@dataclass(frozen=True)
class Fetched:
    """An update's result: the manifest digest, what moved, what was already there."""

    digest: str
    bytes_moved: int
    chunks_moved: int
    chunks_present: int
    bytes_present: int


def missing(made: Manifest, store: ChunkStore) -> list[tuple[str, int]]:
    """The image's distinct chunks (name, size) the store lacks, in the manifest's order."""
    seen: set[str] = set()
    out = []
    for ref in made.chunks:
        if ref.digest in seen:
            continue
        seen.add(ref.digest)
        if not store.has(ref.digest):
            out.append((ref.digest, ref.size))
    return out


def fetch(
    source: ChunkSource,
    cache: ImageStore,
    name: str,
    *,
    progress: Callable[[int, int], None] | None = None,
    workers: int = FETCH_WORKERS,
    new_source: Callable[[], ChunkSource] | None = None,
) -> Fetched:
    """updateCache of chunked image ``name`` from ``source`` into ``cache`` (see the module).

    ``new_source`` makes one source per worker thread when a source cannot be shared (an SMB
    connection); without it ``source`` serves every thread."""
    raw = source.manifest_bytes(name)
    made = Manifest.from_json(raw, f"{name} (repository)")
    store = chunked_image.chunk_store(cache)
    todo = missing(made, store)
    total = sum(size for _d, size in todo)
    distinct = {c.digest for c in made.chunks}
    moved = 0
    done = 0
    local = threading.local()

    def one(item: tuple[str, int]) -> int:
        digest, size = item
        src = source
        if new_source is not None:
            src = getattr(local, "src", None) or new_source()
            local.src = src
        return len(_put_checked(src, store, digest, size))

    try:
        with ThreadPoolExecutor(max(1, workers), thread_name_prefix="ogref-fetch") as pool:
            for (_digest, size), n in zip(todo, pool.map(one, todo), strict=True):
                moved += n
                done += size
                if progress is not None:
                    progress(done, total)
    except OSError as exc:
        raise UpdateCacheError(
            f"update of {name} interrupted after {len(todo)} chunks were asked for: "
            f"{exc.strerror or exc} (resumable: the chunks written are kept)"
        ) from None
    store.sync()
    with store_lock(cache):
        # a concurrent eviction may have freed chunks this update counted on: fetch them again
        while again := missing(made, store):
            src = new_source() if new_source is not None else source
            for digest, size in again:
                moved += len(_put_checked(src, store, digest, size))
            store.sync()
        install(cache, name, raw, made, locked=True)
    sizes = inventory.chunk_sizes(store)
    have = inventory.present(made, sizes)
    return Fetched(made.digest, moved, len(todo), len(distinct) - len(todo), have - moved)


def _put_checked(src: ChunkSource, store: ChunkStore, digest: str, size: int) -> bytes:
    frame = checked(digest, size, src.frame(digest))
    store.put(digest, frame)
    return frame


CACHE_LOCK = ".cache.lock"


@contextlib.contextmanager
def store_lock(cache: ImageStore) -> Iterator[None]:
    """The CACHE's chunk store held against deletions (see the module): waits, never refuses."""
    root = chunked_image.chunk_store(cache).root
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / CACHE_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def install(
    cache: ImageStore, name: str, raw: bytes, made: Manifest, *, locked: bool = False
) -> Path:
    """Put the manifest in place (every chunk must be durable); the replaced version's own
    chunks (named by no other manifest of the cache) are deleted.  ``locked``: the caller
    holds :func:`store_lock`."""
    if not locked:
        with store_lock(cache):
            return install(cache, name, raw, made, locked=True)
    path = chunked_image.manifest_path(cache, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = inventory.load_quiet(path) if path.exists() else None
    staged = Path(f"{path}.new")
    with open(staged, "wb") as f:
        f.write(raw)
        f.flush()
        os.fsync(f.fileno())
    os.replace(staged, path)
    if old is not None and old.digest != made.digest:
        prune(cache, inventory.distinct(old) - inventory.distinct(made), locked=True)
    return path


def prune(cache: ImageStore, candidates: Iterable[str], *, locked: bool = False) -> int:
    """Delete the ``candidates`` that no manifest of the directory names; bytes freed.
    ``locked``: the caller holds :func:`store_lock`."""
    if not locked:
        with store_lock(cache):
            return prune(cache, candidates, locked=True)
    used: set[str] = set()
    for other in inventory.names(cache):
        made = inventory.load_quiet(chunked_image.manifest_path(cache, other))
        if made is not None:
            used |= inventory.distinct(made)
    store = chunked_image.chunk_store(cache)
    freed = 0
    for digest in candidates:
        if digest in used:
            continue
        path = store.path(digest)
        try:
            freed += path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            continue
    return freed


def discard(cache: ImageStore, name: str) -> int:
    """Delete a cached chunked image: its manifest and the chunks no other manifest names
    (chunks of interrupted updates included: the CACHE wants the room); bytes freed."""
    path = chunked_image.manifest_path(cache, name)
    if not path.exists():
        return 0
    with store_lock(cache):
        path.unlink(missing_ok=True)
        Path(f"{path}.new").unlink(missing_ok=True)
        store = chunked_image.chunk_store(cache)
        return prune(cache, set(inventory.chunk_sizes(store)), locked=True)


def empty(cache: ImageStore) -> None:
    """Delete every image of a CACHE directory, both formats (EmptyCache), holding the store's
    lock: an update running meanwhile fetches its chunks again before it installs its manifest
    (the lock file itself stays, so the update and later deletions still exclude each other)."""
    cache.root.mkdir(parents=True, exist_ok=True)
    with store_lock(cache):
        chunks = chunked_image.chunk_store(cache).root
        for entry in cache.root.iterdir():
            if entry == chunks:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink(missing_ok=True)
        for entry in chunks.iterdir():
            if entry.name == CACHE_LOCK:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink(missing_ok=True)


# --------------------------------------------------------------------------- packs


def pack_records(made: Manifest, store: ChunkStore) -> Iterator[bytes]:
    """The pack of ``made``'s distinct chunks, in manifest order, as byte strings."""
    yield PACK_MAGIC
    seen: set[str] = set()
    for ref in made.chunks:
        if ref.digest in seen:
            continue
        seen.add(ref.digest)
        frame = store.frame(ref.digest)
        yield _RECORD.pack(bytes.fromhex(ref.digest), ref.size, len(frame)) + frame


def write_pack(made: Manifest, store: ChunkStore, path: Path) -> int:
    """Write the pack of ``made`` to ``path`` (atomically); its size."""
    tmp = Path(f"{path}.tmp{os.getpid()}")
    size = 0
    try:
        with open(tmp, "wb") as f:
            for piece in pack_records(made, store):
                f.write(piece)
                size += len(piece)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size


class Unpacker:
    """Reads a pack fed in pieces of any size (a udpcast stream, a file): each chunk the store
    lacks is checked against its name and the manifest, then kept; the others are skipped."""

    def __init__(self, made: Manifest, store: ChunkStore | None) -> None:
        self.sizes = {c.digest: c.size for c in made.chunks}
        self.store = store
        self._buf = bytearray()
        self._magic = False
        self.kept = 0
        self.skipped = 0
        self.bytes = 0

    def feed(self, data: bytes | memoryview) -> None:
        self._buf += data
        self.bytes += len(data)
        if not self._magic:
            if len(self._buf) < len(PACK_MAGIC):
                return
            if bytes(self._buf[: len(PACK_MAGIC)]) != PACK_MAGIC:
                raise ImageFileError("not a chunk pack (bad magic)")
            del self._buf[: len(PACK_MAGIC)]
            self._magic = True
        while len(self._buf) >= _RECORD.size:
            raw, size, flen = _RECORD.unpack_from(self._buf)
            if len(self._buf) < _RECORD.size + flen:
                return
            frame = bytes(self._buf[_RECORD.size : _RECORD.size + flen])
            del self._buf[: _RECORD.size + flen]
            digest = raw.hex()
            if self.sizes.get(digest) != size:
                raise ImageFileError(f"pack: chunk {digest} is not one of the image's")
            self._take(digest, size, frame)

    def _take(self, digest: str, size: int, frame: bytes) -> None:
        assert self.store is not None
        if self.store.has(digest):
            self.skipped += 1
            return
        self.store.put(digest, checked(digest, size, frame))
        self.kept += 1

    def finish(self) -> None:
        if self._buf or not self._magic:
            raise ImageFileError("pack ended in the middle of a chunk")


class PackWriter(Unpacker):
    """Writes a pack's chunks straight onto a partition through ``fd`` (MULTICAST-DIRECT): each
    chunk checked, then written at every offset the manifest gives it; ``missing`` says which
    of the image's chunks never came."""

    def __init__(self, made: Manifest, fd: int) -> None:
        super().__init__(made, None)
        self.made = made
        self.fd = fd
        self.at: dict[str, list[int]] = {}
        for offset, ref in zip(made.chunk_offsets(), made.chunks, strict=True):
            self.at.setdefault(ref.digest, []).append(offset)
        self.written = 0

    def _take(self, digest: str, size: int, frame: bytes) -> None:
        data = memoryview(chunk.decompress(checked(digest, size, frame), size))
        for offset in self.at.pop(digest, []):
            for dev, at, n in self.made.placements(offset, size):
                view = data[at : at + n]
                while view:
                    done = os.pwrite(self.fd, view, dev)
                    view, dev = view[done:], dev + done
        self.written += size
        self.kept += 1

    def missing(self) -> list[str]:
        return sorted(self.at)


CLONE_MAGIC = b"OGCLONE1"
_LEN = struct.Struct("<I")


def clone_stream(images: ImageStore, name: str) -> Iterator[bytes]:
    """A chunked image as one stream a MASTER sends when it clones its cached copy: a magic,
    the manifest (its length, then its bytes: the targets have no other copy) and the pack.
    Nothing is stored: the pack is read from the store as it is sent."""
    raw = chunked_image.manifest_path(images, name).read_bytes()
    made = Manifest.from_json(raw, f"{name} (cache)")
    yield CLONE_MAGIC + _LEN.pack(len(raw)) + raw
    yield from pack_records(made, chunked_image.chunk_store(images))


class CloneWriter:
    """Reads a :func:`clone_stream` onto a partition through ``fd``: the manifest (its digest
    must be ``digest``, what the MASTER announced: else 33), then the pack, each chunk checked
    and written at its offsets (:class:`PackWriter`)."""

    def __init__(self, fd: int, digest: str) -> None:
        self.fd, self.digest = fd, digest
        self._head = bytearray()
        self.pack: PackWriter | None = None

    def feed(self, data: bytes | memoryview) -> None:
        if self.pack is not None:
            self.pack.feed(data)
            return
        self._head += data
        need = len(CLONE_MAGIC) + _LEN.size
        if len(self._head) < need:
            return
        if bytes(self._head[: len(CLONE_MAGIC)]) != CLONE_MAGIC:
            raise ImageFileError("not a chunked clone stream (bad magic)")
        (size,) = _LEN.unpack_from(self._head, len(CLONE_MAGIC))
        if len(self._head) < need + size:
            return
        made = Manifest.from_json(bytes(self._head[need : need + size]), "the MASTER's manifest")
        if self.digest and made.digest != self.digest:
            raise ImageFileError(
                f"the MASTER sent manifest {made.digest}, not the announced {self.digest}"
            )
        rest = bytes(self._head[need + size :])
        self._head = bytearray()
        self.pack = PackWriter(made, self.fd)
        if rest:
            self.pack.feed(rest)

    def finish(self) -> PackWriter:
        if self.pack is None:
            raise ImageFileError("the clone stream ended before its manifest")
        self.pack.finish()
        if self.pack.missing():
            raise ImageFileError(f"the clone stream lacked {len(self.pack.missing())} chunks")
        return self.pack


PACK_SUFFIX = ".pack"


def pack_path(images: ImageStore, name: str) -> Path:
    """``<dir>/<name>.pack``: the pack of all of a chunked image's chunks (multicast, torrent)."""
    files = images.files(name)
    return files.root / f"{files.name}{PACK_SUFFIX}"


def ensure_pack(images: ImageStore, name: str) -> Path | None:
    """The image's pack, written (from the manifest and the store) if missing or older than the
    manifest; None if ``name`` is not a chunked image of ``images``."""
    manifest_file = chunked_image.manifest_path(images, name)
    if not manifest_file.is_file():
        return None
    path = pack_path(images, name)
    if path.is_file() and path.stat().st_mtime >= manifest_file.stat().st_mtime:
        return path
    made = chunked_image.load(images, name)
    write_pack(made, chunked_image.chunk_store(images), path)
    return path


def make_pack_torrent(
    images: ImageStore, name: str, tracker: str, piece: int = 4 * 1024 * 1024
) -> Path | None:
    """``<name>.pack`` and ``<name>.pack.torrent`` (v1, ``piece``-byte pieces, ``tracker``) for
    TORRENT; None without libtorrent or if ``name`` is not a chunked image."""
    path = ensure_pack(images, name)
    if path is None:
        return None
    try:
        import libtorrent as lt
    except ImportError:
        return None
    fs = lt.file_storage()
    fs.add_file(path.name, path.stat().st_size)
    flags = getattr(lt.create_torrent, "v1_only", 0)
    with warnings.catch_warnings():  # the file_storage constructor is deprecated, still exact
        warnings.simplefilter("ignore", DeprecationWarning)
        t = lt.create_torrent(fs, piece, flags=flags)
    if tracker:
        t.add_tracker(tracker)
    t.set_comment(chunked_image.load(images, name).digest)
    t.set_creator("ogref")
    lt.set_piece_hashes(t, str(path.parent))
    out = Path(f"{path}.torrent")
    tmp = Path(f"{out}.tmp{os.getpid()}")
    tmp.write_bytes(lt.bencode(t.generate()))
    os.replace(tmp, out)
    return out


def unpack(stream: BinaryIO, made: Manifest, store: ChunkStore, block: int = 1 << 20) -> Unpacker:
    """Read a whole pack from ``stream`` into ``store`` (see :class:`Unpacker`)."""
    up = Unpacker(made, store)
    while piece := stream.read(block):
        up.feed(piece)
    up.finish()
    return up
