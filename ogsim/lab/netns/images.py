"""Source images of a lab run: a reference partition filled with synthetic files, imaged into
the repository with the runtime's createImage (partclone + compressor, sidecars, ``.torrent``
naming the lab's tracker), and its file-tree hash kept to verify every restore.

The data size is the scenario's ``data`` times the scale; the fraction of incompressible bytes
follows the scenario's ``stored / data``, so the stored image has about the scaled stored size.
The reference disk is a loop device recorded in the manifest.  A chunked image is made with
``ogref image create --format chunked``'s code; a chunked differential one from its base's
reference partition, changed by about the bytes it adds (``change``), with ``--diff-of``; a
CACHE that holds a chunked image is given its manifest and chunks (``seed_cache``).  Restoring
is not done here.
"""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import zstandard

from ogref.errors import OgError
from ogref.model import Filesystem, Image
from ogref.runtime import create, filesystem, imagefile
from ogref.runtime import disk as rdisk
from ogref.runtime.chunked import image as chunked_image
from ogref.runtime.chunked import inventory, transfer
from ogref.runtime.chunked.create import create_chunked
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.loopdev import partition_path
from ogref.runtime.mount import unmount_device
from ogref.units import MIB
from ogsim.lab.manifest import Manifest
from ogsim.lab.netns.disks import attach
from ogsim.lab.netns.tree import hash_partition
from ogsim.lab.regf import write_system_hive

FILE_SIZE = 2 * MIB


@dataclass(frozen=True)
class SourceImage:
    """An image made for the run, with what verifies its restores.

    ``master``: the reference partition it was made from (a chunked differential image is made
    from its base's, changed); ``changed``: of a differential image, the bytes of data changed
    and the size of those bytes compressed by zstd -3 as one stream (bench-image's measure)."""

    image: Image
    tree_hash: str
    files: int
    create_seconds: float
    master: str = ""
    changed: tuple[int, int] = (0, 0)
    incompressible: float = 0.5  # the fraction of each file written random (``fill``)


TEXT_RATIO = 0.32
"""zstd -3's output per byte of :func:`words` (measured: 0.319)."""


