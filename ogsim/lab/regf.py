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


def write_system_hive(path: Path, name: str = "WIN-ORIGINAL", current: int = 1) -> None:
    """A SYSTEM hive holding what configureOs and an emulated boot read: ``Select\\Current``,
    the computer name and the Tcpip host name, in ``ControlSet00<current>`` (hivex adds them)."""
    write_minimal_hive(path)
    reg = path.with_name(path.name + ".skeleton.reg")
    text = SYSTEM_SKELETON.format(current=current, name=name)
    reg.write_text(text, encoding="utf-8")
    try:
        subprocess.run(
            ["hivexregedit", "--merge", str(path), str(reg)], check=True, capture_output=True
        )
    finally:
        reg.unlink()
