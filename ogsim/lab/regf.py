"""A minimal Windows registry hive (``regf``) writer, for the labs' synthetic Windows systems
and the tests that need a SYSTEM hive.

Writes the smallest file hivex accepts and can grow: the 4 KiB base block (``regf``, sequence
numbers equal, version 1.3, root cell offset, hive-bins size, XOR checksum of the first 508
bytes) and one 4 KiB ``hbin`` holding a security cell (``sk``, a self-relative descriptor with a
NULL DACL), the root key (``nk``, flags hive-entry | no-delete | ASCII name) and one free cell.
Layout from the public format description (Windows registry file format specification,
msuhanov/regf); nothing of Microsoft's is copied.  Keys and values are then added with hivex
itself (``hivexregedit --merge``).  It is not a registry library.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

_BLOCK = 0x1000
_HBIN_HEADER = 0x20
_NONE = 0xFFFFFFFF
_ROOT_FLAGS = 0x0004 | 0x0008 | 0x0020  # KEY_HIVE_ENTRY | KEY_NO_DELETE | KEY_COMP_NAME


def _cell(payload: bytes) -> bytes:
    """An allocated cell: negative size (8-byte aligned, size field included), then data."""
    size = (4 + len(payload) + 7) // 8 * 8
    return struct.pack("<i", -size) + payload + bytes(size - 4 - len(payload))


def minimal_hive(root_name: str = "ROOT", file_name: str = "SYSTEM") -> bytes:
    """The bytes of an empty hive (root key only)."""
    descriptor = struct.pack("<BBHIIII", 1, 0, 0x8004, 0, 0, 0, 0)  # SE_SELF_RELATIVE|DACL
    sk_off = _HBIN_HEADER
    # sk: signature, reserved, flink, blink (itself: the only one), refcount, size, descriptor
    sk = _cell(struct.pack("<2sHIIII", b"sk", 0, sk_off, sk_off, 1, len(descriptor)) + descriptor)
    nk_off = sk_off + len(sk)
    name = root_name.encode("ascii")
    nk = _cell(
        struct.pack(
            "<2sHQIIIIIIIIIIIIIIIHH",
            b"nk",
            _ROOT_FLAGS,
            0,
            0,
            _NONE,  # parent
            0,
            0,
            _NONE,
            _NONE,  # subkeys, volatile subkeys, their lists
            0,
            _NONE,  # values and their list
            sk_off,
            _NONE,  # security, class name
            0,
            0,
            0,
            0,
            0,  # max lengths, work var
            len(name),
            0,
        )
        + name
    )
    body = sk + nk
    free = _BLOCK - _HBIN_HEADER - len(body)
    hbin = (
        struct.pack("<4sII8sQI", b"hbin", 0, _BLOCK, bytes(8), 0, 0)
        + body
        + struct.pack("<i", free)
        + bytes(free - 4)
    )
    head = bytearray(_BLOCK)
    # signature, seq1 = seq2, timestamp, major 1, minor 3, primary file, direct memory load,
    # root cell, hive bins size, clustering factor
    struct.pack_into("<4sIIQIIIIIII", head, 0, b"regf", 1, 1, 0, 1, 3, 0, 1, nk_off, _BLOCK, 1)
    label = file_name.encode("utf-16-le")[:64]
    head[0x30 : 0x30 + len(label)] = label
    checksum = 0
    for (word,) in struct.iter_unpack("<I", bytes(head[:0x1FC])):
        checksum ^= word
    struct.pack_into("<I", head, 0x1FC, checksum)
    return bytes(head) + hbin


def write_minimal_hive(path: Path) -> None:
    path.write_bytes(minimal_hive(file_name=path.name))


SYSTEM_SKELETON = """Windows Registry Editor Version 5.00

[\\Select]
"Current"=dword:{current:08x}

[\\ControlSet00{current}]

[\\ControlSet00{current}\\Control]

[\\ControlSet00{current}\\Control\\ComputerName]

[\\ControlSet00{current}\\Control\\ComputerName\\ComputerName]
"ComputerName"="{name}"

[\\ControlSet00{current}\\Services]

[\\ControlSet00{current}\\Services\\Tcpip]

