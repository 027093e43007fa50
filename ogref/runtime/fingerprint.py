"""What a partition holds, remembered between two writes: a filesystem's fingerprint and the
record of the image ogref last wrote there (or made from there).

A restore of a differential image onto its base may skip the check of every used block (read
and hash) when the partition provably has not changed since ogref restored or created the base:

- the **fingerprint** is the BLAKE3 of the ext2/3/4 superblock (1024 bytes at offset 1024).
  The kernel rewrites it on every read-write mount (mount time, mount count, write time, free
  counts, lifetime kilobytes written, its checksum), and so do ``e2fsck`` repairs,
  ``tune2fs``, ``resize2fs`` and ``mkfs``: a filesystem changed through any of them no longer
  has the fingerprint it had.  NTFS and FAT have no such counter in a fixed place (FAT has
  none at all), so they have no fingerprint here and always get the full check.
- the **record** (``held-DEV.json`` in the machine's lock directory, beside the partition
  lock) says which image ogref wrote on ``DEV`` and the fingerprint the partition had right
  after.  Every ogref write onto a partition goes through
  :func:`ogref.runtime.restore.guarded_write`, which *takes* the record (reads it and deletes
  it durably) before anything is written; it is written again only after a restore that
  succeeded and was flushed.  An interrupted or failed write therefore leaves no record, and
  the next restore checks every block.

What it does not cover: raw writes to the block device by something other than ogref (``dd``,
another imaging tool, ``debugfs -w``) that leave the superblock byte for byte as it was.  That
is the deliberate trade (docs/chunked-images.md, docs/deviations.md); ``--full-check`` (or
``use_record=False``) restores with the full check regardless.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import blake3

_EXT_SUPERBLOCK = 1024
_EXT_MAGIC_AT = 0x38


def of(device: str) -> str | None:
    """The filesystem's fingerprint on ``device`` (None: no ext2/3/4 superblock there)."""
    try:
        fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return of_fd(fd)
    finally:
        os.close(fd)


def of_fd(fd: int) -> str | None:
    """:func:`of` through an open descriptor of the device."""
    try:
        block = os.pread(fd, 1024, _EXT_SUPERBLOCK)
    except OSError:
        return None
    if len(block) < 1024 or block[_EXT_MAGIC_AT : _EXT_MAGIC_AT + 2] != b"\x53\xef":
        return None
    return "ext:" + blake3.blake3(block).hexdigest()


@dataclass(frozen=True)
class Held:
    """The image ogref last wrote on (or made from) a partition, and the fingerprint it left."""

    fingerprint: str
    name: str
    digest: str


def record_path(lock_dir: Path, device: str) -> Path:
    return lock_dir / ("held-" + device.strip("/").replace("/", "-") + ".json")


def take(lock_dir: Path, device: str) -> Held | None:
    """The partition's record, deleted durably (the partition is about to be written)."""
    path = record_path(lock_dir, device)
    try:
        doc = json.loads(path.read_bytes())
        held = Held(str(doc["fingerprint"]), str(doc["name"]), str(doc["digest"]))
    except (OSError, ValueError, KeyError, TypeError):
        held = None
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        _sync_dir(path.parent)
    return held


def remember(lock_dir: Path, device: str, name: str, digest: str) -> Held | None:
    """Record that ``device`` now holds image ``name`` (manifest ``digest``), with its current
    fingerprint; nothing when the filesystem has none.  Call only after a complete, flushed
    write (or a create: the partition is what the image holds)."""
    fp = of(device)
    if fp is None:
        return None
    held = Held(fp, name, digest)
    path = record_path(lock_dir, device)
    try:
        lock_dir.mkdir(parents=True, exist_ok=True)
        staged = path.with_suffix(".new")
        staged.write_text(json.dumps(held.__dict__))
        with open(staged, "rb") as f:
            os.fsync(f.fileno())
        os.replace(staged, path)
        _sync_dir(path.parent)
    except OSError:
        return None  # no record: the next restore checks every block
    return held


def _sync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
