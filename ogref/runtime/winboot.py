"""What a moved Windows needs to boot from its new partition (BIOS): the byte formats and the
hive access configureOs uses.  OpenGnSys does these with ``spartlnx`` (closed); the formats here
are the public, documented ones.

Partition location (:class:`Location`) — read with ``blkid -p`` (util-linux): the start in
512-byte sectors (``PART_ENTRY_OFFSET``), the scheme, and the disk's identity: the 4-byte MBR
disk signature (``PTUUID`` of a ``dos`` table, the bytes at 0x1B8 of sector 0) or the GPT disk
GUID (``PTUUID``) and partition GUID (``PART_ENTRY_UUID``).

Boot sector (``ogFixBootSector``): FAT and NTFS boot sectors hold the partition's start in the
BPB's *hidden sectors* field, a little-endian u32 at 0x1C, counted in the BPB's sectors (u16 at
0x0B).  The NTFS loader reads it to find its volume; a partition moved to another start does
not boot until it is rewritten.  NTFS keeps a backup boot sector in the last sector of the
partition (mkntfs and ntfsresize put it there; the volume's sector count, u64 at 0x28, is one
less or rounded down to a cluster); FAT32 in the sector that BPB_BkBootSec (u16 at 0x32) names.
Every copy found is rewritten.

MBR active flag: byte 0 of each 16-byte entry of the table at 0x1BE (0x80 active, 0x00 not).
The BIOS MBR code boots the (one) active primary partition.

BCD (``ogWindowsBootParameters``; a BCD store is a registry hive, ``\\Boot\\BCD`` on BIOS):
``\\Objects\\{GUID}\\Elements\\<id>\\Element``.  ``{bootmgr}`` is
``{9dea862c-5cdd-4e70-acc1-f32b344d4795}``; its element 23000003 names ``{default}``.  Elements
whose id has 1 in bits 24–27 hold a *device* (11000001 ``device``, 21000001 ``osdevice`` of a
loader, ``filedevice`` of a resume object, 31000003 ``ramdisksdidevice``) as REG_BINARY:
a 16-byte options GUID, then a device descriptor: type u32 (6 = partition), flags u32, length u32
(0x48), u32 0, then 16 bytes identifying the partition — its byte offset (u64, then zeros) on an
MBR disk, its GUID (little-endian GUID bytes) on GPT — a u32 local-device type (0, hard disk),
the partition style u32 (1 MBR, 0 GPT) and 16 bytes identifying the disk: the MBR signature (u32,
then zeros) or the disk GUID.  The same descriptor is nested inside ramdisk devices (WinRE's
``ramdisk=[C:]\\Recovery\\…``), so every descriptor in a device element is found by its shape,
not only the one at 0x10.  Layout from the public descriptions (mistyprojects' BCDEdit notes,
the ReactOS ``BL_DEVICE_DESCRIPTOR``), checked against the dump there (88 bytes, offset 0x20,
signature 0x38).

MountedDevices (``ogWindowsRegisterPartition … C``): ``SYSTEM\\MountedDevices``, value
``\\DosDevices\\C:`` = REG_BINARY: MBR disk signature (4 bytes) + partition offset in bytes
(u64), or ``DMIO:ID:`` + the partition GUID (little-endian GUID bytes) on GPT
(winreg-kb, "Mounted devices").

Hives are read with ``hivexregedit --export`` and written with ``hivexregedit --merge`` (hivex).
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from ogref.errors import NotExecError, NotOsError, NotWriteError, PartitionError
from ogref.runtime.proc import run

SECTOR = 512
BOOTMGR = "{9dea862c-5cdd-4e70-acc1-f32b344d4795}"
DEFAULT_ELEMENT = "23000003"  # {bootmgr}: the default loader's GUID (REG_SZ)
DESCRIPTION_ELEMENT = "12000004"
ELEMENT_NAMES = {"11000001": "device", "21000001": "osdevice", "31000003": "ramdisksdidevice"}
DEVICE_PARTITION = 6
DESCRIPTOR_LENGTH = 0x48
STYLE_GPT, STYLE_MBR = 0, 1
MBR_SIGNATURE_AT = 0x1B8
MBR_TABLE_AT = 0x1BE
MBR_ENTRY = 16
ACTIVE = 0x80
REG_SZ, REG_BINARY, REG_DWORD = 1, 3, 4
DOS_C = "\\DosDevices\\C:"
DMIO = b"DMIO:ID:"


# --------------------------------------------------------------------------- location


@dataclass(frozen=True)
class Location:
    """Where a partition is, as Windows identifies it."""

    scheme: str  # "dos" or "gpt"
    start: int  # in 512-byte sectors
    signature: int = 0  # MBR disk signature
    part_guid: uuid.UUID | None = None
    disk_guid: uuid.UUID | None = None

    @property
    def offset(self) -> int:
        return self.start * SECTOR

    def describe(self) -> str:
        if self.scheme == "gpt":
            return f"GPT disk {self.disk_guid} partition {self.part_guid}"
        return f"MBR disk {self.signature:08x} offset {self.offset}"


def _blkid(device: str) -> dict[str, str]:
    done = run(["blkid", "-p", "-o", "export", device], error=PartitionError, check=False)
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def locate(disk_device: str, node: str) -> Location:
    """The location of partition ``node`` of ``disk_device`` (PartitionError, 3, if unknown)."""
    part, whole = _blkid(node), _blkid(disk_device)
    scheme = part.get("PART_ENTRY_SCHEME", "")
    try:
        start = int(part["PART_ENTRY_OFFSET"])
        if scheme == "dos":  # blkid gives no PTUUID for a zero signature
            return Location("dos", start, signature=int(whole.get("PTUUID", "0"), 16))
        if scheme == "gpt":
            return Location(
                "gpt",
                start,
                part_guid=uuid.UUID(part["PART_ENTRY_UUID"]),
                disk_guid=uuid.UUID(whole["PTUUID"]),
            )
    except (KeyError, ValueError) as exc:
        raise PartitionError(f"{node}: cannot tell where the partition is ({exc})") from None
    raise PartitionError(f"{node}: partition table {scheme or 'unknown'} is neither MBR nor GPT")


def ensure_signature(disk_device: str) -> int:
    """Give an MBR disk whose signature (u32 at 0x1B8) is 0 a random one; the new signature,
    0 if it had one.  Windows identifies its disk by it (BCD, MountedDevices) and writes one of
    its own at first boot when there is none, which would no longer match."""
    try:
        fd = os.open(disk_device, os.O_RDWR)
    except OSError as exc:
        raise NotWriteError(f"{disk_device}: cannot open the MBR for writing: {exc}") from None
    try:
        mbr = os.pread(fd, SECTOR, 0)
        if mbr[510:512] != b"\x55\xaa" or struct.unpack_from("<I", mbr, MBR_SIGNATURE_AT)[0]:
            return 0
        signature = 0
        while signature == 0:
            signature = int.from_bytes(os.urandom(4), "little")
        os.pwrite(fd, struct.pack("<I", signature), MBR_SIGNATURE_AT)
        os.fsync(fd)
        return signature
    except OSError as exc:
        raise NotWriteError(f"{disk_device}: writing the MBR failed: {exc}") from None
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- boot sector


def _boot_kind(sector: bytes) -> str:
    if len(sector) < SECTOR or sector[510:512] != b"\x55\xaa":
        return ""
    if sector[3:11] == b"NTFS    ":
        return "NTFS"
    if sector[0x52:0x57] == b"FAT32" or sector[0x36:0x39] == b"FAT":
        return "FAT"
    return ""


def hidden_sectors(node: str) -> int:
    """The boot sector's hidden-sectors field (PartitionError, 3, if not FAT/NTFS)."""
    with open(node, "rb") as f:
        sector = f.read(SECTOR)
    if not _boot_kind(sector):
        raise PartitionError(f"{node}: no FAT or NTFS boot sector")
    return int(struct.unpack_from("<I", sector, 0x1C)[0])


