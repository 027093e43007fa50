"""A reproducible ``newc`` cpio writer for initramfs images (stdlib only).

Files are written in sorted path order with fixed owner (root), fixed mtime and sequential inode
numbers, so the same tree gives the same bytes.  Regular files, directories and symlinks only;
device nodes are left to the kernel's devtmpfs.  It compresses nothing itself.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

_TRAILER = "TRAILER!!!"


def _header(ino: int, mode: int, nlink: int, mtime: int, size: int, name: bytes) -> bytes:
    fields = (ino, mode, 0, 0, nlink, mtime, size, 0, 0, 0, 0, len(name) + 1, 0)
    return b"070701" + b"".join(b"%08X" % f for f in fields)


def _pad(out: BinaryIO, n: int) -> None:
    if n % 4:
        out.write(b"\0" * (4 - n % 4))


def _entry(out: BinaryIO, ino: int, mode: int, mtime: int, name: str, data: bytes) -> None:
    raw = name.encode()
    nlink = 2 if stat.S_ISDIR(mode) else 1
    head = _header(ino, mode, nlink, mtime, len(data), raw) + raw + b"\0"
    out.write(head)
    _pad(out, len(head))
    out.write(data)
    _pad(out, len(data))


def write_tree(root: Path, out: BinaryIO, mtime: int = 0) -> int:
    """Write every entry under ``root`` (paths relative to it) as newc; return the entry count."""
    paths: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for n in dirnames + filenames:
            paths.append(n if rel == "." else f"{rel}/{n}")
    paths.sort()
    ino = 1
    for rel in paths:
        full = root / rel
        st = full.lstat()
        perm = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            _entry(out, ino, stat.S_IFLNK | 0o777, mtime, rel, os.readlink(full).encode())
        elif stat.S_ISDIR(st.st_mode):
            _entry(out, ino, stat.S_IFDIR | perm, mtime, rel, b"")
        elif stat.S_ISREG(st.st_mode):
            _entry(out, ino, stat.S_IFREG | perm, mtime, rel, full.read_bytes())
        else:
            continue
        ino += 1
    _entry(out, 0, 0, 0, _TRAILER, b"")
    return ino - 1
