"""configureOs makes a Windows image restored to another partition bootable (BIOS): the image is
made on 1:1 and restored to 1:2 (MBR, same disk) and to 2:3 (GPT, another disk); every field
OpenGnSys's configureOs rewrites is then checked against the new position.

No Windows is needed; the fixture is a synthetic Windows partition:

- NTFS made by ``mkntfs --partition-start <start>`` (ntfs-3g), so its boot sector's hidden
  sectors field (u32 at 0x1C) holds the source partition's start, as Windows' format leaves it;
- ``Windows/System32/config/SYSTEM``: an empty regf hive (:mod:`ogsim.lab.regf`) filled by
  hivex with ``Select\\Current``, the computer name, and ``MountedDevices`` whose
  ``\\DosDevices\\C:`` names the source partition (MBR: disk signature u32 + byte offset u64;
  GPT: ``DMIO:ID:`` + partition GUID), plus a ``\\DosDevices\\D:`` on another volume (kept);
- ``Boot/BCD``: a BCD store (a regf hive) built by hivex (:func:`ogsim.lab.regf.bcd_objects`):
  ``{bootmgr}`` (device 11000001, description, 23000003 naming ``{default}``), a Windows 10
  loader (device 11000001 and osdevice 21000001), its resume object and the memory tester, each
  device an 88-byte ``partition=`` element (type 6 at 0x10; at 0x20 the byte offset (MBR) or the
  partition GUID (GPT); style at 0x34, 1 MBR / 0 GPT; at 0x38 the disk signature or disk GUID),
  plus a loader on another disk, which must stay as it is;
- ``Program Files/OGAgent/cfg/ogagent.cfg`` with ``remote=`` pointing at an old server.

What the partition's new position is comes from outside ogref: the start from sysfs, the MBR
signature from byte 0x1B8 of the disk, the GPT GUIDs from ``sfdisk --json``; the fields are read
back with ``hivexget`` (raw bytes) and by reading the boot sectors.  The expected BCD element is
packed here from the published layout, not by ogref.  Runtime: 15–30 s for the module
(measured on the shared 2-core host; two images of a 48 MiB NTFS, seven loop disks).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ogref.agent.osinfo import read_os
from ogref.errors import NotOsError, NotWriteError, OgError
from ogref.model import ClientStatus
from ogref.model.image import Compressor
from ogref.model.storage import Filesystem, TableKind
from ogref.runtime import disk, postconf
from ogref.runtime.cli import app
from ogref.runtime.create import create_image
from ogref.runtime.disk import PartSpec
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.loopdev import partition_path
from ogref.runtime.mount import Mount
from ogref.runtime.restore import restore_image
from ogref.units import MIB
from ogsim.lab.regf import (
    BOOTMGR,
    DEFAULT_LOADER,
    FOREIGN_LOADER,
    MEMDIAG,
    RESUME,
    write_bcd_store,
    write_minimal_hive,
    write_system_hive,
)

from .conftest import MakeDisk, need

pytestmark = [pytest.mark.root, pytest.mark.imaging]

SERVER = "10.1.2.3"
OLD_CFG = "[opengnsys]\r\nremote=https://192.168.0.1/opengnsys/rest/\r\nlog=DEBUG\r\n"
OTHER_VOLUME = bytes.fromhex("deadbeef") + (999 * MIB).to_bytes(8, "little")
ON_THE_PARTITION = {  # object → its device elements that name the Windows partition
    BOOTMGR: ("11000001",),
    DEFAULT_LOADER: ("11000001", "21000001"),
    RESUME: ("11000001", "21000001"),
    MEMDIAG: ("11000001",),
}


@pytest.fixture(autouse=True)
def _tools() -> None:
    need("mkntfs", "ntfs-3g", "ntfsresize", "partclone.ntfs", "hivexregedit", "hivexget", "sfdisk")


# --------------------------------------------------------------------------- where, from outside


def _start(node: str) -> int:
    return int(Path(f"/sys/class/block/{Path(node).name}/start").read_text())


def _where(device: str, node: str, number: int) -> dict[str, object]:
    """The partition's position: start (sectors), and MBR signature or GPT GUIDs."""
    table = json.loads(
        subprocess.run(["sfdisk", "--json", device], capture_output=True, check=True).stdout
    )["partitiontable"]
    with open(device, "rb") as f:
        signature = struct.unpack("<I", f.read(512)[0x1B8:0x1BC])[0]
    where: dict[str, object] = {"start": _start(node), "label": table["label"]}
    if table["label"] == "gpt":
        entry = next(p for p in table["partitions"] if p["node"].endswith(f"p{number}"))
        where["part"] = uuid.UUID(entry["uuid"])
        where["disk"] = uuid.UUID(table["id"])
    else:
        where["signature"] = signature
    return where