def fix_boot_sector(node: str, start: int) -> tuple[int, int, list[str]]:
    """Write ``start`` (512-byte sectors) into the hidden-sectors field of the boot sector and
    its backup: (old value, new value, the copies written).  PartitionError (3) when the
    partition holds no FAT/NTFS boot sector (ogFixBootSector's OG_ERR_PARTITION)."""
    try:
        fd = os.open(node, os.O_RDWR)
    except OSError as exc:
        raise NotWriteError(f"{node}: cannot open the boot sector for writing: {exc}") from None
    try:
        sector = os.pread(fd, SECTOR, 0)
        kind = _boot_kind(sector)
        if not kind:
            raise PartitionError(f"{node}: no FAT or NTFS boot sector (ogFixBootSector)")
        bps = struct.unpack_from("<H", sector, 0x0B)[0] or SECTOR
        new = start * SECTOR // bps
        old = int(struct.unpack_from("<I", sector, 0x1C)[0])
        copies = [0]
        if kind == "NTFS":  # the last sector of the partition; the volume's end if not there
            last = os.lseek(fd, 0, os.SEEK_END) // bps - 1
            copies += sorted({last, int(struct.unpack_from("<Q", sector, 0x28)[0])} - {0})
        elif struct.unpack_from("<H", sector, 0x16)[0] == 0:  # FAT32: BPB_FATSz16 is 0
            backup = struct.unpack_from("<H", sector, 0x32)[0]
            if 0 < backup < 0xFFFF:
                copies.append(backup)
        written = []
        for at in copies:
            data = bytearray(os.pread(fd, bps, at * bps))
            if _boot_kind(bytes(data[:SECTOR])) != kind:
                continue  # no backup there (a truncated volume): only the primary is fixed
            struct.pack_into("<I", data, 0x1C, new)
            os.pwrite(fd, bytes(data), at * bps)
            written.append("boot sector" if at == 0 else f"backup at sector {at}")
        os.fsync(fd)
    except OSError as exc:
        raise NotWriteError(f"{node}: writing the boot sector failed: {exc}") from None
    finally:
        os.close(fd)
    return old, new, written


