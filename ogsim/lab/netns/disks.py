"""Client disks of the lab: a sparse file per computer attached as a loop device and partitioned
as the scenario says (system partitions with their filesystems, plus the CACHE when it has one).

Sizes are the scenario's multiplied by the lab scale (at least 8 MiB per partition).  A cache
whose scenario says ``free: X`` gets a filler file so that about X (scaled) stays free, so the
core's admission decisions see the same shortage as in the scenario.  Each loop device is
recorded in the manifest (with its backing file) before it is attached.  Uses the runtime's
partitioning and mkfs code; formats only.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ogref.model import Computer, Filesystem
from ogref.runtime import disk as rdisk
from ogref.runtime import filesystem
from ogref.runtime.cachefs import CachePartition
from ogref.runtime.loopdev import partition_path
from ogref.units import MIB
from ogsim.lab.manifest import Manifest

MIN_PART = 16 * MIB
MIN_CACHE = 24 * MIB


def scaled(size: int, scale: float, floor: int = MIN_PART) -> int:
    """``size × scale`` rounded up to whole MiB, at least ``floor``."""
    return max(floor, -(-int(size * scale) // MIB) * MIB)


@dataclass(frozen=True)
class ClientDisk:
    """A computer's disk 1 in the lab."""

    computer: str
    device: str
    backing: Path
    partitions: dict[int, Filesystem]
    cache_node: str | None


def attach(manifest: Manifest, backing: Path, size: int) -> str:
    """Create a sparse file of ``size`` and attach it with ``losetup -P``; the device."""
    manifest.record("file", str(backing))
    with open(backing, "wb") as f:
        f.truncate(size)
    free = subprocess.run(["losetup", "-f"], capture_output=True, text=True, check=True).stdout
    device = free.strip()
    manifest.record("loopdev", device, extra={"backing": str(backing)})
    done = subprocess.run(
        ["losetup", "-P", "--show", device, str(backing)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        # another process took that device between -f and attach: attach anywhere, record it
        device = subprocess.run(
            ["losetup", "-P", "-f", "--show", str(backing)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        manifest.record("loopdev", device, extra={"backing": str(backing)})
    return device


def build_disk(
    manifest: Manifest,
    pc: Computer,
    scale: float,
    work: Path,
    cache_root: Path,
    *,
    fill_cache: bool = True,
    before_fill: Callable[[Path], None] | None = None,
) -> ClientDisk:
    """Make, attach, partition and format ``pc``'s disk 1 (plus its CACHE); ``before_fill`` is
    given the CACHE's image directory before the filler is written (cached images go there)."""
    layout = next((d for d in pc.disks.disks if d.number == 1), None) if pc.disks.disks else None
    parts = sorted(layout.partitions, key=lambda p: p.number) if layout else []
    specs = [rdisk.PartSpec(scaled(p.size, scale), p.filesystem, number=p.number) for p in parts]
    cache_size = scaled(pc.cache.size, scale, MIN_CACHE) if pc.cache else 0
    total = sum(s.size for s in specs) + cache_size + 4 * MIB
    backing = work / f"{pc.name}.disk"
    device = attach(manifest, backing, total)
    table = layout.table if layout else rdisk.TableKind.MSDOS
    numbers = rdisk.write_table(device, table, specs)
    fss: dict[int, Filesystem] = {}
    for n, p in zip(numbers, parts, strict=True):
        if p.filesystem not in (Filesystem.EMPTY, Filesystem.CACHE):
            filesystem.make(partition_path(device, n), p.filesystem)
        fss[n] = p.filesystem
    cache_node = None
    if pc.cache is not None:
        cache_node = rdisk.add_cache_partition(device, cache_size - MIB)
        cache = CachePartition(cache_node, cache_root)
        manifest.record("mount", str(cache_root))
        try:
            cache.format()  # formats and mounts
            if before_fill is not None:
                before_fill(cache.images_dir)
            if fill_cache and pc.cache.free < pc.cache.size:
                want_free = int(pc.cache.free * scale)
                have = cache.free()
                if have > want_free:
                    with open(cache.root / "filler.bin", "wb") as f:
                        os.posix_fallocate(f.fileno(), 0, have - want_free)
        finally:
            cache.unmount()
    return ClientDisk(pc.name, device, backing, fss, cache_node)
