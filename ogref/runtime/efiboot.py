"""UEFI boot of a restored system: the EFI system partition (ESP), the boot loader on it, and the
firmware's boot entries — what ``ogIsEfiActive``/``ogNvramAddEntry``/``ogNvramSetNext``/
``ogNvramSetOrder`` do in OpenGnSys, with Debian's tools.

* :func:`active`: the live client was booted by UEFI (``/sys/firmware/efi``); :func:`secure_boot`:
  the firmware's ``SecureBoot`` variable is 1.
* :func:`find_esp`: the partition of a disk whose GPT type (or MBR id 0xef) is the ESP's.
* :func:`install_grub`: ``grub-install --target=x86_64-efi`` with the ESP as ``--efi-directory``
  and the restored tree's ``/boot``; ``signed`` (default) is Debian's ``--uefi-secure-boot``:
  shim (Microsoft-signed) and Debian's signed GRUB in ``\\EFI\\<id>``, as a Debian installation
  has them; unsigned is GRUB's own image (what a custom build leaves: Secure Boot refuses it).
  ``--no-nvram``: the entry is made here, by :func:`add_entry`.
* Boot entries via ``efibootmgr``: :func:`add_entry` (an entry per computer name, replacing an
  older one of the same label), :func:`boot_once` (``BootNext``: the next boot only, then the
  firmware's ``BootOrder`` again — the console's "boot once"), :func:`boot_target` (the entry
  first in ``BootOrder`` — the console's "boot target", every boot), :func:`network_first`
  (the network entries first: the classroom's normal state, the live client boots).
* :func:`esp_loader`: which boot loader an (unmounted) ESP holds, read with mtools — Debian's
  shim or GRUB, Windows' boot manager, or the removable-media fallback ``\\EFI\\BOOT\\BOOTX64.EFI``
  — for the boot entry after a whole-disk restore (:mod:`ogref.runtime.diskimage`).

It decides nothing; the caller (configureOs, the agent's boot) does.  Parsing of efibootmgr's
output is in :func:`parse_efibootmgr` (pure, unit-tested).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ogref.errors import NotExecError, NotUefiError
from ogref.runtime import disk, filesystem
from ogref.runtime.loopdev import partition_path
from ogref.runtime.proc import available, run

EFI = Path("/sys/firmware/efi")
ESP_GPT_TYPE = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
ESP_MBR_TYPE = "0xef"
SECURE_BOOT_VAR = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
BOOTLOADER_ID = "debian"
# what a restored ESP may boot, in the order a firmware entry is made for it
ESP_LOADERS = (
    "EFI/debian/shimx64.efi",
    "EFI/debian/grubx64.efi",
    "EFI/Microsoft/Boot/bootmgfw.efi",
    "EFI/BOOT/BOOTX64.EFI",
)


@dataclass
class BootEntries:
    """``efibootmgr`` state: current, next, order and entries (number → label, path text)."""

    current: str = ""
    next: str = ""
    order: list[str] = field(default_factory=list)
    entries: dict[str, tuple[str, str]] = field(default_factory=dict)

    def numbers(self, pattern: str) -> list[str]:
        """Entries whose label or device path matches ``pattern`` (a regex), in BootOrder order
        first, then the rest."""
        rx = re.compile(pattern)
        hits = [n for n, (label, path) in self.entries.items() if rx.search(label + " " + path)]
        return [n for n in self.order if n in hits] + [n for n in hits if n not in self.order]


_ENTRY = re.compile(r"^Boot([0-9A-Fa-f]{4})(\*?)\s+(.*?)(?:\t(.*))?$")


def parse_efibootmgr(text: str) -> BootEntries:
    """Parse ``efibootmgr`` (``-v`` or not) output."""
    out = BootEntries()
    for line in text.splitlines():
        if line.startswith("BootCurrent:"):
            out.current = line.split(":", 1)[1].strip().upper()
        elif line.startswith("BootNext:"):
            out.next = line.split(":", 1)[1].strip().upper()
        elif line.startswith("BootOrder:"):
            out.order = [x.upper() for x in line.split(":", 1)[1].strip().split(",") if x]
        elif m := _ENTRY.match(line):
            out.entries[m.group(1).upper()] = (m.group(3).strip(), (m.group(4) or "").strip())
    return out


def active() -> bool:
    """The live client runs on UEFI firmware (OpenGnSys: ``ogIsEfiActive``)."""
    return EFI.is_dir()


def secure_boot(efivars: Path = EFI / "efivars") -> bool:
    """The firmware enforces Secure Boot (its ``SecureBoot`` variable is 1)."""
    try:
        data = (efivars / SECURE_BOOT_VAR).read_bytes()
    except OSError:
        return False
    return len(data) >= 5 and data[4] == 1  # 4 attribute bytes, then the value


def find_esp(device: str) -> int:
    """The number of ``device``'s EFI system partition; NotUefiError (80) if it has none."""
    for number, *_ in disk.partition_entries(device):
        info = filesystem.probe(partition_path(device, number))
        kind = info.get("PART_ENTRY_TYPE", "").lower()
        if kind in (ESP_GPT_TYPE, ESP_MBR_TYPE):
            return number
    raise NotUefiError(f"{device} has no EFI system partition")


