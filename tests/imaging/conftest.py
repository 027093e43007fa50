"""Fixtures for imaging tests: loop disks that are always detached, trees and their hashes.

Every loop device a test attaches is recorded and, in teardown, its partitions are unmounted
and the device detached — whatever the test did.  Tests skip with the reason when not root or
when a tool is missing.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ogref.model.storage import Filesystem, TableKind
from ogref.runtime import disk, filesystem
from ogref.runtime.loopdev import LoopDisk, partition_path
from ogref.runtime.mount import Mount, unmount_device
from ogref.units import MIB

IMAGING_TOOLS = ("losetup", "partclone.extfs", "partclone.restore", "zstd", "lzop", "mkfs.ext4")


def need(*tools: str) -> None:
    """Skip the test, naming what is missing."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing tools: {', '.join(missing)} (run tools/install-deps.sh)")


@pytest.fixture(autouse=True)
def _imaging_prereqs() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: loop devices and mounts")
    need(*IMAGING_TOOLS)
    pytest.importorskip("parted", reason="pyparted missing: pip install -e '.[lab]'")


MakeDisk = Callable[..., LoopDisk]


@pytest.fixture
def make_disk(tmp_path: Path) -> Iterator[MakeDisk]:
    """Factory: ``make_disk(size, table, [PartSpec…])`` → an attached, partitioned LoopDisk."""
    made: list[LoopDisk] = []

    def factory(
        size: int, table: TableKind = TableKind.MSDOS, specs: list[disk.PartSpec] | None = None
    ) -> LoopDisk:
        loop = LoopDisk(tmp_path / f"disk{len(made)}.img", size)
        loop.attach()
        made.append(loop)
        if specs:
            disk.write_table(loop.device, table, specs)
        return loop

    try:
        yield factory
    finally:
        for loop in made:
            for n in range(1, 9):
                node = partition_path(loop.device, n) if loop.device else ""
                if node and os.path.exists(node):
                    unmount_device(node)
            loop.detach()


@pytest.fixture
def lock_dir(tmp_path: Path) -> Path:
    return tmp_path / "locks"


def populate(root: Path, seed: int = 1, random_mib: int = 4) -> None:
    """Varied content: text, random binary, empty file, nested dirs, a symlink (not on FAT)."""
    rng = random.Random(seed)
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/fstab").write_text(
        "/dev/sda1\t/\text4\tdefaults\t0\t1\n/dev/sda5\tnone\tswap\tsw\t0\t0\n"
    )
    (root / "docs/deep/er").mkdir(parents=True, exist_ok=True)
    for i in range(40):
        words = " ".join(rng.choice(["alpha", "beta", "gamma", "delta"]) for _ in range(400))
        (root / f"docs/deep/er/t{i}.txt").write_text(words)
    (root / "bin.dat").write_bytes(rng.randbytes(random_mib * MIB))
    (root / "empty").write_bytes(b"")
    (root / "link").symlink_to("docs/deep")


def tree_hash(root: Path, exclude: tuple[str, ...] = ()) -> str:
    """SHA-256 over relative paths, file contents and symlink targets (sorted)."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if rel.startswith(("lost+found", *exclude)):
            continue
        h.update(rel.encode())
        if path.is_symlink():
            h.update(b"L" + os.readlink(path).encode())
        elif path.is_file():
            h.update(b"F" + hashlib.sha256(path.read_bytes()).digest())
        else:
            h.update(b"D")
    return h.hexdigest()


def fill_partition(node: str, fs: Filesystem, seed: int = 1, random_mib: int = 4) -> str:
    """Format ``node`` with ``fs``, fill it, return the tree hash."""
    filesystem.make(node, fs, "data")
    with Mount(node, fs) as root:
        populate(root, seed, random_mib)
        return tree_hash(root)


def hash_partition(node: str, fs: Filesystem, exclude: tuple[str, ...] = ()) -> str:
    with Mount(node, fs, readonly=True) as root:
        return tree_hash(root, exclude)


def fat_fill(node: str, work: Path, seed: int = 1) -> str:
    """Build a FAT32 in a file with mtools, copy it onto ``node``; return the tree hash."""
    size = filesystem.device_size(node)
    img = work / "fat.img"
    with open(img, "wb") as f:
        f.truncate(size)
    subprocess.run(
        ["mkfs.vfat", "-F", "32", "-n", "EFI", str(img)], check=True, capture_output=True
    )
    src = work / "fatsrc"
    src.mkdir()
    rng = random.Random(seed)
    (src / "EFI/BOOT").mkdir(parents=True)
    (src / "EFI/BOOT/bootx64.efi").write_bytes(rng.randbytes(2 * MIB))
    (src / "readme.txt").write_text("fat " * 5000)
    subprocess.run(
        ["mcopy", "-s", "-i", str(img), str(src / "EFI"), str(src / "readme.txt"), "::/"],
        check=True,
        capture_output=True,
    )
    with open(img, "rb") as fin, open(node, "r+b") as fout:
        shutil.copyfileobj(fin, fout, 4 * MIB)
    img.unlink()
    return tree_hash(src)


def fat_hash(node: str, work: Path) -> str:
    """Copy the partition to a file and read it back with mtools (no vfat in this kernel)."""
    img = work / "fatread.img"
    with open(node, "rb") as fin, open(img, "wb") as fout:
        shutil.copyfileobj(fin, fout, 4 * MIB)
    out = work / "fatout"
    out.mkdir()
    subprocess.run(
        ["mcopy", "-s", "-n", "-i", str(img), "::/EFI", "::/readme.txt", str(out)],
        check=True,
        capture_output=True,
    )
    img.unlink()
    return tree_hash(out)
