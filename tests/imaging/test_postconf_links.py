"""configureOs on hostile restored filesystems: nothing outside the mount is written or removed.

Each image is crafted on a loop disk: links (absolute, ``../`` chains, ``/etc`` itself) point at
sentinel files outside the mount, ``/etc/hostname`` is a FIFO (opening it for writing would block
forever), ``/etc/fstab`` a block-device node of another loop disk (a host disk, in real life).
configureOs must leave every sentinel as it was and say, in a note, what it refused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest

from ogref.model.storage import Filesystem, TableKind
from ogref.runtime import filesystem, postconf
from ogref.runtime.disk import PartSpec
from ogref.runtime.loopdev import LoopDisk
from ogref.runtime.mount import SAFE_OPTIONS, Mount
from ogref.units import MIB

from .conftest import MakeDisk, need

pytestmark = [pytest.mark.root, pytest.mark.imaging, pytest.mark.timeout(60)]

UP = "../" * 12  # more '..' than any mount point is deep: from the mount, '/'
SENTINEL = b"sentinel: must not change\n"


def _sentinels(base: Path, *names: str) -> dict[Path, bytes]:
    made = {}
    for name in names:
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(SENTINEL + name.encode())
        made[path] = path.read_bytes()
    return made


def _unchanged(sentinels: dict[Path, bytes]) -> None:
    for path, data in sentinels.items():
        assert path.is_file() and not path.is_symlink(), f"{path} was removed or replaced"
        assert path.read_bytes() == data, f"{path} was written"


def _linux_disk(make_disk: MakeDisk) -> tuple[str, str]:
    loop = make_disk(96 * MIB, TableKind.MSDOS, [PartSpec(64 * MIB, Filesystem.EXT4)])
    node = loop.partition(1)
    filesystem.make(node, Filesystem.EXT4, "linux")
    return loop.device, node


def test_links_out_of_the_restored_filesystem_are_refused_with_notes(
    make_disk: MakeDisk, tmp_path: Path
) -> None:
    outside = tmp_path / "host"
    sentinels = _sentinels(
        outside,
        "hostname",
        "fstab",
        "fstab.backup",
        "initramfs-tools/conf.d/resume",
        "70-persistent-net.rules",
        "grub/grubenv",
    )
    device, node = _linux_disk(make_disk)
    with Mount(node, Filesystem.EXT4) as root:
        (root / "etc/udev/rules.d").mkdir(parents=True)
        (root / "boot").mkdir()
        (root / "etc/hostname").symlink_to(outside / "hostname")  # absolute
        (root / "etc/fstab").symlink_to(f"{UP}{outside}/fstab".replace("//", "/"))  # ../../
        (root / "etc/fstab.ogref-backup").symlink_to(outside / "fstab.backup")
        (root / "etc/initramfs-tools").symlink_to(outside / "initramfs-tools")  # a directory
        (root / "etc/udev/rules.d/70-persistent-net.rules").symlink_to(
            outside / "70-persistent-net.rules"
        )
        (root / "boot/grub").symlink_to(outside / "grub")
    grub = os.path.isdir("/usr/lib/grub/i386-pc") and shutil.which("grub-install") is not None
    report = postconf.configure_os(device, 1, "pc07", grub=grub)
    _unchanged(sentinels)
    assert sorted(p.name for p in (outside / "grub").iterdir()) == ["grubenv"]
    notes = "\n".join(report.notes)
    assert "/etc/hostname: refused to follow a link" in notes, notes
    assert "/etc/fstab: refused to follow a link" in notes, notes
    assert "/etc/initramfs-tools/conf.d/resume: refused to follow a link" in notes, notes
    assert "removed /etc/udev/rules.d/70-persistent-net.rules" in notes  # the link itself
    if grub:
        assert "GRUB not installed: /boot or /boot/grub is a link" in notes, notes
    with Mount(node, Filesystem.EXT4, readonly=True) as root:
        assert (root / "etc/hostname").is_symlink()  # left as it was
        assert not (root / "etc/udev/rules.d/70-persistent-net.rules").is_symlink()


def test_etc_linked_out_of_the_filesystem_is_refused(make_disk: MakeDisk, tmp_path: Path) -> None:
    outside = tmp_path / "host-etc"
    sentinels = _sentinels(outside, "hostname", "fstab", "initramfs-tools/conf.d/resume")
    device, node = _linux_disk(make_disk)
    with Mount(node, Filesystem.EXT4) as root:
        (root / "etc").symlink_to(outside)
    report = postconf.configure_os(device, 1, "pc07", grub=False)
    _unchanged(sentinels)
    assert any(n.startswith("/etc: refused to follow a link") for n in report.notes), report.notes
    assert not any("hostname =" in n for n in report.notes)


def test_fifo_and_device_node_are_refused_without_blocking(
    make_disk: MakeDisk, tmp_path: Path
) -> None:
    with LoopDisk(tmp_path / "hostdisk.img", 1 * MIB) as host_disk:
        with open(host_disk.device, "r+b") as f:
            f.write(SENTINEL)
        dev = os.stat(host_disk.device).st_rdev
        device, node = _linux_disk(make_disk)
        with Mount(node, Filesystem.EXT4) as root:
            (root / "etc").mkdir()
            os.mkfifo(root / "etc/hostname")
            os.mknod(root / "etc/fstab", stat.S_IFBLK | 0o600, dev)
        report = postconf.configure_os(device, 1, "pc07", grub=False)
        with open(host_disk.device, "rb") as f:
            assert f.read(len(SENTINEL)) == SENTINEL
            assert (
                hashlib.sha256(f.read()).digest()
                == hashlib.sha256(bytes(MIB - len(SENTINEL))).digest()
            )
    notes = "\n".join(report.notes)
    assert "/etc/hostname: refused: not a regular file" in notes, notes
    assert "/etc/fstab: refused: not a regular file" in notes, notes


def test_restored_filesystems_are_mounted_nosuid_nodev_noexec(make_disk: MakeDisk) -> None:
    need("mkfs.ntfs", "ntfs-3g")
    loop = make_disk(
        192 * MIB,
        TableKind.MSDOS,
        [PartSpec(64 * MIB, Filesystem.EXT4), PartSpec(96 * MIB, Filesystem.NTFS)],
    )
    filesystem.make(loop.partition(1), Filesystem.EXT4, "linux")
    filesystem.make(loop.partition(2), Filesystem.NTFS, "windows")
    for number, fs in ((1, Filesystem.EXT4), (2, Filesystem.NTFS)):
        with Mount(loop.partition(number), fs) as root:
            with open("/proc/self/mounts", encoding="utf-8") as f:
                opts = next(line.split()[3] for line in f if line.split()[1] == str(root))
            assert set(SAFE_OPTIONS) <= set(opts.split(",")), (fs, opts)


def test_windows_hive_behind_a_link_is_refused(make_disk: MakeDisk, tmp_path: Path) -> None:
    need("mkfs.ntfs", "ntfs-3g", "ntfsresize", "hivexregedit", "hivexget")
    from .test_postconf_windows import _hive

    outside = tmp_path / "host-windows"
    (outside / "System32/config").mkdir(parents=True)
    _hive(outside / "System32/config/SYSTEM")
    before = (outside / "System32/config/SYSTEM").read_bytes()
    loop = make_disk(160 * MIB, TableKind.MSDOS, [PartSpec(96 * MIB, Filesystem.NTFS)])
    filesystem.make(loop.partition(1), Filesystem.NTFS, "windows")
    with Mount(loop.partition(1), Filesystem.NTFS) as root:
        (root / "Windows").symlink_to(outside)
    report = postconf.configure_os(loop.device, 1, "pc07", grub=False)
    assert (outside / "System32/config/SYSTEM").read_bytes() == before
    notes = "\n".join(report.notes)
    assert "refused to follow a link" in notes and "computer name not set" in notes, notes
