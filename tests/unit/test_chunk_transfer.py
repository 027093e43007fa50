"""Moving chunked images without devices: an update that fetches only the chunks a CACHE lacks
and prunes the replaced version's own, a damaged chunk refused, packs read in pieces of any
size (kept, skipped, written at their offsets), the inventory's byte counts."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from ogref.errors import ImageFileError
from ogref.model.storage import Filesystem
from ogref.runtime import partclone
from ogref.runtime.cachefs import CachePartition
from ogref.runtime.chunked import chunk, inventory, transfer
from ogref.runtime.chunked import image as chunked_image
from ogref.runtime.chunked.manifest import ChunkRef, Manifest
from ogref.runtime.imagefile import ImageStore

BS = 4096
TOTAL = 64


def _manifest(pieces: list[bytes], used: list[int]) -> Manifest:
    bitmap = bytearray(TOTAL // 8)
    for b in used:
        bitmap[b // 8] |= 1 << (b % 8)
    header = partclone.Header("0.3.23", "EXTFS", TOTAL * BS, BS, TOTAL, len(used))
    refs = tuple(ChunkRef(chunk.digest(p), len(p)) for p in pieces)
    return Manifest(header, Filesystem.EXT4, bytes(bitmap), refs)


def _image(store: ImageStore, name: str, pieces: list[bytes], used: list[int]) -> Manifest:
    made = _manifest(pieces, used)
    chunks = chunked_image.chunk_store(store)
    for p in pieces:
        chunks.put(chunk.digest(p), chunk.compress(p))
    chunked_image.publish(store, name, made)
    return made


USED = list(range(0, 8)) + list(range(20, 28))  # 16 blocks: two runs
RNG = random.Random(4)
A = [RNG.randbytes(4 * BS) for _ in range(4)]  # version 1: four chunks of four blocks
B = [A[0], A[1], RNG.randbytes(4 * BS), A[3]]  # version 2: one chunk changed


def test_update_fetches_only_missing_chunks_and_prunes_the_old_version(tmp_path: Path) -> None:
    repo, cache = ImageStore(tmp_path / "repo"), ImageStore(tmp_path / "cache")
    _image(repo, "win", A, USED)
    first = transfer.fetch(transfer.DirectorySource(repo), cache, "win")
    assert first.chunks_moved == 4 and first.chunks_present == 0
    v2 = _image(repo, "win", B, USED)
    second = transfer.fetch(transfer.DirectorySource(repo), cache, "win")
    assert second.digest == v2.digest
    assert second.chunks_moved == 1 and second.chunks_present == 3
    assert second.bytes_moved == chunked_image.chunk_store(repo).size_on_disk(chunk.digest(B[2]))
    held = set(inventory.chunk_sizes(chunked_image.chunk_store(cache)))
    assert held == {chunk.digest(p) for p in B}  # the replaced version's own chunk is gone
    model = inventory.cached_images(cache)
    assert [i.name for i in model.images] == ["win"] and model.images[0].complete


def test_a_damaged_chunk_is_refused_and_never_stored(tmp_path: Path) -> None:
    repo, cache = ImageStore(tmp_path / "repo"), ImageStore(tmp_path / "cache")
    _image(repo, "win", A, USED)
    victim = chunked_image.chunk_store(repo).path(chunk.digest(A[2]))
    victim.write_bytes(chunk.compress(b"x" * len(A[2])))
    with pytest.raises(ImageFileError):
        transfer.fetch(transfer.DirectorySource(repo), cache, "win", workers=1)
    assert not chunked_image.chunk_store(cache).has(chunk.digest(A[2]))
    assert not chunked_image.manifest_path(cache, "win").exists()


def test_present_counts_chunks_another_image_brought(tmp_path: Path) -> None:
    repo, cache = ImageStore(tmp_path / "repo"), ImageStore(tmp_path / "cache")
    _image(repo, "base", A, USED)
    v2 = _image(repo, "v2", B, USED)
    transfer.fetch(transfer.DirectorySource(repo), cache, "base")
    sizes = inventory.chunk_sizes(chunked_image.chunk_store(cache))
    repo_sizes = inventory.chunk_sizes(chunked_image.chunk_store(repo))
    assert inventory.present(v2, sizes) == sum(repo_sizes[chunk.digest(p)] for p in B[:2] + B[3:])
    found = inventory.inspect(repo, "v2")
    assert found.image is not None and found.image.chunked
    assert found.image.stored_size == sum(repo_sizes[chunk.digest(p)] for p in B)


@pytest.mark.parametrize("piece", [1, 7, 4096, 1 << 20])
def test_pack_unpacked_in_pieces_keeps_only_missing_chunks(tmp_path: Path, piece: int) -> None:
    repo = ImageStore(tmp_path / "repo")
    made = _image(repo, "win", [*A, A[0]], USED + list(range(40, 44)))  # a chunk used twice
    path = transfer.ensure_pack(repo, "win")
    assert path is not None and path.name == "win.pack"
    cache = chunked_image.chunk_store(ImageStore(tmp_path / "cache"))
    cache.put(chunk.digest(A[1]), chunk.compress(A[1]))
    up = transfer.Unpacker(made, cache)
    data = path.read_bytes()
    for i in range(0, len(data), piece):
        up.feed(data[i : i + piece])
    up.finish()
    assert (up.kept, up.skipped) == (3, 1)
    assert transfer.missing(made, cache) == []


def test_pack_written_onto_a_device_at_its_offsets(tmp_path: Path) -> None:
    repo = ImageStore(tmp_path / "repo")
    used = USED + list(range(40, 44))
    made = _image(repo, "win", [*A, A[0]], used)
    path = transfer.ensure_pack(repo, "win")
    assert path is not None
    dev = tmp_path / "dev"
    dev.write_bytes(bytes(TOTAL * BS))
    fd = os.open(dev, os.O_WRONLY)
    try:
        writer = transfer.PackWriter(made, fd)
        writer.feed(path.read_bytes())
        writer.finish()
    finally:
        os.close(fd)
    assert writer.missing() == []
    disk = dev.read_bytes()
    stream = b"".join([*A, A[0]])
    got = b"".join(disk[b * BS : (b + 1) * BS] for b in used)
    assert got == stream
    assert disk[8 * BS : 20 * BS] == bytes(12 * BS)  # unused blocks untouched


def test_a_truncated_pack_is_33(tmp_path: Path) -> None:
    repo = ImageStore(tmp_path / "repo")
    made = _image(repo, "win", A, USED)
    path = transfer.ensure_pack(repo, "win")
    assert path is not None
    up = transfer.Unpacker(made, chunked_image.chunk_store(ImageStore(tmp_path / "c")))
    up.feed(path.read_bytes()[:-10])
    with pytest.raises(ImageFileError):
        up.finish()


C = [RNG.randbytes(4 * BS) for _ in range(4)]  # another image, sharing nothing with A


@pytest.mark.parametrize("what", ["evict", "empty"])
def test_freeing_cache_chunks_during_an_update_never_leaves_a_manifest_short(
    tmp_path: Path, what: str
) -> None:
    """An eviction (its chunks and an interrupted update's freed) or EmptyCache while an
    update of another image runs: the update's chunks fetched so far are deleted with them, and
    its manifest must still be installed only over a complete set of chunks."""
    part = CachePartition("/dev/cache4", root=tmp_path / "mnt")  # only its directory is used
    repo, cache = ImageStore(tmp_path / "repo"), part.store
    made = _image(repo, "win", A, USED)
    _image(cache, "old", C, USED)
    calls = []

    def meanwhile(done: int, total: int) -> None:
        if not calls:  # after the update's first chunk: free what no manifest names
            if what == "evict":
                part.evict(("old",))
            else:
                part.empty()
        calls.append(done)

    got = transfer.fetch(
        transfer.DirectorySource(repo), cache, "win", workers=1, progress=meanwhile
    )
    store = chunked_image.chunk_store(cache)
    assert transfer.missing(made, store) == []  # before the lock: the first chunk was gone
    assert got.digest == made.digest
    held = set(inventory.chunk_sizes(store))
    assert held == {chunk.digest(p) for p in A}  # and "old" is gone, chunks and manifest
    assert not chunked_image.exists(cache, "old")