# --------------------------------------------------------------------------- MBR active flag


def active_partitions(disk_device: str) -> list[int]:
    """Primary partitions (1–4) whose MBR entry has the active flag."""
    with open(disk_device, "rb") as f:
        mbr = f.read(SECTOR)
    return [n for n in range(1, 5) if mbr[MBR_TABLE_AT + MBR_ENTRY * (n - 1)] & ACTIVE]


def set_only_active(disk_device: str, number: int) -> list[int]:
    """Make primary ``number`` the one active partition (byte 0 of each MBR entry); the
    partitions whose flag was cleared.  PartitionError (3) for a logical partition."""
    if not 1 <= number <= 4:
        raise PartitionError(
            f"{disk_device}: partition {number} is not primary; the MBR boots primaries only"
        )
    try:
        fd = os.open(disk_device, os.O_RDWR)
    except OSError as exc:
        raise NotWriteError(f"{disk_device}: cannot open the MBR for writing: {exc}") from None
    try:
        mbr = bytearray(os.pread(fd, SECTOR, 0))
        if mbr[510:512] != b"\x55\xaa":
            raise PartitionError(f"{disk_device}: no MBR")
        cleared = []
        for n in range(1, 5):
            at = MBR_TABLE_AT + MBR_ENTRY * (n - 1)
            flag = ACTIVE if n == number else 0
            if n != number and mbr[at] & ACTIVE:
                cleared.append(n)
            mbr[at] = flag
        os.pwrite(fd, bytes(mbr), 0)
        os.fsync(fd)
    except OSError as exc:
        raise NotWriteError(f"{disk_device}: writing the MBR failed: {exc}") from None
    finally:
        os.close(fd)
    return cleared


# --------------------------------------------------------------------------- device formats


def identity(loc: Location) -> bytes:
    """The 40 bytes of a BCD partition descriptor after its 16-byte header: partition, local
    device type (0), style, disk."""
    if loc.scheme == "gpt":
        assert loc.part_guid is not None and loc.disk_guid is not None
        return loc.part_guid.bytes_le + struct.pack("<II", 0, STYLE_GPT) + loc.disk_guid.bytes_le
    return struct.pack("<Q8xII", loc.offset, 0, STYLE_MBR) + struct.pack("<I12x", loc.signature)


def device_element(loc: Location) -> bytes:
    """A whole BCD ``partition=`` device element (88 bytes) for ``loc``."""
    body = struct.pack("<IIII", DEVICE_PARTITION, 0, DESCRIPTOR_LENGTH, 0) + identity(loc)
    return bytes(16) + body + bytes(DESCRIPTOR_LENGTH - len(body))


