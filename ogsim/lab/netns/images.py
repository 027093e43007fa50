"""Source images of a lab run: a reference partition filled with synthetic files, imaged into
the repository with the runtime's createImage (partclone + compressor, sidecars, ``.torrent``
naming the lab's tracker), and its file-tree hash kept to verify every restore.

The data size is the scenario's ``data`` times the scale; the fraction of incompressible bytes
follows the scenario's ``stored / data``, so the stored image has about the scaled stored size.
The reference disk is a loop device recorded in the manifest.  Restoring is not done here.
"""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ogref.model import Filesystem, Image
from ogref.runtime import create, filesystem, imagefile
from ogref.runtime import disk as rdisk
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.loopdev import partition_path
from ogref.units import MIB
from ogsim.lab.manifest import Manifest
from ogsim.lab.netns.disks import attach
from ogsim.lab.netns.tree import hash_partition
from ogsim.lab.regf import write_system_hive

FILE_SIZE = 2 * MIB


@dataclass(frozen=True)
class SourceImage:
    """An image made for the run, with what verifies its restores."""

    image: Image
    tree_hash: str
    files: int
    create_seconds: float


def fill(root: Path, data: int, incompressible: float, rng: random.Random) -> None:
    """Write about ``data`` bytes of files under ``root`` (part random, part text-like)."""
    written = 0
    i = 0
    while written < data:
        size = min(FILE_SIZE, data - written)
        d = root / "data" / f"d{i // 16:03d}"
        d.mkdir(parents=True, exist_ok=True)
        rand = int(size * incompressible)
        body = rng.randbytes(rand) + (b"ogLab filler line %08d\n" % i) * ((size - rand) // 24 + 1)
        (d / f"f{i:05d}.bin").write_bytes(body[:size])
        written += size
        i += 1


def make_source(
    manifest: Manifest,
    store: ImageStore,
    name: str,
    fs: Filesystem,
    data: int,
    stored: int,
    work: Path,
    tracker: str,
    seed: int,
    piece: int = imagefile.TORRENT_PIECE,
    windows: bool = False,
    chunked: bool = False,
) -> SourceImage:
    """Build a reference partition of ``data`` bytes and image it into ``store`` as ``name``;
    a ``windows`` (NTFS) one also holds a SYSTEM hive (``Windows/System32/config/SYSTEM``), so
    configureOs names the restored system and the emulated boot reads that name back; ``chunked``
    also converts it into a chunked image beside the ``.img`` (for chunkcast)."""
    part_size = max(32 * MIB, int(data * 1.6) // MIB * MIB)
    device = attach(manifest, work / f"master-{name.replace('/', '_')}.disk", part_size + 2 * MIB)
    rdisk.write_table(device, rdisk.TableKind.MSDOS, [rdisk.PartSpec(part_size, fs)])
    node = partition_path(device, 1)
    filesystem.make(node, fs, label=name[:11])
    mnt = Path(tempfile.mkdtemp(prefix="src-", dir=work))
    manifest.record("mount", str(mnt))
    argv = ["ntfs-3g", node, str(mnt)] if fs is Filesystem.NTFS else ["mount", node, str(mnt)]
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    try:
        ratio = min(1.0, max(0.0, stored / data)) if data else 0.5
        fill(mnt, data, ratio, random.Random(seed))
        if windows and fs is Filesystem.NTFS:
            config = mnt / "Windows" / "System32" / "config"
            config.mkdir(parents=True)
            write_system_hive(config / "SYSTEM", name="WIN-MASTER")
        os.sync()
    finally:
        subprocess.run(["umount", str(mnt)], check=True, capture_output=True, timeout=120)
        mnt.rmdir()
    tree_hash, nfiles = hash_partition(manifest, node, fs, work)
    made = create.create_image(
        node,
        store,
        name,
        host="master",
        tracker=tracker,
        lock_dir=work,
        reduce=False,
        torrent_piece=piece,
    )
    if chunked:  # MCASTPROTOCOL=CHUNKCAST: the repository also holds it as a chunked image
        from ogref.runtime.chunked import convert

        convert.to_chunked(store, name)
    return SourceImage(made.image, tree_hash, nfiles, made.seconds)


def lab_piece(scale: float, piece: int = imagefile.TORRENT_PIECE) -> int:
    """The ``.torrent`` piece size of a lab copy of an image whose torrent has ``piece``-byte
    pieces: scaled with the image (so a scaled-down image keeps about as many pieces as the real
    one — a 20 MiB lab copy of a 10 GiB image in 4 MiB pieces would be a 5-piece swarm), rounded
    down to a power of two and kept at least 16 KiB (one block)."""
    want = max(16 * 1024, min(piece, int(piece * scale)))
    return 1 << (want.bit_length() - 1)
