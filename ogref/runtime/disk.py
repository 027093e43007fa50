"""Partition tables with pyparted: MBR and GPT layouts, the CACHE partition, the active flag.

Partitions are placed 1 MiB-aligned in the order given; a partition may ask for its number
(OpenGnSys puts the CACHE at the *end* of disk 1 as partition 4 even when 3 is unused).  The
CACHE partition is made exactly as OpenGnSys's initCache makes it: MBR id ``0xca`` (written into
the table entry, libparted has no name for it) or, on GPT, a Linux-data partition *named*
``CACHE``.  ``read_disk`` turns a device back into the model's :class:`~ogref.model.Disk`
(an MBR extended partition is left out of it; its logical partitions 5, 6… are in it).
Filesystems are made elsewhere (:mod:`ogref.runtime.filesystem`).
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from typing import Any

from ogref.errors import NotExecError, PartitionError
from ogref.model.storage import (
    CACHE_LABEL,
    CACHE_MBR_ID,
    Disk,
    Filesystem,
    Partition,
    TableKind,
)
from ogref.runtime import filesystem
from ogref.runtime.loopdev import partition_path, wait_for_node
from ogref.runtime.proc import require, run
from ogref.units import MIB

_MBR_TABLE = 446
EXTENDED_IDS = (0x05, 0x0F, 0x85)
"""MBR ids of an extended partition: a container of logical partitions (5, 6…), no filesystem."""
_MBR_ENTRY = 16
_ALIGN = MIB


def _parted() -> Any:
    try:
        import parted
    except ImportError:
        raise NotExecError("pyparted is not installed (pip install '.[lab]')") from None
    return parted


@dataclass(frozen=True)
class PartSpec:
    """One partition to create: ``size`` bytes (0 = the rest of the disk), optional fixed number."""

    size: int
    filesystem: Filesystem = Filesystem.EMPTY
    name: str = ""
    number: int = 0


_SYSTEM = {
    Filesystem.NTFS: "ntfs",
    Filesystem.FAT32: "fat32",
    Filesystem.FAT16: "fat16",
    Filesystem.SWAP: "linux-swap(v1)",
    Filesystem.EXT4: "ext4",
    Filesystem.EXT3: "ext3",
    Filesystem.EXT2: "ext2",
}


class _Table:
    """An open pyparted disk being edited (commit with :meth:`commit`)."""

    def __init__(self, device: str, fresh: TableKind | None) -> None:
        parted = _parted()
        self.parted = parted
        self.path = device
        # libparted caches devices by path: a loop device re-attached to another file would keep
        # its old size, so the cache is dropped first.  It may only be freed once no Python
        # object still points into it (every public function here returns plain data; the
        # explicit collect clears reference cycles), else a later GC touches freed memory.
        gc.collect()
        parted.freeAllDevices()
        try:
            self.dev = parted.getDevice(device)
            if fresh is not None:
                self.disk = parted.freshDisk(
                    self.dev, "msdos" if fresh is TableKind.MSDOS else "gpt"
                )
            else:
                self.disk = parted.newDisk(self.dev)
        except parted.PartedException as exc:
            raise PartitionError(f"{device}: {exc}") from None
        self.kind = TableKind.GPT if self.disk.type == "gpt" else TableKind.MSDOS
        self.sector = self.dev.sectorSize

    def _add(self, start: int, length: int, spec: PartSpec) -> Any:
        parted = self.parted
        geom = parted.Geometry(self.dev, start=start, length=length)
        fs = None
        if spec.filesystem in _SYSTEM:
            fs = parted.FileSystem(type=_SYSTEM[spec.filesystem], geometry=geom)
        part = parted.Partition(disk=self.disk, type=parted.PARTITION_NORMAL, geometry=geom, fs=fs)
        self.disk.addPartition(part, constraint=parted.Constraint(exactGeom=geom))
        return part

    def add(self, start: int, length: int, spec: PartSpec) -> int:
        """Add a partition at sectors [start, start+length) with the number ``spec`` asks for."""
        used = {p.number for p in self.disk.partitions}
        placeholders = []
        if spec.number:
            if spec.number in used:
                raise PartitionError(f"{self.path}: partition {spec.number} already exists")
            if self.kind is TableKind.MSDOS and spec.number > 4:
                raise PartitionError("MBR primary partitions are numbered 1-4")
            # libparted numbers a new partition with the lowest free number: occupy the lower
            # free numbers with one-sector placeholders in the alignment gap, then drop them.
            gap = 40
            for n in range(1, spec.number):
                if n not in used:
                    placeholders.append(self._add(gap, 1, PartSpec(1)))
                    gap += 1
        try:
            part = self._add(start, length, spec)
        finally:
            for ph in placeholders:
                self.disk.deletePartition(ph)
        if spec.number and part.number != spec.number:
            raise PartitionError(f"{self.path}: got partition {part.number}, wanted {spec.number}")
        if spec.name and self.kind is TableKind.GPT:
            part.getPedPartition().set_name(spec.name)
        return int(part.number)

    def free_end(self) -> int:
        """The last usable sector + 1."""
        if self.kind is TableKind.GPT:
            return int(self.dev.length) - 34
        return int(self.dev.length)

    def next_start(self) -> int:
        """The first aligned sector after every partition."""
        end = _ALIGN // self.sector
        for p in self.disk.partitions:
            end = max(end, p.geometry.end + 1)
        align = _ALIGN // self.sector
        return -(-end // align) * align

    def close(self) -> None:
        """Drop this table's libparted objects."""
        self.disk = None
        self.dev = None

    def __enter__(self) -> _Table:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def commit(self) -> None:
        try:
            self.disk.commit()
        except self.parted.PartedException as exc:
            raise PartitionError(f"{self.path}: cannot write the partition table: {exc}") from None


