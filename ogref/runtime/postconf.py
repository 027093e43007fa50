"""configureOs on a restored partition: extend the filesystem, mark it active, fix up the OS.

Linux: ``/etc/hostname``, ``/etc/fstab`` rewritten to the new partition's UUID (root) and to the
disk's first swap partition (or swap lines dropped), ``70-persistent-net.rules`` and the
initramfs ``resume`` file removed, GRUB installed into the disk's MBR when ``grub-install`` for
i386-pc is available (otherwise a note says it was skipped); on a live client booted by UEFI,
GRUB for x86_64-efi on the disk's EFI system partition instead — Debian's signed shim + GRUB,
or GRUB's unsigned image when ``efi_signed`` is False — and a firmware boot entry named after
the computer (:mod:`ogref.runtime.efiboot`; the network entries stay first).  Windows: the computer name (at most
15 characters, ``pc`` by default, as ``ogSetWindowsName``) written as ComputerName, Tcpip
Hostname and NV Hostname into the SYSTEM hive with ``hivexregedit``, in the control set
``Select/Current`` names (OpenGnSys always writes ``ControlSet001``), when the tools and the
hive exist (otherwise a note); then, for BIOS, what lets the moved Windows boot from its new
position (:mod:`ogref.runtime.winboot`): the boot sector's hidden sectors, the BCD store's
device/osdevice elements (or boot.ini's ARC path for XP), ``MountedDevices\\DosDevices\\C:``,
the MBR active flag moved to this partition, and ``ogagent.cfg``'s ``remote=``; on a live client
booted by UEFI also Windows' boot manager copied from the restored ``Windows/Boot/EFI`` to the
disk's ESP, the ESP's BCD store (if it has one: it is not created here) pointed at this partition
(:mod:`ogref.runtime.winefi`) and a firmware boot entry for ``bootmgfw.efi``.  A read-only
filesystem (a hibernated Windows) fails with 14, a hive hivex cannot read with 6 — never a
silent skip.  Names are validated before anything is changed, never rewritten:
a Linux host name must be RFC 1123 labels, a Windows name follows the NetBIOS rules
(:mod:`ogref.model.names`).  Every step is reported in ``notes`` (the restore log); nothing here
decides whether to run.

The restored tree is untrusted: it is mounted ``nosuid,nodev,noexec`` and every path in it goes
through :class:`~ogref.runtime.rootdir.RootDir`, so a link that leads outside the filesystem (an
absolute ``/etc/hostname``, ``/etc`` → ``/``, ``../../``), a link loop, a FIFO or a device node is
refused with a note and that step is skipped; grub-install and hivex get only paths with no link
in them (GRUB is skipped when ``/boot`` or anything under ``/boot/grub`` is a link).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ogref.errors import NotExecError, NotWriteError, UnsafePathError
from ogref.model.names import check_host_name, check_netbios_name
from ogref.model.storage import Filesystem
from ogref.runtime import disk, efiboot, filesystem, winboot, winefi
from ogref.runtime.loopdev import partition_path
from ogref.runtime.mount import Mount
from ogref.runtime.proc import available, run
from ogref.runtime.rootdir import RootDir

_LINUX = (Filesystem.EXT2, Filesystem.EXT3, Filesystem.EXT4, Filesystem.BTRFS, Filesystem.XFS)
_CLEAN = ("etc/udev/rules.d/70-persistent-net.rules", "etc/initramfs-tools/conf.d/resume")
FSTAB_BACKUP = "etc/fstab.ogref-backup"


@dataclass
class PostconfReport:
    """What configureOs did, step by step."""

    filesystem: Filesystem
    notes: list[str] = field(default_factory=list)


def configure_os(
    disk_device: str,
    number: int,
    hostname: str,
    *,
    grub: bool = True,
    server: str = "",
    disk_no: int = 1,
    efi_signed: bool = True,
) -> PostconfReport:
    """Post-configure partition ``number`` of ``disk_device``, OpenGnSys's disk ``disk_no``
    (boot.ini's ``rdisk(disk_no-1)``); ``server`` is the OpenGnSys server OGAgent is pointed
    at (empty leaves ``ogagent.cfg`` alone, with a note)."""
    node = partition_path(disk_device, number)
    fs = filesystem.detect(node)
    if fs in _LINUX:
        check_host_name(hostname)
    elif fs is Filesystem.NTFS:
        windows_name(hostname)
    report = PostconfReport(fs)
    filesystem.extend(node, fs)
    report.notes.append(f"filesystem {fs} extended to the partition")
    if disk.table_kind(disk_device).value == "MSDOS" and not disk.has_active(disk_device):
        disk.set_active(disk_device, number)
        report.notes.append(f"partition {number} marked active")
    if fs in _LINUX:
        _linux(disk_device, node, fs, hostname, grub, report, efi_signed)
    elif fs is Filesystem.NTFS:
        _windows(disk_device, disk_no, number, node, hostname, server, report)
    else:
        report.notes.append(f"no OS post-configuration for {fs}")
    return report


# --------------------------------------------------------------------------- Linux


def rewrite_fstab(text: str, root_uuid: str, swap_uuid: str) -> str:
    """fstab with ``/`` on ``UUID=root_uuid`` and swap on ``swap_uuid`` (swap dropped if '')."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#") or len(fields) < 3:
            out.append(line)
            continue
        if fields[1] == "/":
            fields[0] = f"UUID={root_uuid}"
            out.append("\t".join(fields))
        elif fields[2] == "swap":
            if swap_uuid:
                fields[0] = f"UUID={swap_uuid}"
                out.append("\t".join(fields))
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def _first_swap(disk_device: str) -> str:
    for number, *_ in disk.partition_entries(disk_device):
        info = filesystem.probe(partition_path(disk_device, number))
        if info.get("TYPE") == "swap":
            return info.get("UUID", "")
    return ""