def _element(w: dict[str, object]) -> bytes:
    """The 88-byte BCD partition device element for ``w``, packed from the published layout."""
    head = bytes(16) + struct.pack("<IIII", 6, 0, 0x48, 0)
    if w["label"] == "gpt":
        assert isinstance(w["part"], uuid.UUID) and isinstance(w["disk"], uuid.UUID)
        ident = w["part"].bytes_le + struct.pack("<II", 0, 0) + w["disk"].bytes_le
    else:
        start, sig = w["start"], w["signature"]
        assert isinstance(start, int) and isinstance(sig, int)
        ident = struct.pack("<Q8xII", start * 512, 0, 1) + struct.pack("<I12x", sig)
    return head + ident + bytes(16)


def _mounted(w: dict[str, object]) -> bytes:
    if w["label"] == "gpt":
        assert isinstance(w["part"], uuid.UUID)
        return b"DMIO:ID:" + w["part"].bytes_le
    start, sig = w["start"], w["signature"]
    assert isinstance(start, int) and isinstance(sig, int)
    return struct.pack("<I", sig) + struct.pack("<Q", start * 512)


FOREIGN = _element({"label": "dos", "start": 63, "signature": 0xDEADBEEF})


# --------------------------------------------------------------------------- the fixture


def _make_windows(device: str, node: str, number: int) -> None:
    """A synthetic Windows on ``node`` whose boot data name its own position."""
    w = _where(device, node, number)
    subprocess.run(
        ["mkntfs", "-Q", "-F", "-L", "windows", "-p", str(w["start"]), node],
        check=True,
        capture_output=True,
    )
    with Mount(node, Filesystem.NTFS) as root:
        config = root / "Windows" / "System32" / "config"
        config.mkdir(parents=True)
        write_system_hive(
            config / "SYSTEM",
            mounted={"\\DosDevices\\C:": _mounted(w), "\\DosDevices\\D:": OTHER_VOLUME},
        )
        (root / "bootmgr").write_bytes(b"\0" * 1024)  # what ogBoot looks for (BIOS)
        (root / "Boot").mkdir()
        write_bcd_store(root / "Boot" / "BCD", _element(w), FOREIGN)
        cfg = root / "Program Files" / "OGAgent" / "cfg"
        cfg.mkdir(parents=True)
        (cfg / "ogagent.cfg").write_bytes(OLD_CFG.encode())


def _get(hive: Path, key: str, value: str) -> bytes:
    return subprocess.run(
        ["hivexget", str(hive), key, value], capture_output=True, check=True
    ).stdout


def _hidden(node: str) -> tuple[int, int]:
    """The hidden-sectors field of the NTFS boot sector and of its backup (in the partition's
    last sector, where mkntfs and ntfsresize write it)."""
    with open(node, "rb") as f:
        boot = f.read(512)
        f.seek(-512, os.SEEK_END)
        backup = f.read(512)
    assert boot[3:11] == backup[3:11] == b"NTFS    "
    return struct.unpack_from("<I", boot, 0x1C)[0], struct.unpack_from("<I", backup, 0x1C)[0]


def _active(device: str) -> list[int]:
    with open(device, "rb") as f:
        mbr = f.read(512)
    return [n for n in range(1, 5) if mbr[0x1BE + 16 * (n - 1)] == 0x80]