def _set_mbr_id(device: str, number: int, type_id: int) -> None:
    with open(device, "r+b") as f:
        f.seek(_MBR_TABLE + _MBR_ENTRY * (number - 1) + 4)
        f.write(bytes([type_id]))
        f.flush()
        os.fsync(f.fileno())


def write_table(device: str, table: TableKind, specs: list[PartSpec]) -> list[int]:
    """Write a fresh partition table with ``specs`` in order; return the partition numbers."""
    with _Table(device, table) as t:
        return _write(t, device, specs)


def _write(t: _Table, device: str, specs: list[PartSpec]) -> list[int]:
    numbers = []
    for i, spec in enumerate(specs):
        start = t.next_start()
        if spec.size:
            length = spec.size // t.sector
        else:
            if i != len(specs) - 1:
                raise PartitionError("only the last partition may take the rest of the disk")
            length = t.free_end() - start
        if length <= 0 or start + length > t.free_end():
            raise PartitionError(f"{device}: partition {i + 1} does not fit the disk")
        numbers.append(t.add(start, length, spec))
    t.commit()
    for n in numbers:
        wait_for_node(partition_path(device, n))
    return numbers


def add_cache_partition(device: str, size: int, number: int = 4) -> str:
    """Create the OpenGnSys CACHE partition of ``size`` bytes at the end of ``device``.

    MBR: id 0xca; GPT: Linux data named CACHE.  Returns the partition node (not yet formatted).
    """
    t = _Table(device, None)
    align = _ALIGN // t.sector
    end = t.free_end()
    start = (end - size // t.sector) // align * align
    if start < t.next_start():
        raise PartitionError(f"{device}: no room for a {size}-byte CACHE at the end of the disk")
    t.add(start, end - start, PartSpec(end - start, name=CACHE_LABEL, number=number))
    t.commit()
    if t.kind is TableKind.MSDOS:
        _set_mbr_id(device, number, CACHE_MBR_ID)
    node = partition_path(device, number)
    wait_for_node(node)
    return node


def delete_partition(device: str, number: int) -> None:
    """Remove partition ``number`` from the table."""
    t = _Table(device, None)
    part: Any = None
    for p in t.disk.partitions:
        if p.number == number:
            part = p
    if part is None:
        raise PartitionError(f"{device}: no partition {number}")
    t.disk.deletePartition(part)
    t.commit()


def partition_entries(device: str) -> list[tuple[int, int, str, str]]:
    """``(number, size in bytes, GPT name, MBR type id as hex)`` for each partition."""
    t = _Table(device, None)
    out = []
    for p in t.disk.partitions:
        name = ""
        if t.kind is TableKind.GPT:
            name = p.getPedPartition().get_name() or ""
        type_id = ""
        if t.kind is TableKind.MSDOS and p.number <= 4:
            with open(device, "rb") as f:
                f.seek(_MBR_TABLE + _MBR_ENTRY * (p.number - 1) + 4)
                type_id = f"{f.read(1)[0]:02x}"
        elif t.kind is TableKind.MSDOS:  # a logical partition: its id is in its EBR
            type_id = _logical_type_id(device, int(p.number))
        out.append((int(p.number), int(p.geometry.length) * t.sector, name, type_id))
    return out


def _logical_type_id(device: str, number: int) -> str:
    """The MBR type id of logical partition ``number`` (``sfdisk --part-type``), 2 hex digits."""
    done = run(
        [require("sfdisk"), "--part-type", device, str(number)],
        error=PartitionError,
        what=f"read the type of partition {number} of {device}",
    )
    return f"{int(done.stdout.strip(), 16):02x}"


def reread(device: str) -> None:
    """Make the kernel show the table now on ``device``: BLKRRPART, then ``partx -u`` (BLKPG,
    partition by partition), which also works where a re-read is refused or the kernel has no
    parser for the table (the lab's kernel has no MBR parser), then ``partx -a`` for the logical
    partitions ``-u`` leaves out when the kernel knew none beyond the primaries (it complains,
    harmlessly, about those already there)."""
    run(["blockdev", "--rereadpt", device], error=PartitionError, check=False)
    run(["partx", "-u", device], error=PartitionError, check=False)
    run(["partx", "-a", device], error=PartitionError, check=False)


def table_kind(device: str) -> TableKind:
    """MSDOS or GPT."""
    return _Table(device, None).kind


def set_active(device: str, number: int) -> None:
    """Mark ``number`` bootable/active (configureOs does this when no partition is)."""
    t = _Table(device, None)
    for p in t.disk.partitions:
        if p.number == number:
            p.setFlag(t.parted.PARTITION_BOOT)
    t.commit()


def has_active(device: str) -> bool:
    """Whether some partition carries the boot/active flag."""
    t = _Table(device, None)
    return any(p.getFlag(t.parted.PARTITION_BOOT) for p in t.disk.partitions)


def is_extended(type_id: str) -> bool:
    """Whether an MBR type id (hex, as :func:`partition_entries` gives it) is an extended one."""
    return bool(type_id) and int(type_id, 16) in EXTENDED_IDS


def is_cache_entry(name: str, type_id: str, label: str) -> bool:
    """OpenGnSys's ogFindCache test: label, GPT name CACHE, or MBR id ca/a7."""
    return label == CACHE_LABEL or name == CACHE_LABEL or type_id in ("ca", "a7")


def read_disk(device: str, number: int = 1) -> Disk:
    """The model :class:`Disk` of ``device``: sizes, filesystems, labels, the CACHE."""
    kind = table_kind(device)
    parts = []
    for n, size, name, type_id in partition_entries(device):
        if is_extended(type_id):
            continue  # the container: its logical partitions are listed themselves
        node = partition_path(device, n)
        info = filesystem.probe(node)
        fs = filesystem.detect(node)
        label = info.get("LABEL", "")
        if is_cache_entry(name, type_id, label):
            fs, label = Filesystem.CACHE, CACHE_LABEL
        parts.append(Partition(n, size, fs, label))
    return Disk(number, filesystem.device_size(device), kind, tuple(parts))