def _linux(
    disk_device: str,
    node: str,
    fs: Filesystem,
    hostname: str,
    grub: bool,
    report: PostconfReport,
    efi_signed: bool = True,
) -> None:
    root_uuid = filesystem.uuid(node)
    with Mount(node, fs) as mounted, RootDir(mounted) as root:
        has_etc = False
        with _refusals(report) as step:
            has_etc = root.is_dir("etc")
        if step.refused:
            return
        if not has_etc:
            report.notes.append("no /etc: not a Linux system, only the filesystem was extended")
            return
        with _refusals(report):
            root.write_text("etc/hostname", hostname + "\n")
            report.notes.append(f"/etc/hostname = {hostname}")
        with _refusals(report):
            if root.exists("etc/fstab"):
                text = root.read_text("etc/fstab")
                new = rewrite_fstab(text, root_uuid, _first_swap(disk_device))
                # a fresh backup: an entry already named so (a link) is replaced, not followed
                root.write_text(FSTAB_BACKUP, text, fresh=True)
                root.write_text("etc/fstab", new)
                report.notes.append(f"/etc/fstab: / on UUID={root_uuid}")
        for rel in _CLEAN:
            with _refusals(report):
                if root.unlink(rel):
                    report.notes.append(f"removed /{rel}")
        if not grub:
            report.notes.append("GRUB not installed (disabled)")
        elif efiboot.active():
            _grub_efi(root, disk_device, node, hostname, efi_signed, report)
        elif not available("grub-install") or not Path("/usr/lib/grub/i386-pc").is_dir():
            report.notes.append("GRUB not installed: grub-install for i386-pc is missing")
        else:
            _grub(root, disk_device, node, report)


@dataclass
class _Step:
    refused: bool = False


@contextmanager
def _refusals(report: PostconfReport) -> Iterator[_Step]:
    """One step on the restored tree: a refused path ends the step with a note (the rest of
    the post-configuration goes on); any other I/O error fails it with 14 (OG_ERR_NOTWRITE)."""
    step = _Step()
    try:
        yield step
    except UnsafePathError as exc:
        step.refused = True
        report.notes.append(f"{exc.path}: {exc.reason}; left unchanged")
    except OSError as exc:
        raise NotWriteError(f"post-configuration: {exc}") from None


def _grub(root: RootDir, disk_device: str, node: str, report: PostconfReport) -> None:
    """grub-install with ``--boot-directory`` in the restored tree, only when neither ``/boot``
    nor anything under ``/boot/grub`` is a link (grub-install would write through it)."""
    boot = _boot_dir(root, report)
    if boot is None:
        return
    run(
        ["grub-install", "--target=i386-pc", f"--boot-directory={boot}", "--force", disk_device],
        error=NotExecError,
        what="grub-install",
    )
    report.notes.append(f"GRUB installed in the MBR of {disk_device}, /boot/grub on {node}")


