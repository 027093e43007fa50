"""Disks, partition tables, partitions, filesystems and the client CACHE, as plain values.

Sizes are bytes.  These records describe what a computer's disk holds; they perform no I/O
(the real runtime reads them from devices, the simulator and the labs build them from scenarios).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from ogref.errors import FormatError


class Filesystem(StrEnum):
    """Filesystem types, spelled as OpenGnSys prints them."""

    EMPTY = "EMPTY"
    EXT2 = "EXT2"
    EXT3 = "EXT3"
    EXT4 = "EXT4"
    BTRFS = "BTRFS"
    XFS = "XFS"
    NTFS = "NTFS"
    FAT16 = "FAT16"
    FAT32 = "FAT32"
    EXFAT = "EXFAT"
    HFSPLUS = "HFSPLUS"
    F2FS = "F2FS"
    SWAP = "LINUX-SWAP"
    CACHE = "CACHE"

    @classmethod
    def parse(cls, text: str) -> Filesystem:
        """Parse a filesystem name case-insensitively (``vfat`` → FAT32, ``swap`` → LINUX-SWAP)."""
        key = text.strip().upper()
        key = {"VFAT": "FAT32", "FAT": "FAT32", "SWAP": "LINUX-SWAP", "HFS+": "HFSPLUS"}.get(
            key, key
        )
        try:
            return cls(key)
        except ValueError:
            known = ", ".join(f.value for f in cls)
            raise FormatError(f"unknown filesystem {text!r} (known: {known})") from None

    @property
    def family(self) -> str:
        """The OS family that usually lives on this filesystem (windows, linux, data…)."""
        if self in (Filesystem.NTFS,):
            return "windows"
        if self in (
            Filesystem.EXT2,
            Filesystem.EXT3,
            Filesystem.EXT4,
            Filesystem.BTRFS,
            Filesystem.XFS,
        ):
            return "linux"
        return "data"

    @property
    def shrinkable(self) -> bool:
        """Whether createImage can shrink it first (OpenGnSys ogReduceFs)."""
        return self in (
            Filesystem.EXT2,
            Filesystem.EXT3,
            Filesystem.EXT4,
            Filesystem.NTFS,
            Filesystem.BTRFS,
        )


class TableKind(StrEnum):
    """Partition table kinds."""

    MSDOS = "MSDOS"
    GPT = "GPT"


# MBR partition id of the OpenGnSys cache; on GPT the partition *name* is CACHE instead.
CACHE_MBR_ID = 0xCA
CACHE_LABEL = "CACHE"


@dataclass(frozen=True)
class Partition:
    """One partition: its number on the disk, size in bytes and current filesystem."""

    number: int
    size: int
    filesystem: Filesystem = Filesystem.EMPTY
    label: str = ""
    os_name: str = ""
    used: int = 0  # bytes of data in the filesystem; 0 when unknown

    def __post_init__(self) -> None:
        if self.number < 1:
            raise FormatError(f"partition numbers start at 1, got {self.number}")
        if self.size <= 0:
            raise FormatError(f"partition {self.number}: size must be positive")

    @property
    def is_cache(self) -> bool:
        """Whether this is the OpenGnSys CACHE partition."""
        return self.filesystem is Filesystem.CACHE or self.label == CACHE_LABEL


@dataclass(frozen=True)
class Disk:
    """A disk with its partition table."""

    number: int
    size: int
    table: TableKind = TableKind.MSDOS
    partitions: tuple[Partition, ...] = ()

    def __post_init__(self) -> None:
        numbers = [p.number for p in self.partitions]
        if len(set(numbers)) != len(numbers):
            raise FormatError(f"disk {self.number}: duplicate partition numbers {numbers}")
        if sum(p.size for p in self.partitions) > self.size:
            raise FormatError(f"disk {self.number}: partitions are larger than the disk")

    def partition(self, number: int) -> Partition | None:
        """The partition with that number, or None."""
        return next((p for p in self.partitions if p.number == number), None)


@dataclass(frozen=True)
class CachedImage:
    """An image file held in a CACHE: its size, whole-file checksum and whether it is complete.

    ``complete`` is False for an interrupted transfer that can be resumed (OpenGnSys marks an
    interrupted torrent with ``<img>.torrent.bf``); ``last_used`` orders eviction (larger = newer).
    ``same_tail``: another version whose last MiB still equals the repository image's, so that
    1.1.1d's UNICAST/MULTICAST check (``.sum``, the MD5 of the last MiB) takes it for current
    (§11 "stale_head"); ogLab compares whole files and sees a stale copy.

    A ``chunked`` copy is a manifest over the CACHE's chunk store: ``checksum`` is the manifest's
    digest, ``complete`` says that every chunk it names is in the store, and ``size`` is what
    deleting it frees — its chunks that no other cached image uses (the others are counted in
    :attr:`Cache.shared`).
    """

    name: str
    size: int
    checksum: str = ""
    complete: bool = True
    last_used: float = 0.0
    same_tail: bool = False
    chunked: bool = False


@dataclass(frozen=True)
class Cache:
    """A client's CACHE partition: total size and the images it holds.

    Free space is derived: size minus the images (``overhead`` accounts for filesystem metadata
    and any non-image files such as a cached ogLive; ``shared`` for the chunks of the CACHE's
    chunk store that no single cached image owns: chunks several chunked images share, and
    chunks an interrupted chunked update left, which the next update of that image reuses).
    """

    size: int
    images: tuple[CachedImage, ...] = ()
    overhead: int = 0
    disk: int = 1
    partition: int = 4
    shared: int = 0

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise FormatError("cache size must be positive")
        if self.used > self.size:
            raise FormatError(f"cache holds {self.used} bytes but is only {self.size} bytes large")

    @property
    def used(self) -> int:
        """Bytes taken by cached images, shared chunks and overhead."""
        return self.overhead + self.shared + sum(i.size for i in self.images)

    @property
    def free(self) -> int:
        """Free bytes."""
        return self.size - self.used

    def get(self, name: str) -> CachedImage | None:
        """The cached copy of an image, or None."""
        return next((i for i in self.images if i.name == name), None)

    def without(self, *names: str) -> Cache:
        """A copy of this cache with those images deleted."""
        return replace(self, images=tuple(i for i in self.images if i.name not in names))

    def with_image(self, image: CachedImage) -> Cache:
        """A copy with ``image`` added (replacing any copy of the same name)."""
        return replace(self, images=(*self.without(image.name).images, image))

    def emptied(self) -> Cache:
        """A copy with every image removed (what FORMAT or DELETE leaves)."""
        return replace(self, images=(), shared=0)


@dataclass(frozen=True)
class DiskLayout:
    """A computer's disks; disk 1 usually carries the CACHE as partition 4."""

    disks: tuple[Disk, ...] = field(default_factory=tuple)

    def disk(self, number: int) -> Disk | None:
        """The disk with that number, or None."""
        return next((d for d in self.disks if d.number == number), None)

    def partition(self, disk: int, part: int) -> Partition | None:
        """The partition ``disk:part``, or None."""
        d = self.disk(disk)
        return d.partition(part) if d else None
