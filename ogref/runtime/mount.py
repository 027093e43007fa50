"""Mounting and unmounting partitions, recording exactly what was mounted.

``Mount`` mounts one device (ext*, btrfs, xfs with ``mount``; NTFS with ``ntfs-3g``) on a
directory, always ``nosuid,nodev,noexec``, and always unmounts it again.  FAT cannot be
mounted in the lab kernel: use mtools.  This module does not format, check or resize anything.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from types import TracebackType

from ogref.errors import FilesystemError
from ogref.model.storage import Filesystem
from ogref.runtime.proc import run

SAFE_OPTIONS = ("nosuid", "nodev", "noexec")
"""Every partition is mounted with these: a restored image is untrusted (a set-uid binary, a
device node of the host's disk, an executable are inert through this mount).  Generic VFS
flags, so every filesystem (and ntfs-3g) accepts them."""


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")


def mount_points(device: str) -> list[str]:
    """Where ``device`` is mounted now (empty list: not mounted)."""
    want = os.path.realpath(device)
    found = []
    with open("/proc/self/mounts", encoding="utf-8") as f:
        for line in f:
            src, target = line.split()[:2]
            if src.startswith("/dev/") and os.path.realpath(src) == want:
                found.append(_unescape(target))
    return found


def is_mountpoint(path: str | Path) -> bool:
    """Whether something is mounted on ``path``."""
    want = os.path.realpath(path)
    with open("/proc/self/mounts", encoding="utf-8") as f:
        return any(_unescape(line.split()[1]) == want for line in f)


def unmount(target: str | Path) -> None:
    """Unmount ``target`` (a mount point), retrying briefly while busy."""
    for attempt in range(30):
        done = run(["umount", str(target)], error=FilesystemError, check=False)
        if done.returncode == 0 or not is_mountpoint(target):
            return
        if attempt == 29:
            raise FilesystemError(f"cannot unmount {target}: {done.stderr.strip()}")
        time.sleep(0.1)


def unmount_device(device: str) -> None:
    """Unmount every mount of ``device`` (OpenGnSys unmounts the target before restoring)."""
    for target in reversed(mount_points(device)):
        unmount(target)


class Mount:
    """``device`` (of filesystem ``fs``) mounted on ``target`` (a fresh temp dir if None)."""

    def __init__(
        self,
        device: str,
        fs: Filesystem,
        target: str | Path | None = None,
        *,
        readonly: bool = False,
    ) -> None:
        self.device = device
        self.fs = fs
        self.readonly = readonly
        self._own_dir = target is None
        self.path = Path(target) if target is not None else Path()
        self._mounted = False

    def mount(self) -> Path:
        """Mount and return the mount point."""
        if self._own_dir:
            self.path = Path(tempfile.mkdtemp(prefix="ogref-mnt-"))
        else:
            self.path.mkdir(parents=True, exist_ok=True)
        opts = ",".join(("ro" if self.readonly else "rw", *SAFE_OPTIONS))
        if self.fs is Filesystem.NTFS:
            argv = ["ntfs-3g", "-o", opts, self.device, str(self.path)]
        elif self.fs in (Filesystem.FAT16, Filesystem.FAT32):
            raise FilesystemError(f"{self.device}: FAT is accessed with mtools, not mounted")
        else:
            argv = ["mount", "-o", opts, self.device, str(self.path)]
        try:
            run(argv, error=FilesystemError, what=f"mount {self.device}")
        except FilesystemError:
            self._cleanup_dir()
            raise
        self._mounted = True
        return self.path

    def unmount(self) -> None:
        """Unmount (if mounted) and remove the temp dir this object made."""
        if self._mounted:
            unmount(self.path)
            self._mounted = False
        self._cleanup_dir()

    def _cleanup_dir(self) -> None:
        if self._own_dir and self.path != Path() and self.path.is_dir():
            self.path.rmdir()

    def __enter__(self) -> Path:
        return self.mount()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unmount()
