"""File-tree hashes of a filesystem, to prove a restored partition holds the source's files.

The hash covers every regular file's path, size and SHA-256 and every directory and symlink,
in sorted order; the files configureOs rewrites on purpose (hostname, fstab, the cleaned udev and
resume files, the boot loader; Windows's SYSTEM hive, which holds the computer name) are left out, and so is ``lost+found``.  The partition is mounted
read-only (ext*: kernel; NTFS: ntfs-3g) on a temporary directory and always unmounted.  The
mount is recorded in the manifest while it exists.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import time
from pathlib import Path

from ogref.model import Filesystem
from ogsim.lab.manifest import Manifest

POSTCONF_PATHS = frozenset(
    {
        "etc/hostname",
        "etc/fstab",
        "etc/fstab.ogref-backup",  # configureOs keeps the original fstab there
        "etc/udev/rules.d/70-persistent-net.rules",
        "etc/initramfs-tools/conf.d/resume",
        "Windows/System32/config/SYSTEM",  # the computer name
    }
)
SKIP_DIRS = frozenset({"lost+found", "boot/grub", "System Volume Information"})


def hash_dir(root: Path) -> tuple[str, int]:
    """The tree hash of ``root`` and how many files it covered."""
    h = hashlib.sha256()
    files = 0
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir
        dirnames[:] = sorted(
            d for d in dirnames if os.path.join(rel_dir, d).lstrip("/") not in SKIP_DIRS
        )
        h.update(f"D {rel_dir}\n".encode())
        for name in sorted(filenames):
            rel = os.path.join(rel_dir, name)
            if rel in POSTCONF_PATHS:
                continue
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                h.update(f"L {rel} {os.readlink(full)}\n".encode())
                continue
            with open(full, "rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
            h.update(f"F {rel} {os.path.getsize(full)} {digest}\n".encode())
            files += 1
    return h.hexdigest(), files


def hash_partition(manifest: Manifest, node: str, fs: Filesystem, work: Path) -> tuple[str, int]:
    """Mount ``node`` read-only, hash its tree, unmount."""
    mnt = Path(tempfile.mkdtemp(prefix="tree-", dir=work))
    manifest.record("mount", str(mnt))
    if fs is Filesystem.NTFS:
        argv = ["ntfs-3g", "-o", "ro", node, str(mnt)]
    else:
        argv = ["mount", "-o", "ro", node, str(mnt)]
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    try:
        return hash_dir(mnt)
    finally:
        _unmount(mnt)
        mnt.rmdir()


def _unmount(mnt: Path, attempts: int = 50) -> None:
    """Unmount ``mnt``, again while it is busy: a program another thread of the lab starts at
    that moment holds a copy of this thread's open directories until it has exec'd (the
    parallel verification of restored partitions hit it: EBUSY once in a few hundred)."""
    for _ in range(attempts):
        done = subprocess.run(["umount", str(mnt)], capture_output=True, timeout=60, check=False)
        if done.returncode == 0 or not os.path.ismount(mnt):
            return
        time.sleep(0.1)