@contextmanager
def mounted_esp(node: str) -> Iterator[Path]:
    """The ESP ``node`` mounted (vfat, nosuid/nodev/noexec) on a fresh directory."""
    where = Path(tempfile.mkdtemp(prefix="ogref-esp-"))
    run(
        ["mount", "-t", "vfat", "-o", "rw,nosuid,nodev,noexec", node, str(where)],
        error=NotExecError,
        what=f"mount the ESP {node}",
    )
    try:
        yield where
    finally:
        run(["umount", str(where)], error=NotExecError, what="umount the ESP", check=False)
        where.rmdir()


def _efibootmgr(*args: str) -> BootEntries:
    if not available("efibootmgr"):
        raise NotExecError("efibootmgr is missing")
    done = run(["efibootmgr", "-v", *args], error=NotExecError, what="efibootmgr")
    return parse_efibootmgr(done.stdout)


def entries() -> BootEntries:
    """The firmware's boot entries now."""
    return _efibootmgr()


def install_grub(esp_mount: Path, boot_dir: Path, device: str, *, signed: bool = True) -> str:
    """GRUB for x86_64-efi on the ESP mounted at ``esp_mount``, modules in ``boot_dir/grub``;
    returns the loader's path on the ESP in firmware notation (``\\EFI\\debian\\shimx64.efi``)."""
    if not available("grub-install") or not Path("/usr/lib/grub/x86_64-efi").is_dir():
        raise NotExecError("grub-install for x86_64-efi is missing")
    run(
        [
            "grub-install",
            "--target=x86_64-efi",
            f"--efi-directory={esp_mount}",
            f"--boot-directory={boot_dir}",
            f"--bootloader-id={BOOTLOADER_ID}",
            "--uefi-secure-boot" if signed else "--no-uefi-secure-boot",
            "--no-nvram",
            "--force",
            device,
        ],
        error=NotExecError,
        what="grub-install (x86_64-efi)",
    )
    loader = "shimx64.efi" if signed else "grubx64.efi"
    if not (esp_mount / "EFI" / BOOTLOADER_ID / loader).is_file():
        raise NotExecError(f"grub-install left no {loader} on the ESP")
    return f"\\EFI\\{BOOTLOADER_ID}\\{loader}"


def esp_loader(node: str) -> str:
    """The boot loader on the ESP ``node`` (not mounted; mtools, FAT names match in any case)
    in firmware notation, the first of :data:`ESP_LOADERS` found; '' when it holds none."""
    if not available("mdir"):
        raise NotExecError("mtools (mdir) is missing")
    for rel in ESP_LOADERS:
        done = run(["mdir", "-b", "-i", node, f"::/{rel}"], error=NotExecError, check=False)
        if done.returncode == 0 and done.stdout.strip():
            return "\\" + rel.replace("/", "\\")
    return ""


def label_for(hostname: str) -> str:
    return f"ogLab {hostname}"


def add_entry(device: str, esp: int, loader: str, label: str) -> tuple[str, BootEntries]:
    """A boot entry ``label`` for ``loader`` on partition ``esp`` of ``device`` (older entries
    with that label are removed first); returns its number and the firmware's entries after it,
    with the network entries first in BootOrder."""
    for number in entries().numbers(rf"^{re.escape(label)}\b"):
        _efibootmgr("-b", number, "-B")
    after = _efibootmgr("-c", "-d", device, "-p", str(esp), "-L", label, "-l", loader)
    made = after.numbers(rf"^{re.escape(label)}\b")
    if not made:
        raise NotExecError(f"efibootmgr made no entry {label!r}")
    return made[0], network_first()


def network_first() -> BootEntries:
    """BootOrder with the network (PXE) entries first, the rest in their order."""
    now = entries()
    net = set(now.numbers(r"PXE|MAC\(|HTTP|IPv4|IPv6"))
    order = [n for n in now.order if n in net] + [n for n in now.order if n not in net]
    order += [n for n in now.entries if n not in order]
    return _efibootmgr("-o", ",".join(order)) if order != now.order else now


def boot_once(number: str) -> BootEntries:
    """``BootNext`` = ``number``: the next boot only (the console's "boot once")."""
    network_first()
    return _efibootmgr("-n", number)


def boot_target(number: str) -> BootEntries:
    """``number`` first in ``BootOrder``, BootNext cleared (the console's "boot target")."""
    now = entries()
    if now.next:
        _efibootmgr("-N")
    order = [number] + [n for n in now.order if n != number]
    return _efibootmgr("-o", ",".join(order))