def _check_position(device: str, node: str, number: int, notes: list[str]) -> None:
    """Every field configureOs rewrites names partition ``number`` where it is now."""
    w = _where(device, node, number)
    assert _hidden(node) == (w["start"], w["start"])
    with Mount(node, Filesystem.NTFS, readonly=True) as root:
        bcd = root / "Boot" / "BCD"
        for obj, elements in ON_THE_PARTITION.items():
            for element in elements:
                key = f"\\Objects\\{obj}\\Elements\\{element}"
                assert _get(bcd, key, "Element") == _element(w), (obj, element)
        for element in ("11000001", "21000001"):  # the other disk's loader is left alone
            assert _get(bcd, f"\\Objects\\{FOREIGN_LOADER}\\Elements\\{element}", "Element") == (
                FOREIGN
            )
        system = root / "Windows" / "System32" / "config" / "SYSTEM"
        assert _get(system, "\\MountedDevices", "\\DosDevices\\C:") == _mounted(w)
        assert _get(system, "\\MountedDevices", "\\DosDevices\\D:") == OTHER_VOLUME
        name = _get(system, "\\ControlSet001\\Control\\ComputerName\\ComputerName", "ComputerName")
        assert name.decode("utf-8").strip() == "aula1-pc07"
        cfg = (root / "Program Files" / "OGAgent" / "cfg" / "ogagent.cfg").read_bytes().decode()
        assert cfg == OLD_CFG.replace("192.168.0.1", SERVER)
    # the restore log says what was changed, one line per field
    log = "\n".join(notes)
    assert f"hidden sectors 2048 → {w['start']}" in log
    assert log.count("BCD ") == 6 and "osdevice" in log
    assert "MountedDevices \\DosDevices\\C:" in log
    assert f"remote=https://{SERVER}/opengnsys/rest/" in log


def _master(make_disk: MakeDisk, tmp_path: Path, lock_dir: Path) -> tuple[str, ImageStore]:
    """Disk 1 (MBR): Windows on 1:1 (active), imaged into a repository; 1:2 empty NTFS."""
    loop = make_disk(
        160 * MIB,
        TableKind.MSDOS,
        [PartSpec(48 * MIB, Filesystem.NTFS), PartSpec(64 * MIB, Filesystem.NTFS)],
    )
    _make_windows(loop.device, loop.partition(1), 1)
    disk.set_active(loop.device, 1)
    repo = ImageStore(tmp_path / "repo")
    create_image(loop.partition(1), repo, "win10", comp=Compressor.LZOP, lock_dir=lock_dir)
    return loop.device, repo


def test_windows_made_on_1_1_restored_to_1_2_boots_from_1_2(
    make_disk: MakeDisk, tmp_path: Path, lock_dir: Path
) -> None:
    device, repo = _master(make_disk, tmp_path, lock_dir)
    p2 = partition_path(device, 2)
    restore_image(repo, "win10", p2, lock_dir=lock_dir)
    # as restored, the partition still says it is 1:1 (what configureOs is for); the reduced
    # volume's backup boot sector is not in the image: ntfsresize writes it when extending
    with open(p2, "rb") as f:
        assert struct.unpack_from("<I", f.read(512), 0x1C)[0] == 2048
    assert _active(device) == [1]
    # the emulated boot (what a BIOS would find) refuses it, naming each stale field
    with pytest.raises(NotOsError) as stale:
        read_os(p2, device)
    for what in ("starts at sector 2048, it starts at", "the BCD boots MBR disk", "C: is MBR"):
        assert what in stale.value.message, stale.value.message
    report = postconf.configure_os(device, 2, "aula1-pc07", grub=False, server=SERVER)
    _check_position(device, p2, 2, report.notes)
    assert read_os(p2, device)[:2] == (ClientStatus.WIN, "aula1-pc07")
    assert _active(device) == [2]
    assert any("partition 2 made the active one (cleared on [1])" in n for n in report.notes)
    # a second run finds everything in place and changes nothing
    again = postconf.configure_os(device, 2, "aula1-pc07", grub=False, server=SERVER)
    assert any("hidden sectors already" in n for n in again.notes), again.notes
    assert any(n.startswith("BCD: already on MBR disk") for n in again.notes)
    _check_position(device, p2, 2, report.notes)


