"""Client pipelines: how fast a computer can absorb image bytes (disk write, decompression, stalls).

Restoring is a pipeline (network → decompress → disk), so its rate is the minimum of its stages;
a disk that spends a fraction ``stall`` of its time ``stall_factor`` times slower (flushes,
remapping, other I/O) writes on average at ``w·((1-f) + f/k)``.  Rates are bytes per second of
the *stored* (compressed) stream unless the name says otherwise.  No timing or events here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ogref.model import Image
from ogsim.hardware import HostHw


@dataclass
class DiskState:
    """A computer's disk as faults leave it: ``slowdown`` ≥ 1 divides every disk rate."""

    hw: HostHw
    slowdown: float = 1.0

    def stall_mean(self) -> float:
        """Average fraction of the nominal write rate kept through slow spells."""
        f, k = self.hw.stall, self.hw.stall_factor
        return (1.0 - f) + f / k

    @property
    def write(self) -> float:
        return self.hw.write_rate / self.slowdown

    @property
    def random_write(self) -> float:
        return self.hw.random_write_rate / self.slowdown

    @property
    def read(self) -> float:
        return self.hw.read_rate / self.slowdown


def ratio(image: Image) -> float:
    """Stored bytes per data byte of an image (≤ 1 for compressed images)."""
    return image.stored_size / max(1, image.data_size)


def direct_restore_rate(disk: DiskState, image: Image, stall_keep: float | None = None) -> float:
    """Stored-stream rate a restore straight from the network can absorb (decompress + write)."""
    keep = disk.stall_mean() if stall_keep is None else stall_keep
    data_rate = min(disk.write * keep, disk.hw.decompress_rate)
    return data_rate * ratio(image)


def sync_bytes(disk: DiskState, image: Image) -> float:
    """Data still unwritten when a restore straight from the network has received its last byte:
    partclone's final sync writes it (at most the kernel's dirty limit, ``hw.disk.dirty``)."""
    return min(float(image.data_size), disk.hw.dirty_bytes)


def cache_write_rate(
    disk: DiskState, random: bool = False, stall_keep: float | None = None
) -> float:
    """Stored-stream rate a fetch into the CACHE can absorb (sequential or torrent-random)."""
    keep = disk.stall_mean() if stall_keep is None else stall_keep
    return (disk.random_write if random else disk.write) * keep


def cache_restore_rate(disk: DiskState, image: Image) -> float:
    """Data rate of restoring from the local CACHE: read, decompress and write overlap."""
    r = ratio(image)
    return min(
        disk.read / r if r > 0 else disk.read,
        disk.hw.decompress_rate,
        disk.write * disk.stall_mean(),
    )


CHUNKED_THREADS = 2
"""Threads a chunked restore decompresses and hashes with (ogref uses every CPU it may; a
classroom PC and the lab host have at least two)."""


def chunked_restore_rate(disk: DiskState, image: Image) -> float:
    """Data rate of restoring a chunked image from the CACHE: its chunks read, decompressed and
    re-hashed by :data:`CHUNKED_THREADS` threads and written at their offsets.  A differential
    image is restored in place: every used block is first read back from the partition and
    hashed (the partition is taken to hold none of its chunks, so every chunk is then written)."""
    r = ratio(image)
    write = min(
        disk.read / r if r > 0 else disk.read,
        disk.hw.decompress_rate * CHUNKED_THREADS,
        disk.write * disk.stall_mean(),
    )
    if not image.base:
        return write
    return 1.0 / (1.0 / disk.read + 1.0 / write)


def slowest_keep(disks: list[DiskState]) -> float:
    """Fraction of the nominal rate a group paced to its slowest member keeps through stalls.

    The group runs at full speed only while *no* member is in a slow spell (probability
    ``Π(1-f_i)``), otherwise at the slowest stalled member's speed: this is how N creeps into
    multicast time when receivers are paced together (udpcast slices, Windows DS "None").
    """
    calm = 1.0
    worst = 1.0
    for d in disks:
        calm *= 1.0 - d.hw.stall
        if d.hw.stall > 0:
            worst = max(worst, d.hw.stall_factor)
    return calm + (1.0 - calm) / worst