def describe_identity(ident: bytes) -> str:
    style = struct.unpack_from("<I", ident, 20)[0]
    if style == STYLE_MBR:
        offset = struct.unpack_from("<Q", ident, 0)[0]
        return f"MBR disk {struct.unpack_from('<I', ident, 24)[0]:08x} offset {offset}"
    return f"GPT disk {uuid.UUID(bytes_le=ident[24:40])} partition {uuid.UUID(bytes_le=ident[:16])}"


def partition_descriptors(blob: bytes) -> list[int]:
    """Offsets of every partition descriptor (header first) in a device element, nested ones
    included: type 6, length ≥ 0x38, local hard disk, style MBR or GPT."""
    found = []
    for at in range(0x10, len(blob) - 0x38 + 1, 4):
        kind, _flags, length = struct.unpack_from("<III", blob, at)
        local, style = struct.unpack_from("<II", blob, at + 0x20)
        if kind == DEVICE_PARTITION and length >= 0x38 and local == 0 and style in (0, 1):
            found.append(at)
    return found


def descriptor_identity(blob: bytes, at: int) -> bytes:
    return blob[at + 0x10 : at + 0x38]


def replace_identity(blob: bytes, old: bytes, new: bytes) -> tuple[bytes, int]:
    """``blob`` with every descriptor identifying ``old`` rewritten to ``new``; how many."""
    out, count = bytearray(blob), 0
    for at in partition_descriptors(blob):
        if descriptor_identity(blob, at) == old:
            out[at + 0x10 : at + 0x38] = new
            count += 1
    return bytes(out), count


def mounted_device_value(loc: Location) -> bytes:
    """``\\DosDevices\\C:``'s data for ``loc``."""
    if loc.scheme == "gpt":
        assert loc.part_guid is not None
        return DMIO + loc.part_guid.bytes_le
    return struct.pack("<IQ", loc.signature, loc.offset)


def is_device_element(name: str) -> bool:
    """An element id whose format (bits 24–27) is 1, a device."""
    return bool(re.fullmatch(r"[0-9a-fA-F]{8}", name)) and (int(name, 16) >> 24) & 0xF == 1


# --------------------------------------------------------------------------- hives

Values = dict[str, tuple[int, bytes]]
Tree = dict[str, Values]

_KEY = re.compile(r"^\[(.*)\]$")
_VALUE = re.compile(r'^(@|"((?:[^"\\]|\\.)*)")=(.*)$')


def _unescape(name: str) -> str:
    return re.sub(r"\\(.)", r"\1", name)


def _escape(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')


def _data(text: str) -> tuple[int, bytes]:
    m = re.fullmatch(r"hex(?:\(([0-9a-fA-F]+)\))?:(.*)", text)
    if m:
        kind = int(m.group(1), 16) if m.group(1) else REG_BINARY
        raw = m.group(2).replace(",", "").replace("\\", "").strip()
        return kind, bytes.fromhex(raw)
    if text.startswith("dword:"):
        return REG_DWORD, struct.pack("<I", int(text[6:], 16))
    if text.startswith('"') and text.endswith('"'):
        return REG_SZ, (_unescape(text[1:-1]) + "\0").encode("utf-16-le")
    raise ValueError(f"unknown value format {text[:40]!r}")


def export(hive: Path, key: str = "\\") -> Tree:
    """Every key under ``key`` with its values, read by ``hivexregedit --export``.  NotOsError
    (6) if hivex cannot read the file as a hive or the key does not exist."""
    done = run(["hivexregedit", "--export", str(hive), key], error=NotExecError, check=False)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["?"])[-1]
        raise NotOsError(f"{hive.name}: not a readable registry hive or no key {key} ({why})")
    tree: Tree = {}
    current: Values | None = None
    pending = ""
    for raw in done.stdout.splitlines():
        line = pending + raw.strip()
        if line.endswith("\\") and "=hex" in line:
            pending = line[:-1]
            continue
        pending = ""
        m = _KEY.match(line)
        if m:
            current = tree.setdefault(m.group(1), {})
            continue
        v = _VALUE.match(line)
        if v and current is not None:
            name = "" if v.group(1) == "@" else _unescape(v.group(2))
            current[name] = _data(v.group(3))
    return tree


