"""The byte formats configureOs writes for a moved Windows (:mod:`ogref.runtime.winboot`),
checked against published dumps, not against themselves.

- BCD ``partition=`` device element on an MBR disk: the 88-byte dump of mistyprojects' BCDEdit
  notes ("Devices Partition - Data": Windows 8.1 on ``partition=C:``, offset 0x15f00000 =
  368050176 bytes, disk signature b3eba8f1 at MBR 0x1B8).
- MountedDevices data: 12 bytes signature + offset (MBR), ``DMIO:ID:`` + GUID (GPT), from
  winreg-kb "Mounted devices".
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import uuid
from pathlib import Path

import pytest

from ogref.errors import NotOsError, PartitionError
from ogref.runtime import winboot
from ogref.runtime.winboot import Location

# the published dump, byte for byte
MISTY_MBR = bytes.fromhex(
    "00000000000000000000000000000000"
    "06000000000000004800000000000000"
    "0000f015000000000000000000000000"
    "0000000001000000f1a8ebb300000000"
    "00000000000000000000000000000000"
    "0000000000000000"
)


def test_mbr_device_element_is_the_published_dump() -> None:
    loc = Location("dos", 368050176 // 512, signature=0xB3EBA8F1)
    assert len(MISTY_MBR) == 88
    assert winboot.device_element(loc) == MISTY_MBR
    assert winboot.partition_descriptors(MISTY_MBR) == [0x10]
    assert winboot.describe_identity(winboot.descriptor_identity(MISTY_MBR, 0x10)) == (
        "MBR disk b3eba8f1 offset 368050176"
    )


def test_gpt_device_element_puts_the_guids_where_mbr_puts_offset_and_signature() -> None:
    part = uuid.UUID("9ffca3b2-9157-4b1f-b543-8b85164753ce")
    disk = uuid.UUID("ca600753-2f08-443d-b590-f51a763e10b9")
    blob = winboot.device_element(Location("gpt", 34816, part_guid=part, disk_guid=disk))
    assert len(blob) == 88
    assert blob[0x20:0x30] == part.bytes_le  # mixed-endian: b2a3fc9f 5791 1f4b …
    assert blob[0x20:0x24] == bytes.fromhex("b2a3fc9f")
    assert struct.unpack_from("<II", blob, 0x30) == (0, 0)  # hard disk, GPT style
    assert blob[0x38:0x48] == disk.bytes_le


def test_mounted_devices_values() -> None:
    mbr = winboot.mounted_device_value(Location("dos", 2048, signature=0x499A15D7))
    assert mbr == bytes.fromhex("d7159a49") + (2048 * 512).to_bytes(8, "little")
    part = uuid.UUID("9ffca3b2-9157-4b1f-b543-8b85164753ce")
    gpt = winboot.mounted_device_value(Location("gpt", 2048, part_guid=part, disk_guid=part))
    assert gpt == b"DMIO:ID:" + part.bytes_le and len(gpt) == 24


def test_nested_descriptors_are_rewritten_only_when_they_name_the_old_partition() -> None:
    old = Location("dos", 2048, signature=0x11111111)
    other = Location("dos", 2048, signature=0x22222222)
    new = Location("dos", 34816, signature=0x11111111)
    # a ramdisk-like element: a header, a path, then a nested partition descriptor
    nested = (
        bytes(16)
        + struct.pack("<IIII", 3, 0, 0x90, 0)
        + b"\x01\x00\x00\x00"
        + winboot.device_element(old)[0x10:]
        + "\\sources\\boot.wim".encode("utf-16-le")
    )
    blob = winboot.device_element(old) + nested
    blob_other = winboot.device_element(other)
    got, count = winboot.replace_identity(blob, winboot.identity(old), winboot.identity(new))
    assert count == 2
    assert winboot.identity(old) not in got and got.count(winboot.identity(new)) == 2
    assert got.endswith("\\sources\\boot.wim".encode("utf-16-le"))  # the rest is kept
    same, none = winboot.replace_identity(blob_other, winboot.identity(old), winboot.identity(new))
    assert none == 0 and same == blob_other


def test_device_element_ids() -> None:
    assert winboot.is_device_element("11000001") and winboot.is_device_element("21000001")
    assert winboot.is_device_element("31000003")
    assert not winboot.is_device_element("12000004")  # a string (description)
    assert not winboot.is_device_element("23000003")  # an object (default)
    assert not winboot.is_device_element("Description")


def test_ogagent_cfg_only_the_first_remote_line_changes() -> None:
    text = "[opengnsys]\r\nremote=https://10.0.0.1/opengnsys/rest/\r\n# remote=old\r\nlog=INFO\r\n"
    got = winboot.rewrite_ogagent_cfg(text, "192.168.2.10")
    assert got == (
        "[opengnsys]\r\nremote=https://192.168.2.10/opengnsys/rest/\r\n# remote=old\r\nlog=INFO\r\n"
    )
    assert winboot.rewrite_ogagent_cfg("log=INFO\n", "x") == "log=INFO\n"


def test_boot_ini_arc_paths() -> None:
    text = (
        "[boot loader]\ndefault=multi(0)disk(0)rdisk(0)partition(1)\\WINDOWS\n"
        '[operating systems]\nmulti(0)disk(0)rdisk(0)partition(1)\\WINDOWS="XP" /fastdetect\n'
    )
    got = winboot.rewrite_boot_ini(text, 2, 3)
    assert got.count("rdisk(1)partition(3)") == 2 and "partition(1)" not in got


def test_hidden_sectors_refuses_what_is_not_fat_or_ntfs(tmp_path: Path) -> None:
    blank = tmp_path / "blank"
    blank.write_bytes(bytes(4096))
    with pytest.raises(PartitionError) as err:
        winboot.fix_boot_sector(str(blank), 2048)
    assert int(err.value.code) == 3
    assert blank.read_bytes() == bytes(4096)


def test_fix_boot_sector_writes_primary_and_ntfs_backup(tmp_path: Path) -> None:
    vol = bytearray(8 * 512)
    boot = bytearray(512)
    boot[3:11] = b"NTFS    "
    struct.pack_into("<H", boot, 0x0B, 512)
    struct.pack_into("<I", boot, 0x1C, 63)
    struct.pack_into("<Q", boot, 0x28, 7)  # backup in sector 7 (the one after the volume)
    boot[510:512] = b"\x55\xaa"
    vol[0:512] = boot
    vol[7 * 512 : 8 * 512] = boot
    f = tmp_path / "ntfs"
    f.write_bytes(bytes(vol))
    old, new, copies = winboot.fix_boot_sector(str(f), 34816)
    assert (old, new) == (63, 34816) and copies == ["boot sector", "backup at sector 7"]
    data = f.read_bytes()
    assert struct.unpack_from("<I", data, 0x1C)[0] == 34816
    assert struct.unpack_from("<I", data, 7 * 512 + 0x1C)[0] == 34816
    assert winboot.hidden_sectors(str(f)) == 34816


def test_export_refuses_a_file_that_is_no_hive(tmp_path: Path) -> None:
    if shutil.which("hivexregedit") is None:
        pytest.skip("missing tools: hivexregedit (libwin-hivex-perl)")
    junk = tmp_path / "BCD"
    junk.write_bytes(b"regf" + bytes(8188))
    with pytest.raises(NotOsError) as err:
        winboot.export(junk, "\\Objects")
    assert int(err.value.code) == 6


def test_a_zero_mbr_signature_gets_a_random_one(tmp_path: Path) -> None:
    if shutil.which("sfdisk") is None or shutil.which("blkid") is None:
        pytest.skip("missing tools: sfdisk, blkid (util-linux)")
    img = tmp_path / "disk.img"
    img.write_bytes(bytes(8 * 1024 * 1024))
    table = "label: dos\nlabel-id: 0x0\nstart=2048, type=7\n"
    subprocess.run(["sfdisk", "-q", str(img)], input=table, text=True, check=True)
    assert img.read_bytes()[0x1B8:0x1BC] == bytes(4)
    before = img.read_bytes()
    signature = winboot.ensure_signature(str(img))
    after = img.read_bytes()
    assert signature != 0 and after[0x1B8:0x1BC] == struct.pack("<I", signature)
    assert after[:0x1B8] == before[:0x1B8] and after[0x1BC:] == before[0x1BC:]  # nothing else
    probe = subprocess.run(
        ["blkid", "-p", "-o", "export", str(img)], capture_output=True, text=True
    )
    assert f"PTUUID={signature:08x}" in probe.stdout
    assert winboot.ensure_signature(str(img)) == 0  # one already: left alone