def _grub_efi(
    root: RootDir,
    disk_device: str,
    node: str,
    hostname: str,
    signed: bool,
    report: PostconfReport,
) -> None:
    """UEFI: GRUB (signed: shim + Debian's signed GRUB) on the disk's EFI system partition,
    ``/boot/grub`` in the restored tree, and a firmware boot entry named after the computer —
    the network entries stay first (the console's boot once / boot target set BootNext /
    BootOrder).  No ESP on the disk fails with 80 (OG_ERR_NOTUEFI)."""
    boot = _boot_dir(root, report)
    if boot is None:
        return
    esp = efiboot.find_esp(disk_device)
    with efiboot.mounted_esp(partition_path(disk_device, esp)) as esp_dir:
        loader = efiboot.install_grub(esp_dir, boot, disk_device, signed=signed)
    report.notes.append(
        f"GRUB for UEFI installed on the ESP (partition {esp}): {loader}"
        + (" (shim + Debian's signed GRUB)" if signed else " (unsigned GRUB image)")
        + f", /boot/grub on {node}"
    )
    number, now = efiboot.add_entry(disk_device, esp, loader, efiboot.label_for(hostname))
    report.notes.append(
        f"firmware boot entry Boot{number} {efiboot.label_for(hostname)!r} added; "
        f"BootOrder {','.join(now.order)} (network first)"
    )


def _boot_dir(root: RootDir, report: PostconfReport) -> Path | None:
    """The restored ``/boot`` for grub-install, None (with a note) when it or anything under
    ``/boot/grub`` is a link or it is missing."""
    boot: Path | None = None
    links: list[str] = []
    with _refusals(report) as step:
        boot = root.checked_path("boot") if root.kind("boot") == "dir" else None
        links = root.links_under("boot/grub") if root.kind("boot/grub") == "dir" else []
    if step.refused:
        report.notes.append("GRUB not installed: /boot or /boot/grub is a link")
        return None
    if boot is None:
        report.notes.append("GRUB not installed: the system has no /boot")
        return None
    if links:
        report.notes.append(
            f"GRUB not installed: refused to write through the links {', '.join(links)}"
        )
        return None
    return boot


# --------------------------------------------------------------------------- Windows


def _find_ci(root: RootDir, rel: str) -> str | None:
    """``rel`` matched case-insensitively, component by component (NTFS via ntfs-3g), as the
    names on disk; None when some component is missing."""
    found: list[str] = []
    for part in rel.split("/"):
        here = "/".join(found)
        if root.kind(here) != "dir":
            return None
        match = next((n for n in root.listdir(here) if n.lower() == part.lower()), None)
        if match is None:
            return None
        found.append(match)
    return "/".join(found)


def windows_name(hostname: str) -> str:
    """The Windows computer name for ``hostname`` (``pc`` if empty, as ogSetWindowsName),
    checked against the NetBIOS rules: OutOfLimitError (19) if it breaks one, never rewritten."""
    return check_netbios_name(hostname or "pc")


def current_control_set(hive: Path) -> str:
    """``ControlSetNNN`` that ``\\Select\\Current`` names (``ControlSet001`` if unreadable)."""
    done = run(["hivexget", str(hive), "\\Select", "Current"], error=NotExecError, check=False)
    try:
        number = int(done.stdout.strip(), 0)
    except ValueError:
        return "ControlSet001"
    return f"ControlSet{number:03d}" if 0 < number < 1000 else "ControlSet001"


def computer_name_reg(name: str, control_set: str = "ControlSet001") -> str:
    """The .reg that ``ogSetWindowsName`` amounts to: ComputerName, Tcpip Hostname, NV Hostname.

    Every parent key is listed (hivexregedit creates a key only under an existing parent; merging
    an existing key keeps its other values).
    """
    keys = [
        (control_set, []),
        (f"{control_set}\\Control", []),
        (f"{control_set}\\Control\\ComputerName", []),
        (f"{control_set}\\Control\\ComputerName\\ComputerName", ["ComputerName"]),
        (f"{control_set}\\Services", []),
        (f"{control_set}\\Services\\Tcpip", []),
        (f"{control_set}\\Services\\Tcpip\\Parameters", ["Hostname", "NV Hostname"]),
    ]
    out = ["Windows Registry Editor Version 5.00", ""]
    for key, values in keys:
        out.append(f"[\\{key}]")
        out.extend(f'"{v}"="{name}"' for v in values)
        out.append("")
    return "\n".join(out)


