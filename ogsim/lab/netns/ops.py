"""What the netns backend needs around createImage, clone and boot — never the agents' work.

``prepare_reference`` fills a reference computer's partition (the source of a create, the MASTER
of a clone) before the agents start, as an administrator installs a reference PC: a minimal
Linux tree (``/etc/hostname``, ``/etc/fstab`` with ``/`` on the partition's UUID,
``/etc/os-release``, ``/boot``) plus synthetic data files of the scaled size.  Nothing in it
runs; the boot the lab emulates only reads what configureOs later rewrote.  NTFS partitions get
the data files only (no Windows hive: booting them is reported not possible).

``partition_tree`` hashes a computer's partition (read-only mount) to know what a create or a
clone must reproduce, and ``refresh_tracker`` rewrites opentracker's whitelist and makes it
reload it (SIGHUP) when an image was created.  It decides nothing and drives no agent.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import tempfile
from pathlib import Path

from ogref.model import Filesystem
from ogref.repo.tracker import write_whitelist
from ogref.runtime import filesystem
from ogref.runtime.imagefile import ImageStore
from ogsim.lab.manifest import Manifest
from ogsim.lab.netns.images import fill
from ogsim.lab.netns.tree import hash_partition

OS_RELEASE = 'PRETTY_NAME="ogLab reference Linux"\nID=oglab\n'


def prepare_reference(
    manifest: Manifest, node: str, fs: Filesystem, data: int, seed: int, work: Path
) -> tuple[str, int]:
    """Fill ``node`` (already formatted ``fs``) as a reference system; its tree hash and files."""
    mnt = Path(tempfile.mkdtemp(prefix="ref-", dir=work))
    manifest.record("mount", str(mnt))
    argv = ["ntfs-3g", node, str(mnt)] if fs is Filesystem.NTFS else ["mount", node, str(mnt)]
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    try:
        if fs.family == "linux":
            etc = mnt / "etc"
            etc.mkdir(exist_ok=True)
            (etc / "hostname").write_text("reference\n")
            (etc / "fstab").write_text(
                f"# ogLab reference system\nUUID={filesystem.uuid(node)} / {fs.value.lower()} "
                "defaults 0 1\n"
            )
            (etc / "os-release").write_text(OS_RELEASE)
            (mnt / "boot").mkdir(exist_ok=True)
            (mnt / "boot" / "README").write_text("no kernel: the netns lab emulates booting\n")
        fill(mnt, data, 0.5, random.Random(seed))
        os.sync()
    finally:
        subprocess.run(["umount", str(mnt)], check=True, capture_output=True, timeout=120)
        mnt.rmdir()
    return hash_partition(manifest, node, fs, work)


def partition_tree(manifest: Manifest, node: str, work: Path) -> tuple[str, int, Filesystem]:
    """The file-tree hash of the partition ``node`` (mounted read-only), its files and fs."""
    fs = filesystem.detect(node)
    tree, files = hash_partition(manifest, node, fs, work)
    return tree, files, fs


def refresh_tracker(store: ImageStore, whitelist: Path, tracker_pid: int) -> list[str]:
    """Rewrite opentracker's whitelist from the repository's torrents and make it reload."""
    hashes = write_whitelist(store, whitelist)
    whitelist.chmod(0o644)
    os.kill(tracker_pid, signal.SIGHUP)
    return hashes
