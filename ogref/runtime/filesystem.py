"""Filesystem tools on a partition device: detect, format, check, measure, reduce and extend.

Wraps blkid, mkfs.*, e2fsck/ntfsfix/fsck.fat, dumpe2fs/ntfsresize, resize2fs/ntfsresize, the way
OpenGnSys's ogFormat/ogCheckFs/ogReduceFs/ogExtendFs do.  Sizes are bytes.  It does not mount
(see :mod:`ogref.runtime.mount`) and does not image anything.
"""

from __future__ import annotations

import math
import os
import re

from ogref.errors import (
    DontFormatError,
    ExtendFsError,
    FilesystemError,
    PartitionError,
    ReduceFsError,
)
from ogref.model.storage import Filesystem
from ogref.runtime.proc import run
from ogref.units import MIB

_EXT = (Filesystem.EXT2, Filesystem.EXT3, Filesystem.EXT4)
_FAT = (Filesystem.FAT16, Filesystem.FAT32)


def probe(device: str) -> dict[str, str]:
    """``blkid -p`` of ``device`` as a dict (empty: no recognisable signature)."""
    done = run(["blkid", "-p", "-o", "export", device], error=FilesystemError, check=False)
    out: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key] = value
    return out


def detect(device: str) -> Filesystem:
    """The filesystem on ``device`` (EMPTY if none is recognised)."""
    info = probe(device)
    kind = info.get("TYPE", "")
    if kind == "vfat":
        return Filesystem.FAT16 if info.get("VERSION") in ("FAT16", "FAT12") else Filesystem.FAT32
    if kind == "swap":
        return Filesystem.SWAP
    if not kind:
        return Filesystem.EMPTY
    try:
        return Filesystem.parse(kind)
    except Exception:
        return Filesystem.EMPTY


def uuid(device: str) -> str:
    """The filesystem UUID of ``device`` ('' if none)."""
    return probe(device).get("UUID", "")


def device_size(device: str) -> int:
    """Size of a block device (or file) in bytes."""
    done = run(["blockdev", "--getsize64", device], error=PartitionError, check=False)
    if done.returncode == 0:
        return int(done.stdout.strip())
    return os.stat(device).st_size


def make(device: str, fs: Filesystem, label: str = "") -> None:
    """Format ``device`` with ``fs`` (fast: NTFS quick format, no zeroing)."""
    if fs in _EXT:
        argv = [f"mkfs.{fs.value.lower()}", "-q", "-F"] + (["-L", label] if label else [])
    elif fs is Filesystem.NTFS:
        argv = ["mkfs.ntfs", "-q", "-f", "-F"] + (["-L", label] if label else [])
    elif fs in _FAT:
        bits = "16" if fs is Filesystem.FAT16 else "32"
        argv = ["mkfs.vfat", "-F", bits] + (["-n", label] if label else [])
    elif fs is Filesystem.SWAP:
        argv = ["mkswap"] + (["-L", label] if label else [])
    else:
        raise DontFormatError(f"formatting {fs} is not supported")
    run([*argv, device], error=DontFormatError, what=f"format {device} as {fs}")


def check(device: str, fs: Filesystem, *, repair: bool = False) -> None:
    """Check (and with ``repair`` fix) the filesystem; PartitionError (3) if it is damaged."""
    if fs in _EXT:
        argv = ["e2fsck", "-f", "-y" if repair else "-n", device]
    elif fs is Filesystem.NTFS:
        argv = ["ntfsfix", device] if repair else ["ntfsfix", "-n", device]
    elif fs in _FAT:
        argv = ["fsck.fat", "-a" if repair else "-n", device]
    else:
        return
    done = run(argv, error=PartitionError, check=False)
    # e2fsck: 1 = errors corrected; fsck.fat: 1 = errors found (and fixed with -a)
    if done.returncode == 0 or (repair and done.returncode == 1):
        return
    raise PartitionError(
        f"filesystem check of {device} failed: {done.stdout[-400:]}{done.stderr[-400:]}"
    )


def _ext_fields(device: str) -> dict[str, int]:
    done = run(["dumpe2fs", "-h", device], error=FilesystemError, what=f"dumpe2fs {device}")
    out = {}
    for key in ("Block count", "Free blocks", "Block size"):
        m = re.search(rf"^{key}:\s+(\d+)", done.stdout, re.M)
        if not m:
            raise FilesystemError(f"dumpe2fs {device}: no {key!r}")
        out[key] = int(m.group(1))
    return out


def _ntfs_info(device: str) -> str:
    return run(
        ["ntfsresize", "--info", "--force", "--no-progress-bar", device],
        error=FilesystemError,
        what=f"ntfsresize --info {device}",
    ).stdout


def fs_size(device: str, fs: Filesystem) -> int:
    """Bytes the filesystem spans (may be less than the partition after a reduce)."""
    if fs in _EXT:
        f = _ext_fields(device)
        return f["Block count"] * f["Block size"]
    if fs is Filesystem.NTFS:
        m = re.search(r"Current volume size:\s+(\d+) bytes", _ntfs_info(device))
        if m:
            return int(m.group(1))
    return device_size(device)


def used_bytes(device: str, fs: Filesystem) -> int:
    """Bytes in use (OpenGnSys takes ``df`` used; FAT reports its whole size, conservatively)."""
    if fs in _EXT:
        f = _ext_fields(device)
        return (f["Block count"] - f["Free blocks"]) * f["Block size"]
    if fs is Filesystem.NTFS:
        text = _ntfs_info(device)
        m = re.search(r"Space in use\s*:\s+(\d+) MB", text)
        if m:
            return int(m.group(1)) * 1000 * 1000
    return device_size(device)


def reduce(device: str, fs: Filesystem) -> bool:
    """Shrink the filesystem to (about) its minimum, as ogReduceFs; False if ``fs`` is not shrunk."""
    if fs in _EXT:
        check(device, fs, repair=True)
        run(["resize2fs", "-f", "-M", device], error=ReduceFsError, what=f"reduce {device}")
        return True
    if fs is Filesystem.NTFS:
        m = re.search(r"You might resize at (\d+) bytes", _ntfs_info(device))
        if not m:
            return False  # already minimal or nothing to free
        target = math.ceil(int(m.group(1)) * 1.1 / MIB) * MIB
        if target >= fs_size(device, fs):
            return False
        run(
            ["ntfsresize", "--force", "--no-progress-bar", "-s", str(target), device],
            error=ReduceFsError,
            what=f"reduce {device}",
            input_text="y\n",
        )
        return True
    return False


def extend(device: str, fs: Filesystem) -> None:
    """Grow the filesystem to fill its partition (ogExtendFs); a no-op for other filesystems."""
    if fs in _EXT:
        run(["resize2fs", "-f", device], error=ExtendFsError, what=f"extend {device}")
    elif fs is Filesystem.NTFS:
        if fs_size(device, fs) + MIB >= device_size(device):
            return
        run(
            ["ntfsresize", "--force", "--no-progress-bar", device],
            error=ExtendFsError,
            what=f"extend {device}",
            input_text="y\n",
        )
