"""The VMs' firmware: SeaBIOS (``bios``), OVMF (``uefi``) and OVMF with Secure Boot enforced and
Microsoft-style keys enrolled (``uefi-secureboot``), and what each one network-boots.

OVMF comes from Debian's ``ovmf`` package: ``OVMF_CODE_4M.fd`` + ``OVMF_VARS_4M.fd`` for
``uefi``; ``OVMF_CODE_4M.secboot.fd`` (SMM, q35) + ``OVMF_VARS_4M.ms.fd`` (Microsoft KEK and db,
Secure Boot on) for ``uefi-secureboot``.  Each UEFI VM gets its own copy of the variables file
(its NVRAM: boot entries, BootNext, BootOrder), made here from the template and recorded in the
lab's manifest before it exists, so the lab removes it with the domain.

Network boot (the DHCP answer is chosen by the client's architecture, option 93):
``bios`` — the NIC's iPXE ROM fetches ``boot.ipxe`` over HTTP (as before); ``uefi`` — the
firmware's PXE client fetches iPXE's EFI build (``snponly.efi`` from Debian's ``ipxe``) over
TFTP, which then does what the BIOS iPXE does; ``uefi-secureboot`` — the firmware's PXE client
fetches Debian's Microsoft-signed shim (``shimx64.efi.signed``), which fetches Debian's signed
network GRUB (``grubnetx64.efi.signed``, as ``grubx64.efi``) from the same TFTP directory; that
GRUB reads ``grub.cfg`` (written here), which sources the per-MAC script the boot server writes
next to it; that GRUB has no HTTP, so the live client's kernel (Debian's signed one, verified by
shim) and initramfs files come over TFTP too.

This module writes files and answers paths; it starts nothing.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ogsim.lab.manifest import Manifest

FIRMWARES = ("bios", "uefi", "uefi-secureboot")
# how a UEFI VM network-boots: the NIC's iPXE option ROM (ipxe-qemu's efi-virtio.rom), the
# firmware's PXE client loading iPXE's EFI build over TFTP, or the firmware's PXE client loading
# shim and the signed network GRUB (the only chain Secure Boot accepts)
NETBOOTS = ("ipxe-rom", "ipxe-efi", "grub")
OVMF = Path("/usr/share/OVMF")
IPXE_EFI = Path("/usr/lib/ipxe/snponly.efi")
SHIM = Path("/usr/lib/shim/shimx64.efi.signed")
GRUB_NET = Path("/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed")
GRUB_EFI_SIGNED = Path("/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed")
# Debian's signed network GRUB looks for its configuration under this prefix on the TFTP server
GRUB_NET_PREFIXES = ("debian-installer/amd64/grub", "grub")
TFTP_FILES = {"snponly.efi": IPXE_EFI, "shimx64.efi": SHIM, "grubx64.efi": GRUB_NET}


@dataclass(frozen=True)
class Ovmf:
    """The OVMF code (read-only) and the variables template of one firmware kind."""

    code: Path
    vars_template: Path
    secure: bool


def check(firmware: str) -> str:
    if firmware not in FIRMWARES:
        raise ValueError(f"firmware {firmware!r} is not one of {', '.join(FIRMWARES)}")
    return firmware


def is_uefi(firmware: str) -> bool:
    return check(firmware) != "bios"


def ovmf(firmware: str) -> Ovmf:
    """OVMF's files for ``firmware`` (``uefi`` or ``uefi-secureboot``)."""
    if check(firmware) == "uefi-secureboot":
        return Ovmf(OVMF / "OVMF_CODE_4M.secboot.fd", OVMF / "OVMF_VARS_4M.ms.fd", True)
    if firmware == "uefi":
        return Ovmf(OVMF / "OVMF_CODE_4M.fd", OVMF / "OVMF_VARS_4M.fd", False)
    raise ValueError("a BIOS VM has no OVMF")


def missing(firmwares: set[str]) -> list[str]:
    """Files the classroom's firmwares need that are not installed (Debian package named)."""
    need: list[tuple[Path, str]] = []
    if "uefi" in firmwares:
        need += [(ovmf("uefi").code, "ovmf"), (ovmf("uefi").vars_template, "ovmf")]
        need += [(IPXE_EFI, "ipxe")]
    if "uefi-secureboot" in firmwares:
        sb = ovmf("uefi-secureboot")
        need += [(sb.code, "ovmf"), (sb.vars_template, "ovmf")]
        need += [(SHIM, "shim-signed"), (GRUB_NET, "grub-efi-amd64-signed")]
    return [f"{p} (apt-get install {pkg})" for p, pkg in need if not p.exists()]


def netboot(firmware: str, uefi_netboot: str) -> str:
    """The network boot chain of a VM: ``ipxe`` for BIOS, shim+GRUB under Secure Boot,
    ``uefi_netboot`` otherwise."""
    if not is_uefi(firmware):
        return "ipxe"
    if firmware == "uefi-secureboot":
        return "grub"
    if uefi_netboot not in NETBOOTS:
        raise ValueError(f"UEFI network boot {uefi_netboot!r} is not one of {', '.join(NETBOOTS)}")
    return uefi_netboot


def make_nvram(manifest: Manifest, firmware: str, path: Path) -> Path:
    """Record, then copy the variables template to ``path`` (this VM's NVRAM)."""
    manifest.record("file", str(path))
    shutil.copyfile(ovmf(firmware).vars_template, path)
    path.chmod(0o644)
    return path


GRUB_CFG = """set timeout=0
echo oglab: network GRUB, ${net_default_mac}
source /grub/oglab-${net_default_mac}.cfg
echo oglab: no boot choice for ${net_default_mac}
"""


def tftp_tree(root: Path, files: list[Path]) -> Path:
    """The TFTP directory the firmware PXE clients read (world-readable: dnsmasq runs as
    nobody): iPXE's EFI build, shim, the network GRUB, its ``grub.cfg`` and, in ``files/``,
    the live client's kernel and initramfs files (hard links when the filesystem allows)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "files").mkdir(exist_ok=True)
    for f in files:
        dst = root / "files" / f.name
        try:
            dst.hardlink_to(f)
        except OSError:
            shutil.copyfile(f, dst)
    for name, src in TFTP_FILES.items():
        if src.exists():
            shutil.copyfile(src, root / name)
    for prefix in GRUB_NET_PREFIXES:
        d = root / prefix
        d.mkdir(parents=True, exist_ok=True)
        (d / "grub.cfg").write_text(GRUB_CFG)
    for p in [root, *root.rglob("*")]:
        if p.parent.name != "files":  # hard links to the cache: their mode is the cache's
            p.chmod(0o755 if p.is_dir() else 0o644)
    return root
