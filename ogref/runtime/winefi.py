"""Windows on UEFI: the restored Windows' boot manager put on the EFI system partition, as
``bcdboot`` copies it, and the ESP's BCD store pointed at the restored partition.

configureOs calls this for a Windows partition when the live client booted by UEFI: the files
the restored Windows carries in ``Windows/Boot/EFI`` (``bootmgfw.efi``, ``bootmgr.efi``,
``memtest.efi``, the language folders) go to ``\\EFI\\Microsoft\\Boot`` on the disk's ESP,
``Windows/Boot/Fonts`` to ``\\EFI\\Microsoft\\Boot\\Fonts``, and ``bootmgfw.efi`` also to the
removable-media path ``\\EFI\\Boot\\bootx64.efi`` — with mtools on the unmounted FAT (the lab's
kernel has no vfat; the live client's has, and mtools works there the same).  The source tree is
the restored, untrusted partition: a link anywhere under those folders refuses the copy.

The BCD store.  ``\\EFI\\Microsoft\\Boot\\BCD`` on the ESP, when there is one (an ESP restored
with the disk, or left there by an earlier installation), is copied out, its device elements
that named the old Windows partition are pointed at the restored one
(:func:`ogref.runtime.winboot.fix_bcd`, the same rewrite as the BIOS store's), and it is copied
back.  When the ESP has none, it is **not** created: a BCD store is built from Windows'
``BCD-Template`` by ``bcdboot`` (Windows, WinPE), which does not run here — the note says so and
that ``bcdboot C:\\Windows /f UEFI`` has to be run once (docs/deviations.md).  Not here: the
firmware boot entry (configureOs, :mod:`ogref.runtime.efiboot`), the BIOS boot data
(:mod:`ogref.runtime.winboot`).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from ogref.errors import NotExecError, NotWriteError
from ogref.runtime import winboot
from ogref.runtime.proc import available, run

BOOT_DIR = "EFI/Microsoft/Boot"
LOADER = "\\EFI\\Microsoft\\Boot\\bootmgfw.efi"
FALLBACK = "EFI/Boot/bootx64.efi"


def _m(tool: str, node: str, *args: str) -> int:
    return run([tool, "-i", node, *args], error=NotExecError, check=False).returncode


def _mkdirs(node: str, rel: str) -> None:
    parts = rel.split("/")
    for i in range(1, len(parts) + 1):
        _m("mmd", node, "-D", "s", "::/" + "/".join(parts[:i]))  # there already: fine


def _copy(node: str, sources: list[Path], dest: str) -> None:
    if sources and _m("mcopy", node, "-s", "-o", "-Q", *map(str, sources), dest) != 0:
        raise NotWriteError(f"mcopy to {dest} on the ESP failed (full?)")


def odd_entries(tree: Path) -> list[str]:
    """Entries under ``tree`` that are neither regular files nor folders (links, FIFOs, device
    nodes), relative to it: mcopy would follow or block on them."""
    odd = []
    for top, dirs, files in os.walk(tree, followlinks=False):
        for name in dirs + files:
            mode = os.lstat(os.path.join(top, name)).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                odd.append(os.path.relpath(os.path.join(top, name), tree))
    return sorted(odd)


def has_file(node: str, rel: str) -> bool:
    """``rel`` exists on the FAT ``node`` (any case)."""
    return _m("mdir", node, "-b", f"::/{rel}") == 0


def install_boot_manager(efi_dir: Path, fonts: Path | None, esp_node: str) -> list[str]:
    """Copy ``efi_dir`` (the restored ``Windows/Boot/EFI``, checked: no links) and ``fonts``
    to the ESP ``esp_node``; NotExecError (mtools missing, no ``bootmgfw.efi``), NotWriteError."""
    if not available("mcopy") or not available("mmd"):
        raise NotExecError("mtools (mcopy, mmd) is missing")
    entries = sorted(efi_dir.iterdir())
    loader = next((p for p in entries if p.name.lower() == "bootmgfw.efi"), None)
    if loader is None or not loader.is_file():
        raise NotExecError(f"{efi_dir}: no bootmgfw.efi (Windows' UEFI boot manager)")
    _mkdirs(esp_node, BOOT_DIR)
    _copy(esp_node, entries, f"::/{BOOT_DIR}/")
    notes = [f"Windows boot manager copied to the ESP: {LOADER} and {len(entries) - 1} more"]
    if fonts is not None:
        _mkdirs(esp_node, f"{BOOT_DIR}/Fonts")
        _copy(esp_node, sorted(fonts.iterdir()), f"::/{BOOT_DIR}/Fonts/")
        notes.append("Windows boot fonts copied to the ESP")
    _mkdirs(esp_node, FALLBACK.rsplit("/", 1)[0])
    with tempfile.TemporaryDirectory(prefix="ogref-winefi-") as tmp:
        fallback = Path(tmp) / "bootx64.efi"
        fallback.write_bytes(loader.read_bytes())
        _copy(esp_node, [fallback], f"::/{FALLBACK}")
    notes.append("\\EFI\\Boot\\bootx64.efi = bootmgfw.efi (the removable-media path)")
    return notes


def fix_esp_bcd(esp_node: str, loc: winboot.Location) -> list[str]:
    """The ESP's BCD store pointed at the restored Windows partition ``loc``; when the ESP has
    none, a note of the limitation (it is not created here).  NotOsError (6) for a file that is
    not a BCD store, NotWriteError (14) when it cannot be written back."""
    rel = f"{BOOT_DIR}/BCD"
    if not has_file(esp_node, rel):
        return [
            "no BCD store on the ESP: not created here (bcdboot's job) — Windows' boot manager "
            "cannot start Windows until `bcdboot C:\\Windows /f UEFI` is run once"
        ]
    with tempfile.TemporaryDirectory(prefix="ogref-bcd-") as tmp:
        local = Path(tmp) / "BCD"
        if _m("mcopy", esp_node, "-n", f"::/{rel}", str(local)) != 0:
            raise NotWriteError(f"cannot read \\{rel.replace('/', chr(92))} from the ESP")
        notes = winboot.fix_bcd(local, loc)
        _copy(esp_node, [local], f"::/{rel}")
    return [f"ESP {n}" for n in notes]
