"""A content-addressed chunk store: a directory of zstd frames named by their content's BLAKE3.

Layout ``<root>/<first two hex digits>/<digest>.zst`` (one per repository, one in each CACHE),
so a chunk shared by several images or versions is stored once.  Writes are atomic (a temporary
file renamed into place; a crash leaves no half chunk under a real name) and made durable in one
``syncfs`` before a manifest may name them.  Reading checks the content against its name: a
missing or damaged chunk is error 33.  :meth:`ChunkStore.claim` marks a chunk a create reuses
(its mtime), which is what makes garbage collection safe against a concurrent create
(:mod:`.garbage`).  It knows nothing of manifests or devices and deletes nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import zstandard

from ogref.errors import ImageFileError
from ogref.runtime.chunked import chunk

SUFFIX = ".zst"
FLUSH_STEP = 64 * 1024 * 1024


class ChunkStore:
    """The chunk directory ``root`` (created on the first write)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._made: set[str] = set()
        self._lock = threading.Lock()
        self._unsynced = 0  # bytes written since the last background flush started
        self._flusher: threading.Thread | None = None

    def path(self, digest: str) -> Path:
        """Where chunk ``digest`` lives."""
        return self.root / digest[:2] / f"{digest}{SUFFIX}"

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def claim(self, digest: str) -> bool:
        """Whether the store holds chunk ``digest``, marking it as just used (its mtime set to
        now): a chunk a create reuses is then as recent as one it writes, which garbage
        collection keeps (:mod:`.garbage`).  False if it is missing (then ``put`` it)."""
        try:
            os.utime(self.path(digest))
        except FileNotFoundError:
            return False
        return True

    def entries(self) -> Iterator[tuple[str, Path]]:
        """Every chunk file: (digest, path); temporary and set-aside files are not listed."""
        if not self.root.is_dir():
            return
        for sub in sorted(self.root.iterdir()):
            if len(sub.name) != 2 or not sub.is_dir():
                continue
            for path in sub.iterdir():
                name = path.name
                if name.endswith(SUFFIX) and chunk.is_digest(name[: -len(SUFFIX)]):
                    yield name[: -len(SUFFIX)], path

    def put(self, digest: str, frame: bytes) -> bool:
        """Store the compressed ``frame`` of chunk ``digest``; False if it was already there."""
        path = self.path(digest)
        if path.is_file():
            return False
        sub = digest[:2]
        if sub not in self._made:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock:
                self._made.add(sub)
        tmp = path.parent / f".{digest}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            try:
                tmp.write_bytes(frame)
            except FileNotFoundError:  # its directory was removed meanwhile (an emptied CACHE)
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_bytes(frame)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._written(len(frame))
        return True

    def _written(self, size: int) -> None:
        """Every :data:`FLUSH_STEP` bytes, start a ``syncfs`` in the background, so that the
        final :meth:`sync` has little left to wait for (the disk works while chunks are cut)."""
        with self._lock:
            self._unsynced += size
            busy = self._flusher is not None and self._flusher.is_alive()
            if self._unsynced < FLUSH_STEP or busy:
                return
            self._unsynced = 0
            self._flusher = threading.Thread(target=self._syncfs, name="ogref-chunk-flush")
            self._flusher.daemon = True
            self._flusher.start()

    def frame(self, digest: str) -> bytes:
        """The stored (compressed) bytes of a chunk; ImageFileError (33) if it is missing."""
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise ImageFileError(f"chunk {digest} is missing from {self.root}") from None

    def read(self, digest: str, size: int) -> bytes:
        """The chunk's bytes, checked against its name and size (ImageFileError 33 if not)."""
        return unpacked(digest, size, self.frame(digest))

    def verify(self, digest: str, size: int) -> str:
        """'' if the chunk is sound, else what is wrong with it."""
        try:
            self.read(digest, size)
        except ImageFileError as exc:
            return exc.message
        return ""

    def size_on_disk(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            return 0

    def sync(self) -> None:
        """Make every chunk written so far durable (``syncfs`` of the store's filesystem)."""
        if self._flusher is not None:
            self._flusher.join()
        self._syncfs()

    def _syncfs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if _syncfs is None or _syncfs(fd) != 0:
                os.sync()
        finally:
            os.close(fd)


def _load_syncfs() -> ctypes._NamedFuncPointer | None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.syncfs
        fn.argtypes = [ctypes.c_int]
        fn.restype = ctypes.c_int
        return fn
    return None


_syncfs = _load_syncfs()


def unpacked(digest: str, size: int, frame: bytes) -> bytes:
    """``frame``'s ``size`` bytes, checked against their name ``digest`` (ImageFileError 33:
    a frame that does not decompress, or whose content has another hash)."""
    try:
        data = chunk.decompress(frame, size)
    except zstandard.ZstdError as exc:
        raise ImageFileError(f"chunk {digest} is damaged: {exc}") from None
    if chunk.digest(data) != digest:
        raise ImageFileError(f"chunk {digest} is damaged: its content has another hash")
    return data
