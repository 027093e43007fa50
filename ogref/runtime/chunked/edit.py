"""Edit a chunked image: remove and add files, producing a new version that stores only the
chunks that changed (the previous version kept as ``.ant``, as OpenGnSys keeps ``.img.ant``).

The image is restored into a sparse file (only its used blocks are written), the file attached
as a loop device, the filesystem mounted read-write (ext*, btrfs, xfs with the kernel; NTFS
with ``ntfs-3g``; FAT, which the lab kernel cannot mount, with mtools on the device), the
removals then the additions applied, the filesystem unmounted and checked, and the new version
made from the device through the ordinary chunked create (same chunking and level, so every
unchanged chunk is only claimed, not stored again).  The image lock is held throughout; the
loop device is detached and the scratch file deleted on every exit path.

Paths inside the image are relative to its root; ``..`` or a symbolic link on the way is
refused (14, UnsafePathError: the image's content is untrusted and must not lead an edit to
the host's files).  A missing source or path to remove is 2; files that do not fit the
filesystem are 30; an OpenGnSys ``.img`` is refused (1) with the conversion to run first.
It does not resize the filesystem.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ogref.errors import (
    FormatError,
    ImageError,
    ImageSizePartitionError,
    NotFoundError,
    OgError,
    UnsafePathError,
)
from ogref.model.storage import Filesystem
from ogref.runtime.chunked import image
from ogref.runtime.chunked.create import DEFAULT_LOCK_DIR, ChunkedResult, create_chunked
from ogref.runtime.chunked.manifest import Manifest
from ogref.runtime.chunked.restore import write_chunks
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.lock import LockFile
from ogref.runtime.loopdev import LoopDisk
from ogref.runtime.mount import Mount
from ogref.runtime.proc import run

FAT = (Filesystem.FAT16, Filesystem.FAT32)


@dataclass(frozen=True)
class Addition:
    """Copy ``source`` (a file or a directory tree on this host) to ``dest`` in the image."""

    source: Path
    dest: str

    @classmethod
    def parse(cls, text: str) -> Addition:
        """``SRC:DEST`` (the last colon separates them)."""
        src, sep, dest = text.rpartition(":")
        if not sep or not src or not dest:
            raise FormatError(f"--add wants SRC:DEST, got {text!r}")
        return cls(Path(src), dest)


@dataclass(frozen=True)
class EditResult:
    """The new version and what it cost: the previous version's digest, the create's result."""

    previous: Manifest
    created: ChunkedResult


def inner_parts(path: str) -> tuple[str, ...]:
    """The components of a path inside the image; UnsafePathError (14) for ``..`` or none."""
    parts = tuple(p for p in PurePosixPath(path).parts if p not in ("/", "."))
    if not parts or ".." in parts:
        raise UnsafePathError(path, "not a path inside the image")
    return parts


def edit_chunked(
    images: ImageStore,
    name: str,
    *,
    add: list[Addition] | None = None,
    remove: list[str] | None = None,
    message: str = "",
    work_dir: Path | None = None,
    lock_dir: Path = DEFAULT_LOCK_DIR,
    workers: int = 0,
) -> EditResult:
    """Apply ``remove`` then ``add`` to chunked image ``name``; publish the new version."""
    add, remove = add or [], remove or []
    if not add and not remove:
        raise FormatError("nothing to edit: give --add SRC:DEST or --remove PATH")
    files = images.files(name)
    if not image.exists(images, name):
        if files.img.is_file():
            raise FormatError(
                f"{name} is an OpenGnSys image: `ogref image convert {name} --to chunked` first"
            )
        raise NotFoundError(f"chunked image {name} not found in {images.root}")
    for a in add:
        inner_parts(a.dest)
        if not a.source.exists():
            raise NotFoundError(f"{a.source} (to add as {a.dest}) does not exist")
    for r in remove:
        inner_parts(r)
    with LockFile(files.lock, f"image {files.name}"):
        made = image.load(images, name)
        base = made.base.name if made.base and image.exists(images, made.base.name) else ""
        with scratch_device(images, made, work_dir, workers) as device:
            apply(device, made.filesystem, add, remove)
            done = create_chunked(
                device, images, files.name, level=made.level, chunking=made.chunking,
                lock_dir=lock_dir, host=made.host, workers=workers, image_locked=True,
                message=message, diff_of=base,
            )  # fmt: skip
    return EditResult(made, done)


@contextmanager
def scratch_device(
    images: ImageStore, made: Manifest, work_dir: Path | None, workers: int = 0
) -> Iterator[str]:
    """The image restored into a sparse file attached as a loop device (detached and deleted
    on every exit path)."""
    with tempfile.TemporaryDirectory(prefix="ogref-edit-", dir=work_dir) as tmp:
        backing = Path(tmp) / "partition.img"
        fd = os.open(backing, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, made.header.device_size)
            write_chunks(made, image.chunk_store(images), fd, workers=workers)
        except OSError as exc:
            raise ImageError(f"cannot restore {backing}: {exc.strerror}") from exc
        finally:
            os.close(fd)
        with LoopDisk(backing) as loop:
            yield loop.device


def apply(device: str, fs: Filesystem, add: list[Addition], remove: list[str]) -> None:
    """Remove then add files on the (unmounted) filesystem on ``device``."""
    try:
        if fs in FAT:
            _apply_fat(device, add, remove)
            return
        with Mount(device, fs) as root:
            for path in remove:
                _remove(root, path)
            for a in add:
                _add(root, a)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ImageSizePartitionError(
                f"the files added do not fit the image's {fs} filesystem"
            ) from exc
        raise ImageError(f"editing the image failed: {exc}") from exc


def _walk(root: Path, path: str) -> Path:
    """``root``/``path`` with no symbolic link among its parents (UnsafePathError 14)."""
    parts = inner_parts(path)
    here = root
    for part in parts[:-1]:
        here = here / part
        if here.is_symlink():
            raise UnsafePathError(path, f"{part!r} is a symbolic link in the image")
    return here / parts[-1]


def _remove(root: Path, path: str) -> None:
    target = _walk(root, path)
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    else:
        raise NotFoundError(f"{path} is not in the image")


def _add(root: Path, a: Addition) -> None:
    target = _walk(root, a.dest)
    if target.is_symlink():
        target.unlink()  # replaced, never followed
    elif target.is_dir() and not a.source.is_dir():
        target = target / a.source.name
        if target.is_symlink():
            target.unlink()
    _make_parents(root, target)
    if a.source.is_dir():
        shutil.copytree(a.source, target, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(a.source, target)


def _make_parents(root: Path, target: Path) -> None:
    here = root
    for part in target.relative_to(root).parts[:-1]:
        here = here / part
        if here.is_symlink():
            raise UnsafePathError(str(here.relative_to(root)), "a symbolic link in the image")
        here.mkdir(exist_ok=True)


def _apply_fat(device: str, add: list[Addition], remove: list[str]) -> None:
    """The same with mtools (no symbolic links on FAT)."""

    def m(argv: list[str], *, error: type[OgError] = ImageError) -> int:
        return run([argv[0], "-i", device, *argv[1:]], error=error, check=False).returncode

    def fat(path: str) -> str:
        return "::/" + "/".join(inner_parts(path))

    for path in remove:
        if m(["mdel", fat(path)]) != 0 and m(["mdeltree", fat(path)]) != 0:
            raise NotFoundError(f"{path} is not in the image")
    for a in add:
        parts = inner_parts(a.dest)
        for i in range(1, len(parts)):
            m(["mmd", "-D", "s", "::/" + "/".join(parts[:i])])  # exists already: fine
        dest = fat(a.dest)
        if m(["mcopy", "-s", "-o", "-Q", str(a.source), dest]) != 0:
            raise ImageError(f"mcopy of {a.source} to {dest} failed (full, or a bad name)")