def words(rng: random.Random, size: int) -> bytes:
    """``size`` bytes of text-like data: words of a 512-word vocabulary, so that content-defined
    chunking finds boundaries in it as in real documents (one repeated line has none)."""
    vocab = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
             for _ in range(512)]  # fmt: skip
    return b" ".join(rng.choices(vocab, k=size // 5 + 1))[:size]


def fill(
    root: Path, data: int, incompressible: float, rng: random.Random, *, text: bool = False
) -> None:
    """Write about ``data`` bytes of files under ``root`` (part random, part text-like).

    ``text``: the compressible part is :func:`words` (compressing to :data:`TEXT_RATIO`, the
    random part made smaller to keep the stored/data ratio), not one repeated line — what a
    chunked image's differential needs to be measured fairly."""
    written = 0
    i = 0
    if text:
        incompressible = max(0.0, (incompressible - TEXT_RATIO) / (1 - TEXT_RATIO))
    while written < data:
        size = min(FILE_SIZE, data - written)
        d = root / "data" / f"d{i // 16:03d}"
        d.mkdir(parents=True, exist_ok=True)
        rand = int(size * incompressible)
        if text:
            body = rng.randbytes(rand) + words(rng, size - rand)
        else:
            filler = b"ogLab filler line %08d\n" % i
            body = rng.randbytes(rand) + filler * ((size - rand) // 24 + 1)
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
    also_chunked: bool = False,
) -> SourceImage:
    """Build a reference partition of ``data`` bytes and image it into ``store`` as ``name``;
    a ``windows`` (NTFS) one also holds a SYSTEM hive (``Windows/System32/config/SYSTEM``), so
    configureOs names the restored system and the emulated boot reads that name back.
    ``chunked``: a chunked image (``ogref image create --format chunked``), no ``.torrent``;
    ``also_chunked``: an OpenGnSys image also converted into a chunked one beside it (the
    repository of a site whose ``MCASTPROTOCOL`` is ``CHUNKCAST`` holds both)."""
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
        fill(mnt, data, ratio, random.Random(seed), text=chunked)
        if chunked:
            ratio = max(0.0, (ratio - TEXT_RATIO) / (1 - TEXT_RATIO))
        if windows and fs is Filesystem.NTFS:
            config = mnt / "Windows" / "System32" / "config"
            config.mkdir(parents=True)
            write_system_hive(config / "SYSTEM", name="WIN-MASTER")
        os.sync()
    finally:
        subprocess.run(["umount", str(mnt)], check=True, capture_output=True, timeout=120)
        mnt.rmdir()
    tree_hash, nfiles = hash_partition(manifest, node, fs, work)
    if chunked:
        t0 = time.monotonic()
        _create(node, store, name, work)
        found = inventory.inspect(store, name)
        assert found.image is not None, found.detail
        spent = time.monotonic() - t0
        return SourceImage(found.image, tree_hash, nfiles, spent, node, incompressible=ratio)
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
    if also_chunked:
        from ogref.runtime.chunked import convert

        convert.to_chunked(store, name)
    return SourceImage(made.image, tree_hash, nfiles, made.seconds, node, incompressible=ratio)


def change(root: Path, budget: int, incompressible: float, rng: random.Random) -> bytes:
    """Change the data under ``root`` as bench-image does (``ogref.bench.chunked.change``), in
    three parts of ``budget`` bytes: added (a text-like file and an incompressible one),
    modified (files rewritten whole and renamed over the old ones, as a package manager
    updates them) and deleted (whole files); the added and modified bytes are returned."""
    files = sorted((root / "data").rglob("*.bin"))
    new_dir = root / "data" / "changed"
    new_dir.mkdir(parents=True, exist_ok=True)
    prose = words(rng, budget // 2)
    blob = rng.randbytes(budget - len(prose))
    (new_dir / "notes.txt").write_bytes(prose)
    (new_dir / "blob.bin").write_bytes(blob)
    out = bytearray(prose + blob)
    spent = 0
    for n, path in enumerate(files[::3]):  # modified: rewritten and renamed over, as dpkg does
        if spent >= budget:
            break
        size = min(path.stat().st_size, budget - spent)
        rand = int(size * incompressible)
        body = rng.randbytes(rand) + words(rng, size - rand)
        staged = path.with_name(f".new{n}")
        staged.write_bytes(body)
        os.replace(staged, path)
        out += body
        spent += size
    gone = 0
    for path in files[1::3]:
        if gone >= budget:
            break
        gone += path.stat().st_size
        path.unlink()
    return bytes(out)


def make_differential(
    manifest: Manifest,
    store: ImageStore,
    name: str,
    base: SourceImage,
    added: int,
    work: Path,
    seed: int,
) -> SourceImage:
    """A chunked differential image of ``base``: its reference partition changed (:func:`change`)
    by bytes that compress to about ``added`` (the image's ``added`` stored bytes), imaged with
    ``--diff-of``; the base's own tree hash was taken before."""
    fs = base.image.filesystem
    node = base.master
    incompressible = base.incompressible
    # compressed: about budget/2 (blob) + budget/6 (text) + ~budget/2 (rewritten files)
    budget = max(192 * 1024, int(added * 0.75))
    mnt = Path(tempfile.mkdtemp(prefix="diff-", dir=work))
    manifest.record("mount", str(mnt))
    argv = ["ntfs-3g", node, str(mnt)] if fs is Filesystem.NTFS else ["mount", node, str(mnt)]
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    try:
        changed = change(mnt, budget, incompressible, random.Random(seed))
        os.sync()
    finally:
        subprocess.run(["umount", str(mnt)], check=True, capture_output=True, timeout=120)
        mnt.rmdir()
    tree_hash, nfiles = hash_partition(manifest, node, fs, work)
    t0 = time.monotonic()
    _create(node, store, name, work, diff_of=base.image.name)
    found = inventory.inspect(store, name)
    assert found.image is not None, found.detail
    packed = len(zstandard.ZstdCompressor(level=3).compress(changed))
    spent = time.monotonic() - t0
    return SourceImage(
        found.image, tree_hash, nfiles, spent, node, (len(changed), packed), incompressible
    )


def _create(node: str, store: ImageStore, name: str, work: Path, diff_of: str = "") -> None:
    """``create_chunked``, tried again when e2fsck finds the partition still in use (the
    unmount just before can take a moment to let go of it on a loaded host)."""
    for attempt in range(4):
        try:
            create_chunked(node, store, name, host="master", lock_dir=work, diff_of=diff_of)
            return
        except OgError as exc:
            if "in use" not in exc.message or attempt == 3:
                raise
            subprocess.run(["udevadm", "settle"], capture_output=True, check=False, timeout=30)
            time.sleep(1.0 + attempt)
            unmount_device(node)  # a tree hash's unmount that did not take


def seed_cache(cache_images: Path, repo: ImageStore, name: str) -> int:
    """Put chunked image ``name`` of ``repo`` into a CACHE's image directory (its manifest and
    chunks, copied as an update would leave them); bytes of chunks copied."""
    cache = ImageStore(cache_images)
    made = chunked_image.load(repo, name)
    src, dst = chunked_image.chunk_store(repo), chunked_image.chunk_store(cache)
    copied = 0
    for digest in inventory.distinct(made):
        if not dst.has(digest):
            frame = src.frame(digest)
            dst.put(digest, frame)
            copied += len(frame)
    dst.sync()
    raw = chunked_image.manifest_path(repo, name).read_bytes()
    transfer.install(cache, name, raw, made)
    return copied


def lab_piece(scale: float, piece: int = imagefile.TORRENT_PIECE) -> int:
    """The ``.torrent`` piece size of a lab copy of an image whose torrent has ``piece``-byte
    pieces: scaled with the image (so a scaled-down image keeps about as many pieces as the real
    one — a 20 MiB lab copy of a 10 GiB image in 4 MiB pieces would be a 5-piece swarm), rounded
    down to a power of two and kept at least 16 KiB (one block)."""
    want = max(16 * 1024, min(piece, int(piece * scale)))
    return 1 << (want.bit_length() - 1)