def test_windows_restored_to_another_gpt_disk(
    make_disk: MakeDisk, tmp_path: Path, lock_dir: Path
) -> None:
    device, repo = _master(make_disk, tmp_path, lock_dir)
    gpt = make_disk(
        160 * MIB,
        TableKind.GPT,
        [PartSpec(8 * MIB), PartSpec(16 * MIB), PartSpec(64 * MIB, Filesystem.NTFS)],
    )
    node = gpt.partition(3)
    # deployImage REPO /win10 2 3 UNICAST-DIRECT: restore + configureOs, as the CLI runs it
    args = [
        "deploy-image", "REPO", "/win10", "2", "3", "UNICAST-DIRECT",
        "--disk", f"1={device}", "--disk", f"2={gpt.device}", "--repo-dir", str(repo.root),
        "--lock-dir", str(lock_dir), "--no-grub", "--hostname", "aula1-pc07",
        "--server", SERVER, "--json",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    _check_position(gpt.device, node, 3, out["notes"])
    # the restore log has a line for each change, old → new
    log = "\n".join(out["log"])
    start = _start(node)
    assert f"configureOs: boot sector: hidden sectors 2048 → {start}" in log, log
    assert "configureOs: BCD Windows 10 element 21000001 (osdevice): MBR disk" in log
    assert "→ GPT disk" in log and "configureOs: GPT disk: no active flag" in log
    assert _active(device) == [1]  # the other disk is not touched
    assert read_os(node, gpt.device)[:2] == (ClientStatus.WIN, "aula1-pc07")


def _windows_disk(make_disk: MakeDisk) -> tuple[str, str]:
    loop = make_disk(96 * MIB, TableKind.MSDOS, [PartSpec(48 * MIB, Filesystem.NTFS)])
    _make_windows(loop.device, loop.partition(1), 1)
    return loop.device, loop.partition(1)


def test_a_hibernated_windows_is_read_only_and_fails_with_14(make_disk: MakeDisk) -> None:
    """ntfs-3g mounts a hibernated NTFS read-only; OpenGnSys prints a warning and skips the
    post-configuration, ogLab fails with OG_ERR_NOTWRITE and changes nothing."""
    device, node = _windows_disk(make_disk)
    with Mount(node, Filesystem.NTFS) as root:
        (root / "hiberfil.sys").write_bytes(b"hibr" + bytes(8188))
    before = Path(node).read_bytes()[:512]
    with pytest.raises(NotWriteError) as err:
        postconf.configure_os(device, 1, "aula1-pc07", grub=False, server=SERVER)
    assert int(err.value.code) == 14 and "read-only" in err.value.message
    assert Path(node).read_bytes()[:512] == before


@pytest.mark.parametrize("broken", ["SYSTEM is no hive", "BCD is no hive", "BCD has no bootmgr"])
def test_an_unrecognised_hive_fails_with_6(make_disk: MakeDisk, broken: str) -> None:
    device, node = _windows_disk(make_disk)
    with Mount(node, Filesystem.NTFS) as root:
        if broken == "SYSTEM is no hive":
            (root / "Windows/System32/config/SYSTEM").write_bytes(os.urandom(8192))
        elif broken == "BCD is no hive":
            (root / "Boot/BCD").write_bytes(b"regf" + bytes(8188))
        else:
            write_minimal_hive(root / "Boot/BCD")
    with pytest.raises(OgError) as err:
        postconf.configure_os(device, 1, "aula1-pc07", grub=False, server=SERVER)
    assert isinstance(err.value, NotOsError) and int(err.value.code) == 6, err.value
    if broken != "SYSTEM is no hive":  # both hives are read before anything is written
        with Mount(node, Filesystem.NTFS, readonly=True) as root:
            key = "\\ControlSet001\\Control\\ComputerName\\ComputerName"
            name = _get(root / "Windows/System32/config/SYSTEM", key, "ComputerName")
            assert name.decode().strip() == "WIN-ORIGINAL"


def test_a_windows_whose_boot_manager_is_elsewhere_keeps_the_active_partition(
    make_disk: MakeDisk,
) -> None:
    """Windows 7's layout: bootmgr and the BCD on an active "System Reserved" 1:1, C: on 1:2.
    Moving the active flag to 1:2 would leave a disk with no boot manager to start."""
    loop = make_disk(
        128 * MIB,
        TableKind.MSDOS,
        [PartSpec(16 * MIB, Filesystem.NTFS), PartSpec(64 * MIB, Filesystem.NTFS)],
    )
    _make_windows(loop.device, loop.partition(2), 2)
    with Mount(loop.partition(2), Filesystem.NTFS) as root:
        (root / "bootmgr").unlink()
        (root / "Boot" / "BCD").unlink()
    disk.set_active(loop.device, 1)
    report = postconf.configure_os(loop.device, 2, "aula1-pc07", grub=False, server=SERVER)
    assert _active(loop.device) == [1]
    log = "\n".join(report.notes)
    assert "no boot manager on the partition" in log and "no boot configuration" in log, log


# --------------------------------------------------------------------------- UEFI


def _fat_read(node: str, rel: str, out: Path) -> bytes:
    subprocess.run(["mcopy", "-n", "-i", node, f"::/{rel}", str(out)], check=True)
    return out.read_bytes()


def test_windows_on_uefi_gets_its_boot_manager_on_the_esp(
    make_disk: MakeDisk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a live client booted by UEFI, configureOs copies the restored Windows' boot manager
    (Windows/Boot/EFI, Fonts) to the ESP's \\EFI\\Microsoft\\Boot and \\EFI\\Boot\\bootx64.efi,
    points the ESP's BCD store at the restored partition, and makes a firmware boot entry for
    bootmgfw.efi; an ESP without a BCD store is reported, not invented."""
    need("mkfs.vfat", "mcopy", "mmd", "mdir", "mdel", "sgdisk")
    from ogref.runtime import efiboot

    gpt = make_disk(
        160 * MIB,
        TableKind.GPT,
        [PartSpec(48 * MIB, Filesystem.FAT32), PartSpec(64 * MIB, Filesystem.NTFS)],
    )
    subprocess.run(["sgdisk", "-t", "1:EF00", gpt.device], check=True, capture_output=True)
    disk.reread(gpt.device)
    esp, node = gpt.partition(1), gpt.partition(2)
    subprocess.run(["mkfs.vfat", "-F", "32", esp], check=True, capture_output=True)
    _make_windows(gpt.device, node, 2)
    files = {
        "bootmgfw.efi": b"MZ bootmgfw " * 100,
        "bootmgr.efi": b"MZ bootmgr",
        "en-US/bootmgfw.efi.mui": b"mui",
    }
    with Mount(node, Filesystem.NTFS) as root:
        for rel, data in files.items():
            (root / "Windows/Boot/EFI" / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / "Windows/Boot/EFI" / rel).write_bytes(data)
        (root / "Windows/Boot/Fonts").mkdir()
        (root / "Windows/Boot/Fonts/wgl4_boot.ttf").write_bytes(b"font")
    # the ESP's BCD store as the master computer left it: its Windows on another disk
    old = _element({"label": "gpt", "part": uuid.uuid4(), "disk": uuid.uuid4()})
    write_bcd_store(tmp_path / "BCD", old, FOREIGN)
    for d in ("EFI", "EFI/Microsoft", "EFI/Microsoft/Boot"):
        subprocess.run(["mmd", "-i", esp, f"::/{d}"], check=True)
    subprocess.run(
        ["mcopy", "-i", esp, str(tmp_path / "BCD"), "::/EFI/Microsoft/Boot/"], check=True
    )
    made: list[tuple[str, int, str, str]] = []

    def add_entry(device: str, number: int, loader: str, label: str) -> tuple[str, object]:
        made.append((device, number, loader, label))
        return "0004", efiboot.BootEntries(order=["0001", "0004"])

    monkeypatch.setattr(efiboot, "active", lambda: True)
    monkeypatch.setattr(efiboot, "add_entry", add_entry)
    report = postconf.configure_os(gpt.device, 2, "aula1-pc07", grub=False, server=SERVER)
    assert made == [(gpt.device, 1, "\\EFI\\Microsoft\\Boot\\bootmgfw.efi", "ogLab aula1-pc07")]
    out = tmp_path / "out"
    out.mkdir()
    for rel, data in files.items():
        assert _fat_read(esp, f"EFI/Microsoft/Boot/{rel}", out / "f") == data, rel
        (out / "f").unlink()
    assert _fat_read(esp, "EFI/Microsoft/Boot/Fonts/wgl4_boot.ttf", out / "t") == b"font"
    assert _fat_read(esp, "EFI/Boot/bootx64.efi", out / "b") == files["bootmgfw.efi"]
    bcd = out / "BCD"
    _fat_read(esp, "EFI/Microsoft/Boot/BCD", bcd)
    here = _element(_where(gpt.device, node, 2))
    for obj, elements in ON_THE_PARTITION.items():
        for element in elements:
            assert _get(bcd, f"\\Objects\\{obj}\\Elements\\{element}", "Element") == here
    assert _get(bcd, f"\\Objects\\{FOREIGN_LOADER}\\Elements\\21000001", "Element") == FOREIGN
    log = "\n".join(report.notes)
    assert "Windows boot manager copied to the ESP" in log and "ESP BCD " in log, log
    assert "firmware boot entry Boot0004 'ogLab aula1-pc07'" in log
    # an ESP without a BCD store: the files are copied, the store is not invented
    subprocess.run(["mdel", "-i", esp, "::/EFI/Microsoft/Boot/BCD"], check=True)
    again = postconf.configure_os(gpt.device, 2, "aula1-pc07", grub=False, server=SERVER)
    assert any(n.startswith("no BCD store on the ESP: not created here") for n in again.notes)
    assert subprocess.run(["mdir", "-b", "-i", esp, "::/EFI/Microsoft/Boot/BCD"]).returncode