def _windows(
    disk_device: str,
    disk_no: int,
    number: int,
    node: str,
    hostname: str,
    server: str,
    report: PostconfReport,
) -> None:
    """ogSetWindowsName, ogFixBootSector (BIOS), ogWindowsBootParameters,
    ogWindowsRegisterPartition C: and ogConfigureOgagent, in that order; the MBR's active flag
    moved to this partition.  A read-only filesystem fails with 14, a hive hivex cannot read
    (or a BCD store without ``{bootmgr}``) with 6: never skipped in silence."""
    name = windows_name(hostname)
    with Mount(node, Filesystem.NTFS) as mounted, RootDir(mounted) as root:
        hive: Path | None = None
        with _refusals(report) as step:
            rel = _find_ci(root, "Windows/System32/config/SYSTEM")
            if rel is not None and root.kind(rel) == "file":
                hive = root.checked_path(rel)  # hivex follows links: none may be one
        if step.refused:
            report.notes.append(
                "computer name not set, Windows not post-configured: "
                "the SYSTEM hive's path is refused"
            )
            return
        if hive is None:
            report.notes.append("no Windows SYSTEM hive: computer name not set")
            return
        if os.statvfs(mounted).f_flag & os.ST_RDONLY:
            # ntfs-3g falls back to read-only on a hibernated (fast-startup) Windows; OpenGnSys
            # prints a warning and skips the post-configuration, which leaves it unbootable here
            raise NotWriteError(
                f"{node}: the filesystem is mounted read-only (Windows hibernated?): "
                "Windows cannot be post-configured"
            )
        if not available("hivexregedit") or not available("hivexget"):
            report.notes.append(
                "hivexregedit/hivexget (libwin-hivex-perl, libhivex-bin) missing: "
                "Windows not post-configured"
            )
            return
        # both hives are read before anything is written: NotOsError (6) changes nothing
        winboot.export(hive, "\\Select")
        bcd = _bcd_path(root, report)
        if bcd is not None:
            winboot.read_bcd(bcd)
        if disk.table_kind(disk_device).value == "MSDOS":
            signature = winboot.ensure_signature(disk_device)
            if signature:
                report.notes.append(
                    f"MBR disk signature was 0: set to {signature:08x} (Windows names its disk "
                    "by it)"
                )
        loc = winboot.locate(disk_device, node)
        control_set = current_control_set(hive)
        winboot.check_writable(hive)
        with tempfile.NamedTemporaryFile("w", suffix=".reg", encoding="utf-8") as f:
            f.write(computer_name_reg(name, control_set))
            f.flush()
            run(
                ["hivexregedit", "--merge", str(hive), f.name],
                error=NotExecError,
                what="hivexregedit",
            )
        report.notes.append(f"Windows computer name = {name} ({control_set})")
        loader = _boot_loader(root, report)
        _boot_config(root, loc, disk_no, number, report)
        report.notes.extend(winboot.register_c(hive, loc))
        _ogagent(root, server, report)
        if efiboot.active():
            _windows_efi(root, disk_device, loc, hostname, report)
    # the boot sector is written on the unmounted partition (ogFixBootSector unmounts first)
    old, new, copies = winboot.fix_boot_sector(node, loc.start)
    if old == new:
        report.notes.append(f"boot sector: hidden sectors already {new}")
    else:
        report.notes.append(f"boot sector: hidden sectors {old} → {new} ({', '.join(copies)})")
    if loc.scheme == "dos" and not loader:
        report.notes.append(
            "no boot manager on the partition (bootmgr, ntldr, io.sys): it boots from another "
            "partition (System Reserved), the active flag is left as it is"
        )
    elif loc.scheme == "dos" and number > 4:
        report.notes.append(
            f"partition {number} is logical: the MBR code boots primaries only, "
            "the active flag is left as it is"
        )
    elif loc.scheme == "dos":
        cleared = winboot.set_only_active(disk_device, number)
        if cleared:
            report.notes.append(
                f"partition {number} made the active one (cleared on {cleared}): "
                "the BIOS boots the restored Windows"
            )
    else:
        report.notes.append("GPT disk: no active flag (BIOS boot of a GPT disk is the firmware's)")


