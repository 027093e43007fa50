"""A content-addressed chunk store: a directory of zstd frames named by their content's BLAKE3.

Layout ``<root>/<first two hex digits>/<digest>.zst`` (one per repository, one in each CACHE),
so a chunk shared by several images or versions is stored once.  Writes are atomic (an unnamed
``O_TMPFILE`` linked under its name once complete, or a temporary file renamed into place; a
crash leaves no half chunk under a real name) and made durable in one ``syncfs`` before a
manifest may name them.  Reading checks the content against its name: a
missing or damaged chunk is error 33.  :meth:`ChunkStore.claim` marks a chunk a create reuses
(its mtime), which is what makes garbage collection safe against a concurrent create
(:mod:`.garbage`).  It knows nothing of manifests or devices and deletes nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
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
        self._tmpfile = _linkat is not None  # False once the filesystem refuses O_TMPFILE

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
        """Store the compressed ``frame`` of chunk ``digest``; False if it was already there.

        The frame is written into an unnamed file (``O_TMPFILE``) that is linked under its
        name once complete: one directory entry made, none renamed or left behind by a crash.
        Where the filesystem has no ``O_TMPFILE``, a temporary file renamed into place."""
        path = self.path(digest)
        sub = digest[:2]
        if sub not in self._made:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock:
                self._made.add(sub)
        if self._tmpfile:
            try:
                stored = self._put_unnamed(str(path), frame)
            except FileNotFoundError:  # its directory was removed meanwhile (an emptied CACHE)
                path.parent.mkdir(parents=True, exist_ok=True)
                stored = self._put_unnamed(str(path), frame)
            except OSError as exc:
                if exc.errno not in _NO_TMPFILE:
                    raise
                self._tmpfile = False
                return self.put(digest, frame)
        else:
            stored = self._put_renamed(path, frame)
        if stored:
            self._written(len(frame))
        return stored

    @staticmethod
    def _put_unnamed(path: str, frame: bytes) -> bool:
        fd = os.open(os.path.dirname(path), os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(frame)
            while view:
                view = view[os.write(fd, view) :]
            try:
                _link_fd(fd, path)
            except FileExistsError:
                return False
        finally:
            os.close(fd)
        return True

    @staticmethod
    def _put_renamed(path: Path, frame: bytes) -> bool:
        if path.is_file():
            return False
        tmp = path.parent / f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp"
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

_AT_FDCWD = -100
_AT_SYMLINK_FOLLOW = 0x400
# O_TMPFILE not supported by the filesystem or the kernel (then a temporary file is renamed)
_NO_TMPFILE = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.EXDEV)


def _load_linkat() -> ctypes._NamedFuncPointer | None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.linkat
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        fn.restype = ctypes.c_int
        return fn
    return None


_linkat = _load_linkat() if hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd") else None


def _link_fd(fd: int, path: str) -> None:
    """Give the open unnamed file ``fd`` the name ``path`` (``linkat`` through ``/proc``;
    ``os.link`` does not follow the ``/proc/self/fd`` link)."""
    assert _linkat is not None
    src = f"/proc/self/fd/{fd}".encode()
    if _linkat(_AT_FDCWD, src, _AT_FDCWD, os.fsencode(path), _AT_SYMLINK_FOLLOW) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)


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
