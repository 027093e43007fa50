"""A mounted filesystem's root as the only place its paths may reach: links never lead out.

A restored image is untrusted: ``/etc/hostname`` may be an absolute link to the live client's
(or the lab host's) own file, ``/etc`` a link to ``/``, ``etc/fstab`` a ``../../`` chain or a
FIFO.  :class:`RootDir` resolves every path relative to the root's directory descriptor so that
links are followed only while they stay inside the tree (``openat2`` with ``RESOLVE_BENEATH``,
kernel ≥ 5.6; on older kernels, or where a seccomp filter hides the call, a component-by-component
walker with ``O_NOFOLLOW`` that applies the same rule).  An absolute link, a ``..`` above the
root, a link loop or a crossing into another mount is refused with
:class:`~ogref.errors.UnsafePathError`; reads and writes accept regular files only (a FIFO or a
device node is refused before anything opens it).  Writes go through the resolved descriptor;
:meth:`RootDir.checked_path` gives external tools (hivex, grub-install) a path none of whose
components is a link.

Measured: the lab's kernel (6.18) has ``openat2``; so do Debian 11 (5.10) and 12 (6.1).
This module does not mount anything (:mod:`ogref.runtime.mount`) and does not decide what to
write (:mod:`ogref.runtime.postconf`).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from ogref.errors import UnsafePathError

# linux/openat2.h
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
_SYS_OPENAT2 = 437  # the same number on every architecture with the unified syscall table
_UNIFIED = {"x86_64", "aarch64", "armv7l", "armv8l", "riscv64", "ppc64le", "s390x", "i686"}
MAX_LINKS = 40  # the kernel's MAXSYMLINKS
ESCAPE = "refused to follow a link (or '..') that leads outside the filesystem"
LOOP = "refused: a link loop"
IS_LINK = "refused: a component is a link"
OTHER_MOUNT = "refused: crosses into another mount"
_O_PATH = getattr(os, "O_PATH", 0o10000000)


class _OpenHow(ctypes.Structure):
    _fields_ = (
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    )


def _libc_syscall() -> Callable[..., int] | None:
    if platform.machine() not in _UNIFIED:
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_long
    return fn


_SYSCALL = _libc_syscall()


def openat2(dirfd: int, path: str, flags: int, mode: int, resolve: int) -> int:
    """The ``openat2`` system call; OSError with its errno (ENOSYS where there is none)."""
    if _SYSCALL is None:
        raise OSError(errno.ENOSYS, "openat2 is not available on this architecture")
    how = _OpenHow(flags, mode if flags & os.O_CREAT else 0, resolve)
    fd = int(
        _SYSCALL(
            ctypes.c_long(_SYS_OPENAT2),
            ctypes.c_int(dirfd),
            ctypes.c_char_p(os.fsencode(path)),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
    )
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return fd


def openat2_available() -> bool:
    """Whether this kernel (and any seccomp filter) lets ``openat2`` through."""
    try:
        os.close(openat2(-100, "/", os.O_RDONLY | os.O_CLOEXEC | _O_PATH, 0, 0))  # AT_FDCWD
    except OSError as exc:
        return exc.errno not in (errno.ENOSYS, errno.EPERM)
    return True


_OPENAT2 = openat2_available()


def _parts(rel: str) -> list[str]:
    return [p for p in rel.split("/") if p not in ("", ".")]


def _steps(rel: str) -> list[str]:
    """:func:`_parts` for resolution: a ``.`` after a name, or a trailing ``/``, stays (as
    ``.``), because it asks that name to be a directory ("file/." is ENOTDIR, as the kernel
    says)."""
    steps: list[str] = []
    for p in rel.split("/"):
        if p == "." or (p == "" and steps and steps[-1] != "."):
            if steps and steps[-1] != ".":
                steps.append(".")
        elif p:
            steps.append(p)
    return steps


class RootDir:
    """The directory ``path`` (a mount point) as a root that no lookup leaves.

    Paths are relative to it (a leading ``/`` is the root itself).  ``kernel=False`` forces the
    walker instead of ``openat2`` (tests compare the two).
    """

    def __init__(self, path: str | Path, *, kernel: bool | None = None) -> None:
        self.path = Path(path)
        self.kernel = _OPENAT2 if kernel is None else kernel
        self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._dev = os.fstat(self._fd).st_dev

    def close(self) -> None:
        """Release the root's descriptor."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> RootDir:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ resolution

    def open(self, rel: str, flags: int, mode: int = 0o644, *, links: bool = True) -> int:
        """A descriptor for ``rel`` opened with ``flags``; links followed only inside the root
        (``links=False``: no component may be a link).  UnsafePathError when refused; other
        OSErrors (FileNotFoundError…) as the system gives them."""
        flags |= os.O_CLOEXEC if flags & _O_PATH else os.O_CLOEXEC | os.O_NOCTTY
        parts = _steps(rel)
        if not parts:
            return os.open(".", flags & ~os.O_CREAT, dir_fd=self._fd)
        if self.kernel:
            resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV
            if not links:
                resolve |= RESOLVE_NO_SYMLINKS
            try:
                return openat2(self._fd, "/".join(parts), flags, mode, resolve)
            except OSError as exc:
                raise self._refusal(rel, exc, links) from None
        return self._walk(rel, parts, flags, mode, links)

    def _refusal(self, rel: str, exc: OSError, links: bool) -> OSError | UnsafePathError:
        where = f"/{rel.lstrip('/')}"
        if exc.errno == errno.EXDEV:
            return UnsafePathError(where, ESCAPE)
        if exc.errno == errno.ELOOP:
            return UnsafePathError(where, IS_LINK if not links else LOOP)
        return exc

    def _walk(self, rel: str, parts: list[str], flags: int, mode: int, links: bool) -> int:
        """The same rule as RESOLVE_BENEATH, one component at a time (kernels before 5.6)."""
        todo = deque(parts)
        stack = [os.dup(self._fd)]  # the directories from the root to the current one
        followed = 0
        where = f"/{rel.lstrip('/')}"
        try:
            while todo:
                name = todo.popleft()
                if name == ".":  # the current one, a directory (only directories are stacked)
                    continue
                if name == "..":
                    if len(stack) == 1:
                        raise UnsafePathError(where, ESCAPE)
                    os.close(stack.pop())
                    continue
                here = stack[-1]
                try:
                    st = os.stat(name, dir_fd=here, follow_symlinks=False)
                except FileNotFoundError:
                    if todo or not flags & os.O_CREAT:
                        raise
                    return os.open(name, flags | os.O_NOFOLLOW, mode, dir_fd=here)
                if not todo and flags & os.O_CREAT and flags & os.O_EXCL:
                    return os.open(name, flags | os.O_NOFOLLOW, mode, dir_fd=here)  # EEXIST
                if st.st_dev != self._dev:
                    raise UnsafePathError(where, OTHER_MOUNT)
                if stat.S_ISLNK(st.st_mode):
                    if not links:
                        raise UnsafePathError(where, IS_LINK)
                    followed += 1
                    if followed > MAX_LINKS:
                        raise UnsafePathError(where, LOOP)
                    target = os.readlink(name, dir_fd=here)
                    if target.startswith("/"):
                        raise UnsafePathError(where, ESCAPE)
                    todo.extendleft(reversed(_steps(target)))
                    continue
                if not todo:
                    return os.open(name, flags | os.O_NOFOLLOW, mode, dir_fd=here)
                if not stat.S_ISDIR(st.st_mode):
                    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), where)
                stack.append(os.open(name, _O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=here))
            # the path named a directory (e.g. "a/b/..")
            return os.open(".", flags & ~os.O_CREAT, dir_fd=stack[-1])
        finally:
            for fd in stack:
                os.close(fd)

    # ------------------------------------------------------------------ queries

    def kind(self, rel: str) -> str:
        """``dir``, ``file``, ``other`` or ``missing`` for ``rel`` (links followed inside)."""
        try:
            fd = self.open(rel, _O_PATH)
        except (FileNotFoundError, NotADirectoryError):
            return "missing"
        try:
            mode = os.fstat(fd).st_mode
        finally:
            os.close(fd)
        if stat.S_ISDIR(mode):
            return "dir"
        return "file" if stat.S_ISREG(mode) else "other"

    def is_dir(self, rel: str) -> bool:
        return self.kind(rel) == "dir"

    def exists(self, rel: str) -> bool:
        """Whether the entry ``rel`` itself exists (a link counts, wherever it points)."""
        *parent, name = _parts(rel) or [""]
        try:
            fd = self.open("/".join(parent), _O_PATH | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            return False
        try:
            os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        finally:
            os.close(fd)
        return True

    def listdir(self, rel: str) -> list[str]:
        """The names in directory ``rel`` (links followed inside the root)."""
        fd = self.open(rel, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return os.listdir(fd)
        finally:
            os.close(fd)

    def checked_path(self, rel: str) -> Path:
        """``root/rel`` after checking that it exists and no component is a link or a mount."""
        os.close(self.open(rel, _O_PATH, links=False))
        return self.path.joinpath(*_parts(rel))

    def links_under(self, rel: str) -> list[str]:
        """Every link in the tree ``rel`` (relative paths), walking without following any."""
        fd = self.open(rel, os.O_RDONLY | os.O_DIRECTORY, links=False)
        found: list[str] = []
        try:
            for top, dirs, files, here in os.fwalk(".", dir_fd=fd, follow_symlinks=False):
                for name in dirs + files:
                    st = os.stat(name, dir_fd=here, follow_symlinks=False)
                    if stat.S_ISLNK(st.st_mode):
                        found.append(os.path.normpath(os.path.join(rel, top, name)))
        finally:
            os.close(fd)
        return sorted(found)

    # ------------------------------------------------------------------ contents

    def _regular(self, rel: str, flags: int, *, create: bool = False) -> int:
        """Open ``rel`` with ``flags`` if it is a regular file (created 0644 when missing and
        ``create``).  The entry is first looked up with ``O_PATH``, which opens nothing: a FIFO
        (which would block) or a device node is refused before any real open."""
        where = f"/{rel.lstrip('/')}"
        try:
            probe = self.open(rel, _O_PATH)
        except FileNotFoundError:
            if not create:
                raise
            try:  # O_EXCL: a dangling link in the final place is not followed
                return self.open(rel, flags | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                raise UnsafePathError(where, "refused: a dangling link") from None
        try:
            if not stat.S_ISREG(os.fstat(probe).st_mode):
                raise UnsafePathError(where, "refused: not a regular file")
            # reopen the very inode that was checked
            return os.open(f"/proc/self/fd/{probe}", flags | os.O_CLOEXEC | os.O_NOCTTY)
        finally:
            os.close(probe)

    def read_bytes(self, rel: str) -> bytes:
        """The contents of the regular file ``rel``."""
        fd = self._regular(rel, os.O_RDONLY)
        try:
            chunks = []
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def read_text(self, rel: str) -> str:
        return self.read_bytes(rel).decode("utf-8", errors="surrogateescape")

    def write_bytes(self, rel: str, data: bytes, *, fresh: bool = False) -> None:
        """Replace the contents of the regular file ``rel`` (created 0644 if missing).
        ``fresh``: remove any entry of that name first and create a new file."""
        if fresh:
            self.unlink(rel)
        fd = self._regular(rel, os.O_WRONLY, create=True)
        try:
            os.ftruncate(fd, 0)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)

    def write_text(self, rel: str, text: str, *, fresh: bool = False) -> None:
        self.write_bytes(rel, text.encode("utf-8", errors="surrogateescape"), fresh=fresh)

    def unlink(self, rel: str) -> bool:
        """Remove the entry ``rel`` itself (a link is removed, never followed); whether it was
        there.  A directory is refused."""
        *parent, name = _parts(rel) or [""]
        if not name:
            raise UnsafePathError("/", "refused: the root is not a file")
        try:
            fd = self.open("/".join(parent), _O_PATH | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except UnsafePathError as exc:
            raise UnsafePathError(f"/{rel.lstrip('/')}", exc.reason) from None
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                raise UnsafePathError(f"/{rel.lstrip('/')}", "refused: a directory")
            os.unlink(name, dir_fd=fd)
        except FileNotFoundError:
            return False
        finally:
            os.close(fd)
        return True