def _windows_efi(
    root: RootDir, disk_device: str, loc: winboot.Location, hostname: str, report: PostconfReport
) -> None:
    """UEFI: the restored Windows' boot manager on the disk's ESP, the ESP's BCD store pointed
    at this partition, and a firmware boot entry ``ogLab <hostname>`` for ``bootmgfw.efi``
    (the network entries first).  No ESP fails with 80 (OG_ERR_NOTUEFI)."""
    esp = efiboot.find_esp(disk_device)
    found: dict[str, Path] = {}
    with _refusals(report) as step:
        for what in ("Windows/Boot/EFI", "Windows/Boot/Fonts"):
            rel = _find_ci(root, what)
            if rel is not None and root.kind(rel) == "dir":
                found[what] = root.checked_path(rel)
    if step.refused:
        report.notes.append("Windows boot manager not copied to the ESP: its path is refused")
        return
    efi_dir = found.get("Windows/Boot/EFI")
    if efi_dir is None:
        report.notes.append(
            "no Windows/Boot/EFI in the restored Windows: its boot manager is not copied to the "
            "ESP and no firmware boot entry is made"
        )
        return
    odd = [f"{d}/{o}" for d, p in found.items() for o in winefi.odd_entries(p)]
    if odd:
        report.notes.append(
            f"Windows boot manager not copied to the ESP: refused to copy {', '.join(odd)} "
            "(not a regular file)"
        )
        return
    node = partition_path(disk_device, esp)
    report.notes.extend(winefi.install_boot_manager(efi_dir, found.get("Windows/Boot/Fonts"), node))
    report.notes.extend(winefi.fix_esp_bcd(node, loc))
    label = efiboot.label_for(hostname)
    number, now = efiboot.add_entry(disk_device, esp, winefi.LOADER, label)
    report.notes.append(
        f"firmware boot entry Boot{number} {label!r} for {winefi.LOADER} added; "
        f"BootOrder {','.join(now.order)} (network first)"
    )


def _boot_loader(root: RootDir, report: PostconfReport) -> str:
    """The boot manager at the partition's root that ogBoot looks for (``io.sys``, ``ntldr``,
    ``bootmgr``), '' if none: then Windows boots from another partition's."""
    for name in ("bootmgr", "ntldr", "io.sys"):
        with _refusals(report):
            rel = _find_ci(root, name)
            if rel is not None and root.kind(rel) == "file":
                return rel
    return ""


def _bcd_path(root: RootDir, report: PostconfReport) -> Path | None:
    """``/Boot/BCD`` (any case), with no link on its path; None if absent or refused."""
    with _refusals(report):
        rel = _find_ci(root, "Boot/BCD")
        if rel is not None and root.kind(rel) == "file":
            return root.checked_path(rel)
    return None


def _boot_config(
    root: RootDir, loc: winboot.Location, disk_no: int, number: int, report: PostconfReport
) -> None:
    """The BCD store in ``/Boot/BCD`` (Vista and later), else ``boot.ini`` (XP)."""
    bcd = _bcd_path(root, report)
    ini: str | None = None
    with _refusals(report) as step:
        if bcd is None:
            ini = _find_ci(root, "boot.ini")
    if step.refused:
        report.notes.append("boot configuration not changed: its path is refused")
        return
    if bcd is not None:
        report.notes.extend(winboot.fix_bcd(bcd, loc))
        return
    if ini is not None and root.kind(ini) == "file":
        with _refusals(report):
            text = root.read_text(ini)
            new = winboot.rewrite_boot_ini(text, disk_no, number)
            if new != text:
                root.write_text(ini, new)
            report.notes.append(f"boot.ini: rdisk({disk_no - 1}) partition({number})")
        return
    report.notes.append(
        "no boot configuration on the partition (Boot/BCD, boot.ini): its boot manager lives "
        "on another partition, not changed"
    )


def _ogagent(root: RootDir, server: str, report: PostconfReport) -> None:
    """ogConfigureOgagent: ``remote=`` of the first ``ogagent.cfg`` found."""
    for base in ("Program Files/OGAgent", "Program Files (x86)/OGAgent"):
        with _refusals(report) as step:
            rel = _find_ci(root, f"{base}/cfg/ogagent.cfg")
            if rel is None or root.kind(rel) != "file":
                continue
            if not server:
                report.notes.append(f"/{rel}: no server address given, OGAgent not configured")
                return
            text = root.read_text(rel)
            root.write_text(rel, winboot.rewrite_ogagent_cfg(text, server))
            report.notes.append(f"/{rel}: remote=https://{server}/opengnsys/rest/")
            return
        if step.refused:
            return
    report.notes.append("no ogagent.cfg: OGAgent not configured")