def reg_value(name: str, kind: int, data: bytes | None) -> str:
    """One .reg line (``data`` None deletes the value)."""
    left = "@" if name == "" else f'"{_escape(name)}"'
    if data is None:
        return f"{left}=-"
    return f"{left}=hex({kind:x}):" + ",".join(f"{b:02x}" for b in data)


def check_writable(hive: Path) -> None:
    """NotWriteError (14) unless ``hive`` can be opened for writing (a read-only file or a
    read-only mount) — checked before hivex rewrites it."""
    try:
        with open(hive, "r+b"):
            pass
    except OSError as exc:
        raise NotWriteError(f"{hive.name} cannot be written: {exc.strerror or exc}") from None


def merge(hive: Path, keys: dict[str, list[str]]) -> None:
    """Write ``keys`` (key → .reg value lines) into ``hive`` with ``hivexregedit --merge``."""
    check_writable(hive)
    lines = ["Windows Registry Editor Version 5.00", ""]
    for key, values in keys.items():
        lines += [f"[{key}]", *values, ""]
    with tempfile.NamedTemporaryFile("w", suffix=".reg", encoding="utf-8") as f:
        f.write("\n".join(lines))
        f.flush()
        run(["hivexregedit", "--merge", str(hive), f.name], error=NotExecError, what="hivexregedit")


def text_value(data: bytes) -> str:
    """A REG_SZ as text (UTF-16LE, up to the first NUL)."""
    return data.decode("utf-16-le", errors="replace").split("\0", 1)[0]


# --------------------------------------------------------------------------- BCD


@dataclass
class BcdChange:
    obj: str
    element: str
    old: str
    new: str


def bcd_old_identity(tree: Tree) -> bytes | None:
    """The partition the store's boot entries point at now: the first partition descriptor of
    ``{default}``'s osdevice (21000001) or device (11000001), else ``{bootmgr}``'s device."""
    root = "\\Objects\\"
    default = tree.get(f"{root}{BOOTMGR}\\Elements\\{DEFAULT_ELEMENT}", {}).get("Element")
    candidates = []
    if default is not None:
        guid = text_value(default[1]).lower()
        candidates += [f"{root}{guid}\\Elements\\21000001", f"{root}{guid}\\Elements\\11000001"]
    candidates.append(f"{root}{BOOTMGR}\\Elements\\11000001")
    by_lower = {k.lower(): v for k, v in tree.items()}
    for key in candidates:
        value = by_lower.get(key.lower(), {}).get("Element")
        if value is None:
            continue
        found = partition_descriptors(value[1])
        if found:
            return descriptor_identity(value[1], found[0])
    return None


def read_bcd(hive: Path) -> Tree:
    """The ``\\Objects`` of BCD store ``hive``; NotOsError (6) if it is no hive or has no
    ``{bootmgr}`` object."""
    tree = export(hive, "\\Objects")
    if not any(k.lower() == f"\\objects\\{BOOTMGR}" for k in tree):
        raise NotOsError(f"{hive.name}: a hive without the {{bootmgr}} object is not a BCD store")
    return tree


def fix_bcd(hive: Path, loc: Location) -> list[str]:
    """Point every device element of the BCD store ``hive`` that names the partition its boot
    entries use now at ``loc``; notes of what changed.  NotOsError (6) for a hive that is not a
    BCD store (no ``\\Objects``, no ``{bootmgr}``); NotWriteError (14) if it cannot be written."""
    tree = read_bcd(hive)
    old = bcd_old_identity(tree)
    new = identity(loc)
    if old is None:
        return ["BCD: no partition device in {default} or {bootmgr} (boot/locate): unchanged"]
    if old == new:
        return [f"BCD: already on {loc.describe()}"]
    writes: dict[str, list[str]] = {}
    notes = []
    for key, values in sorted(tree.items()):
        parts = key.split("\\")
        if len(parts) != 5 or parts[3] != "Elements" or not is_device_element(parts[4]):
            continue
        value = values.get("Element")
        if value is None or value[0] != REG_BINARY:
            continue
        blob, count = replace_identity(value[1], old, new)
        if count:
            writes[key] = [reg_value("Element", REG_BINARY, blob)]
            desc = tree.get(f"\\Objects\\{parts[2]}\\Elements\\{DESCRIPTION_ELEMENT}", {})
            label = text_value(desc["Element"][1]) if "Element" in desc else parts[2]
            element = (
                f"{parts[4]} ({ELEMENT_NAMES[parts[4]]})" if parts[4] in ELEMENT_NAMES else parts[4]
            )
            notes.append(
                f"BCD {label} element {element}: {describe_identity(old)} → {loc.describe()}"
            )
    if writes:
        merge(hive, writes)
    else:
        notes.append("BCD: no device element names the old partition: unchanged")
    return notes