[\\ControlSet00{current}\\Services\\Tcpip\\Parameters]
"Hostname"="{name}"
"Domain"="aula.local"
"""


def write_system_hive(
    path: Path,
    name: str = "WIN-ORIGINAL",
    current: int = 1,
    mounted: dict[str, bytes] | None = None,
) -> None:
    """A SYSTEM hive holding what configureOs and an emulated boot read: ``Select\\Current``,
    the computer name and the Tcpip host name, in ``ControlSet00<current>`` (hivex adds them),
    and ``MountedDevices`` values (name → REG_BINARY data) when given."""
    write_minimal_hive(path)
    text = SYSTEM_SKELETON.format(current=current, name=name)
    if mounted is not None:
        text += "\n[\\MountedDevices]\n" + "".join(
            f'"{_reg_name(k)}"={_hex(v)}\n' for k, v in mounted.items()
        )
    _merge(path, text)


def _reg_name(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')


def _hex(data: bytes) -> str:
    return "hex(3):" + ",".join(f"{b:02x}" for b in data)


def _merge(path: Path, text: str) -> None:
    reg = path.with_name(path.name + ".skeleton.reg")
    reg.write_text(text, encoding="utf-8")
    try:
        subprocess.run(
            ["hivexregedit", "--merge", str(path), str(reg)], check=True, capture_output=True
        )
    finally:
        reg.unlink()


BOOTMGR = "{9dea862c-5cdd-4e70-acc1-f32b344d4795}"
MEMDIAG = "{b2721d73-1db4-4c62-bf78-c548a880142d}"
DEFAULT_LOADER = "{4a1e5f0c-7d0b-11ee-9c3a-000000000001}"
RESUME = "{4a1e5f0c-7d0b-11ee-9c3a-000000000002}"
FOREIGN_LOADER = "{4a1e5f0c-7d0b-11ee-9c3a-000000000003}"


def bcd_objects(device: bytes, foreign: bytes | None = None) -> dict[str, tuple[int, dict]]:
    """The objects of a BIOS BCD store (GUID → (type, element id → value)): ``{bootmgr}``
    (device, description, 23000003 = ``{default}``), a Windows loader (device, path,
    description, osdevice 21000001, systemroot), its resume object and the memory tester, all on
    ``device`` (an 88-byte partition device element); with ``foreign``, a second loader on
    another partition, which a restore must leave alone.  Values: bytes = REG_BINARY, str =
    REG_SZ."""
    objects: dict[str, tuple[int, dict]] = {
        BOOTMGR: (
            0x10100002,
            {"11000001": device, "12000004": "Windows Boot Manager", "23000003": DEFAULT_LOADER},
        ),
        DEFAULT_LOADER: (
            0x10200003,
            {
                "11000001": device,
                "12000002": "\\Windows\\system32\\winload.exe",
                "12000004": "Windows 10",
                "21000001": device,
                "22000002": "\\Windows",
            },
        ),
        RESUME: (
            0x10200004,
            {"11000001": device, "12000004": "Windows Resume Application", "21000001": device},
        ),
        MEMDIAG: (0x10200005, {"11000001": device, "12000004": "Windows Memory Diagnostic"}),
    }
    if foreign is not None:
        objects[FOREIGN_LOADER] = (
            0x10200003,
            {"11000001": foreign, "12000004": "Windows 7 (other disk)", "21000001": foreign},
        )
    return objects


def write_bcd_store(path: Path, device: bytes, foreign: bytes | None = None) -> None:
    """A BCD store (a registry hive) with :func:`bcd_objects`, written by hivex: ``\\Objects\\
    {GUID}\\Description\\Type`` (dword) and ``\\Objects\\{GUID}\\Elements\\<id>\\Element``."""
    path.write_bytes(minimal_hive(root_name="NewStoreRoot", file_name=path.name))
    lines = [
        "Windows Registry Editor Version 5.00",
        "",
        "[\\Description]",
        '"KeyName"="BCD00000000"',
    ]
    lines += ["", "[\\Objects]", ""]
    for guid, (kind, elements) in bcd_objects(device, foreign).items():
        key = f"\\Objects\\{guid}"
        lines += [f"[{key}]", "", f"[{key}\\Description]", f'"Type"=dword:{kind:08x}', ""]
        lines += [f"[{key}\\Elements]", ""]
        for element, value in elements.items():
            data = _hex(value) if isinstance(value, bytes) else f'"{_reg_name(value)}"'
            lines += [f"[{key}\\Elements\\{element}]", f'"Element"={data}', ""]
    _merge(path, "\n".join(lines) + "\n")
