"""partclone adapter: the clone and restore argv for a filesystem, and the image header.

The header is read from the binary ``partclone-image`` v2 structure at the start of the stream
(filesystem, device size, block size, used blocks) instead of parsing ``partclone.info``'s text
by column as OpenGnSys does.  Starting the processes is :mod:`ogref.runtime.proc`'s job.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from ogref.errors import ImageFileError
from ogref.model.storage import Filesystem

MAGIC = b"partclone-image\x00"
# magic[16] ptc_version[14] version[4] endianess:u16 fs[16] device_size:u64 totalblock:u64
# usedblocks:u64 used_bitmap:u64 block_size:u32 feature_size:u32 image_version:u16 cpu_bits:u16
# checksum_mode:u16 checksum_size:u16 blocks_per_checksum:u32 reseed:u8 bitmap_mode:u8 crc:u32
_V2 = struct.Struct("<16s14s4sH16sQQQQIIHHHHIBBI")
HEADER_SIZE = _V2.size
_FEATURE_SIZE = 18  # the image_options_v2 structure's size
_ENDIAN_OK = 0xC0DE
CRC_SEED = 0xFFFFFFFF


def crc32(data: bytes | memoryview, seed: int = CRC_SEED) -> int:
    """partclone's CRC32 (the header's, the bitmap's and the data's): zlib's without the final
    inversion, continued from ``seed``."""
    return zlib.crc32(data, seed ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


_TOOL = {
    Filesystem.EXT2: "extfs",
    Filesystem.EXT3: "extfs",
    Filesystem.EXT4: "extfs",
    Filesystem.NTFS: "ntfs",
    Filesystem.FAT16: "fat",
    Filesystem.FAT32: "fat",
    Filesystem.BTRFS: "btrfs",
    Filesystem.XFS: "xfs",
    Filesystem.EXFAT: "exfat",
    Filesystem.HFSPLUS: "hfsp",
    Filesystem.F2FS: "f2fs",
}

# partclone's own filesystem names in the header → the model's
_HEADER_FS = {
    "EXTFS": Filesystem.EXT4,
    "EXT2": Filesystem.EXT2,
    "EXT3": Filesystem.EXT3,
    "EXT4": Filesystem.EXT4,
    "NTFS": Filesystem.NTFS,
    "FAT32": Filesystem.FAT32,
    "FAT16": Filesystem.FAT16,
    "FAT12": Filesystem.FAT16,
    "FAT": Filesystem.FAT32,
    "BTRFS": Filesystem.BTRFS,
    "XFS": Filesystem.XFS,
    "EXFAT": Filesystem.EXFAT,
    "HFS PLUS": Filesystem.HFSPLUS,
    "HFSPLUS": Filesystem.HFSPLUS,
    "F2FS": Filesystem.F2FS,
}


def program(fs: Filesystem) -> str:
    """The partclone binary for ``fs`` (``partclone.dd`` when none fits, as OpenGnSys)."""
    name = _TOOL.get(fs)
    if name and shutil.which(f"partclone.{name}"):
        return f"partclone.{name}"
    return "partclone.dd"


# partclone's progress thread sleeps ``-f`` seconds per round (default 2) and is joined before
# the output is closed, so every run ends on the next tick: up to that long idle at the end.
# ogref reads progress from /proc, not from partclone, and asks for the shortest tick that does
# not spin (``-f 0`` busy-loops a CPU).
QUIET = ("-q", "-f", "1")


def clone_argv(fs: Filesystem, device: str, logfile: str) -> list[str]:
    """Clone ``device`` (filesystem ``fs``) to stdout.

    ``-I`` (as ogClient): ntfsresize leaves NTFS flagged for a check; createImage has already
    checked the filesystem itself.
    """
    tool = program(fs)
    head = [tool, "-c", "-I"] if tool != "partclone.dd" else [tool]
    return [*head, *QUIET, "-s", device, "-o", "-", "-L", logfile]


@contextlib.contextmanager
def run_log(kind: str) -> Iterator[str]:
    """The path of partclone's ``-L`` log for one run (``ogref-partclone-<kind>-<pid>.log`` in
    the temp directory): removed when the block ends normally, kept when it raises — the
    exception gets a note naming it — so failures leave their log and successes leave nothing."""
    path = os.path.join(tempfile.gettempdir(), f"ogref-partclone-{kind}-{os.getpid()}.log")
    try:
        yield path
    except BaseException as exc:
        if os.path.exists(path):
            exc.add_note(f"partclone log: {path}")
        raise
    with contextlib.suppress(OSError):
        os.unlink(path)


def restore_argv(device: str, logfile: str) -> list[str]:
    """Restore a partclone stream from stdin onto ``device`` (the size check is kept on)."""
    return ["partclone.restore", *QUIET, "-s", "-", "-o", device, "-L", logfile]


@dataclass(frozen=True)
class Header:
    """The fields of a partclone image header that matter to ogref."""

    version: str
    fs_name: str
    device_size: int
    block_size: int
    total_blocks: int
    used_blocks: int
    checksum_size: int = 0  # bytes of each CRC written into the data (0: none, ``-a0``)
    blocks_per_checksum: int = 0
    reseed: bool = True  # each CRC starts afresh (partclone's default)
    bitmap_mode: int = 1  # 1: one bit per block, the only mode ogref reads

    @property
    def filesystem(self) -> Filesystem:
        return _HEADER_FS.get(self.fs_name.upper(), Filesystem.EMPTY)

    @property
    def used_bytes(self) -> int:
        return self.used_blocks * self.block_size

    def pack(self) -> bytes:
        """This header as a partclone v2 image header without data checksums (``-a0``),
        its own CRC included: what ``partclone.restore`` reads first."""
        body = _V2.pack(
            MAGIC,
            self.version.encode("ascii")[:13],
            b"0002",
            _ENDIAN_OK,
            self.fs_name.encode("ascii")[:15],
            self.device_size,
            self.total_blocks,
            self.used_blocks,
            self.used_blocks,
            self.block_size,
            _FEATURE_SIZE,
            2,
            64,
            0,
            0,
            0,
            1,
            1,
            0,
        )
        return body[:-4] + struct.pack("<I", crc32(body[:-4]))

    @classmethod
    def parse(cls, data: bytes) -> Header:
        """Parse the first :data:`HEADER_SIZE` bytes of a stream; ImageFileError (33) if invalid."""
        if len(data) < HEADER_SIZE or not data.startswith(MAGIC):
            raise ImageFileError("not a partclone image stream (bad magic)")
        f = _V2.unpack_from(data)
        image_version = f[2].decode("ascii", "replace")
        if image_version != "0002":
            raise ImageFileError(f"partclone image format {image_version!r} is not supported")
        if f[3] != _ENDIAN_OK:
            raise ImageFileError("partclone image from a machine of another byte order")
        fs_name = f[4].split(b"\x00")[0].decode("ascii", "replace")
        header = cls(
            version=f[1].split(b"\x00")[0].decode("ascii", "replace"),
            fs_name=fs_name,
            device_size=f[5],
            block_size=f[9],
            total_blocks=f[6],
            used_blocks=f[7],
            checksum_size=f[14] if f[13] else 0,
            blocks_per_checksum=f[15],
            reseed=bool(f[16]),
            bitmap_mode=f[17],
        )
        if (
            header.block_size <= 0
            or header.device_size <= 0
            or header.used_blocks > header.total_blocks
        ):
            raise ImageFileError("partclone image header is inconsistent")
        return header