# --------------------------------------------------------------------------- MountedDevices


def register_c(hive: Path, loc: Location) -> list[str]:
    """``\\DosDevices\\C:`` = ``loc`` in the SYSTEM hive; another drive letter that held the
    same volume is removed (one volume, one letter).  Notes of what changed."""
    try:
        values = export(hive, "\\MountedDevices").get("\\MountedDevices", {})
    except NotOsError:
        export(hive, "\\Select")  # NotOsError too when the file is no hive at all
        values = {}
    new = mounted_device_value(loc)
    old = values.get(DOS_C)
    lines = []
    notes = []
    if old is None or old[1] != new:
        lines.append(reg_value(DOS_C, REG_BINARY, new))
        was = _describe_mounted(old[1]) if old is not None else "none"
        notes.append(f"MountedDevices {DOS_C}: {was} → {loc.describe()}")
    for name, (_kind, data) in sorted(values.items()):
        if name != DOS_C and name.startswith("\\DosDevices\\") and data == new:
            lines.append(reg_value(name, REG_BINARY, None))
            notes.append(f"MountedDevices {name} removed (it was the same volume as C:)")
    if lines:
        merge(hive, {"\\MountedDevices": lines})
    else:
        notes.append(f"MountedDevices {DOS_C}: already {loc.describe()}")
    return notes


def _describe_mounted(data: bytes) -> str:
    if data.startswith(DMIO) and len(data) == 24:
        return f"GPT partition {uuid.UUID(bytes_le=data[8:])}"
    if len(data) == 12:
        signature, offset = struct.unpack("<IQ", data)
        return f"MBR disk {signature:08x} offset {offset}"
    return f"{len(data)} bytes"


# --------------------------------------------------------------------------- boot.ini, OGAgent


def rewrite_boot_ini(text: str, disk: int, partition: int) -> str:
    """boot.ini's ARC paths on ``rdisk(disk-1)`` ``partition(partition)``, as OpenGnSys's sed."""
    text = re.sub(r"partition\([0-9]\)", f"partition({partition})", text)
    return re.sub(r"rdisk\([0-9]\)", f"rdisk({disk - 1})", text)


def rewrite_ogagent_cfg(text: str, server: str) -> str:
    """``remote=`` (its first occurrence) pointed at ``https://server/opengnsys/rest/``, as
    ``ogConfigureOgagent``'s sed."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        at = line.find("remote=")
        if at >= 0:
            end = "\r\n" if line.endswith("\r\n") else ("\n" if line.endswith("\n") else "")
            lines[i] = line[:at] + f"remote=https://{server}/opengnsys/rest/" + end
            break
    return "".join(lines)


# --------------------------------------------------------------------------- boot check


def boot_mismatches(loc: Location, node: str, system: Path, bcd: Path | None) -> list[str]:
    """Why a BIOS would not start this Windows from ``loc`` (empty: its boot data agree):
    the boot sector's hidden sectors, the BCD's ``{default}`` partition, ``\\DosDevices\\C:``
    (each checked where present).  Read-only."""
    problems = []
    hidden = hidden_sectors(node)
    if hidden != loc.start:
        problems.append(
            f"the boot sector says the partition starts at sector {hidden}, it starts at "
            f"{loc.start}"
        )
    if bcd is not None:
        old = bcd_old_identity(export(bcd, "\\Objects"))
        if old is not None and old != identity(loc):
            problems.append(f"the BCD boots {describe_identity(old)}, not {loc.describe()}")
    try:
        mounted = export(system, "\\MountedDevices").get("\\MountedDevices", {})
    except NotOsError:
        mounted = {}
    c = mounted.get(DOS_C)
    if c is not None and c[1] != mounted_device_value(loc):
        problems.append(f"C: is {_describe_mounted(c[1])}, not {loc.describe()}")
    return problems
