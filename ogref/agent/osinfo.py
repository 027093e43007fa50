"""What configureOs left on a partition, read as a booting firmware would find it (Linux:
``/etc/hostname`` and the fstab root; Windows: the computer name in the SYSTEM hive) — the
emulated boot of the namespace lab.  It starts nothing."""

import re
import subprocess
from typing import Any

from ogref.errors import (
    NotOsError,
)
from ogref.model import (
    ClientStatus,
    Filesystem,
)
from ogref.runtime import filesystem, postconf, winboot
from ogref.runtime.mount import Mount

Json = dict[str, Any]


def read_os(node: str, disk_device: str = "") -> tuple[ClientStatus, str, str, str]:
    """What configureOs left on ``node``, if it boots: (status, hostname, root, OS name).

    Linux: ``/etc/hostname``, ``/etc/fstab``'s ``/`` on this partition's UUID when there is an
    fstab; Windows: the computer name in the SYSTEM hive and, given the disk, that the boot
    sector's hidden sectors, the BCD's ``{default}`` partition and ``\\DosDevices\\C:`` name
    where the partition is (:func:`ogref.runtime.winboot.boot_mismatches`).  NotOsError (6)
    when it would not boot.
    """
    fs = filesystem.detect(node)
    if fs is Filesystem.NTFS:
        with Mount(node, fs, readonly=True) as root:
            hive = next(
                (p for p in (root / "Windows/System32/config/SYSTEM",) if p.is_file()),
                None,
            )
            if hive is None:
                raise NotOsError(f"{node}: no Windows SYSTEM hive, nothing to boot")
            cs = postconf.current_control_set(hive)
            got = subprocess.run(
                [
                    "hivexget",
                    str(hive),
                    f"\\{cs}\\Control\\ComputerName\\ComputerName",
                    "ComputerName",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            name = got.stdout.strip()
            if not name:
                raise NotOsError(f"{node}: no computer name in the SYSTEM hive ({cs})")
            if disk_device:
                bcd = root / "Boot" / "BCD"
                usable = bcd.is_file() and not bcd.is_symlink() and not (root / "Boot").is_symlink()
                problems = winboot.boot_mismatches(
                    winboot.locate(disk_device, node), node, hive, bcd if usable else None
                )
                if problems:
                    raise NotOsError(f"{node}: Windows would not boot: {'; '.join(problems)}")
            return ClientStatus.WIN, name, cs, "Windows"
    if fs.family != "linux":
        raise NotOsError(f"{node} holds {fs}: no operating system to boot")
    uuid = filesystem.uuid(node)
    with Mount(node, fs, readonly=True) as root:
        host = root / "etc/hostname"
        if not host.is_file():
            raise NotOsError(f"{node}: no /etc/hostname (configureOs did not run): not bootable")
        hostname = host.read_text(encoding="utf-8", errors="replace").strip()
        root_line = ""
        fstab = root / "etc/fstab"
        if fstab.is_file():
            for line in fstab.read_text(encoding="utf-8", errors="replace").splitlines():
                fields = line.split()
                if len(fields) >= 2 and fields[1] == "/" and not line.startswith("#"):
                    root_line = fields[0]
            if root_line and root_line != f"UUID={uuid}":
                raise NotOsError(f"{node}: /etc/fstab mounts / from {root_line}, not UUID={uuid}")
        name = "Linux"
        release = root / "etc/os-release"
        if release.is_file():
            m = re.search(r'^PRETTY_NAME="?([^"\n]*)', release.read_text(errors="replace"), re.M)
            name = m.group(1) if m else name
    return ClientStatus.LNX, hostname, root_line, name
