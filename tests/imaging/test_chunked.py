"""Chunked images on real loop devices: ext4, FAT and NTFS round trips, only new chunks stored
again, a damaged chunk (33, signatures wiped), a missing chunk (refused before writing), verify,
conversion both ways with the OpenGnSys file (the same used blocks and bitmap), a
differential image restored onto its base (only the difference written) and onto another, and a
chunk store that fills up (16, the previous version kept)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import random
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ogref.errors import CacheSizeError, ImageFileError
from ogref.model.image import Compressor
from ogref.model.storage import Filesystem, TableKind
from ogref.runtime import compressor, filesystem, fingerprint
from ogref.runtime.chunked import convert, image, transfer
from ogref.runtime.chunked.blockstream import UsedBlocks
from ogref.runtime.chunked.cli import app
from ogref.runtime.chunked.create import create_chunked
from ogref.runtime.chunked.restore import restore_chunked
from ogref.runtime.chunked.store import ChunkStore
from ogref.runtime.create import create_image
from ogref.runtime.disk import PartSpec
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.loopdev import LoopDisk
from ogref.runtime.mount import Mount
from ogref.runtime.restore import restore_image
from ogref.units import MIB

from .conftest import (
    MakeDisk,
    fat_fill,
    fat_hash,
    fill_partition,
    hash_partition,
    need,
    tree_hash,
)

pytestmark = [pytest.mark.root, pytest.mark.imaging]


def _pair(make_disk: MakeDisk, fs: Filesystem, size: int = 96 * MIB) -> tuple[str, str]:
    """A source and a destination partition of ``size`` on one disk."""
    loop = make_disk(2 * size + 4 * MIB, TableKind.GPT, [PartSpec(size, fs), PartSpec(size, fs)])
    return loop.partition(1), loop.partition(2)


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x5A
    path.write_bytes(bytes(data))


def test_ext4_round_trip_and_only_new_chunks_stored_again(
    make_disk: MakeDisk, tmp_path: Path, lock_dir: Path
) -> None:
    src, dst = _pair(make_disk, Filesystem.EXT4)
    want = fill_partition(src, Filesystem.EXT4, random_mib=6)
    repo = ImageStore(tmp_path / "repo")
    made = create_chunked(src, repo, "lin", lock_dir=lock_dir)
    assert made.manifest.filesystem is Filesystem.EXT4
    assert made.stats.new_chunks > 0 and made.stats.stream_bytes == made.manifest.data_size
    restore_chunked(repo, "lin", dst, lock_dir=lock_dir)
    filesystem.check(dst, Filesystem.EXT4)
    assert hash_partition(dst, Filesystem.EXT4) == want
    # the same filesystem again: only the chunks e2fsck's superblock update touched are new
    again = create_chunked(src, repo, "lin", lock_dir=lock_dir)
    assert again.stats.new_chunks <= 2 < made.stats.new_chunks
    assert image.manifest_path(repo, "lin").with_name("lin.manifest.json.ant").is_file()


def test_fat_round_trip(make_disk: MakeDisk, tmp_path: Path, lock_dir: Path) -> None:
    need("mkfs.vfat", "mcopy", "fsck.fat", "partclone.fat")
    src, dst = _pair(make_disk, Filesystem.FAT32, 48 * MIB)
    want = fat_fill(src, tmp_path)
    repo = ImageStore(tmp_path / "repo")
    made = create_chunked(src, repo, "efi", lock_dir=lock_dir)
    assert made.manifest.filesystem is Filesystem.FAT32
    restore_chunked(repo, "efi", dst, lock_dir=lock_dir)
    filesystem.check(dst, Filesystem.FAT32)
    assert fat_hash(dst, tmp_path) == want


def test_ntfs_round_trip(make_disk: MakeDisk, tmp_path: Path, lock_dir: Path) -> None:
    need("mkfs.ntfs", "ntfs-3g", "ntfsfix", "partclone.ntfs")
    src, dst = _pair(make_disk, Filesystem.NTFS)
    want = fill_partition(src, Filesystem.NTFS, random_mib=4)
    repo = ImageStore(tmp_path / "repo")
    create_chunked(src, repo, "win", lock_dir=lock_dir)
    restore_chunked(repo, "win", dst, lock_dir=lock_dir)
    filesystem.check(dst, Filesystem.NTFS)
    assert hash_partition(dst, Filesystem.NTFS) == want


@pytest.fixture
def chunked(make_disk: MakeDisk, tmp_path: Path, lock_dir: Path) -> tuple[ImageStore, str, str]:
    """A chunked ext4 image 'base'; (repository, its tree hash, an ext4 destination)."""
    src, dst = _pair(make_disk, Filesystem.EXT4)
    want = fill_partition(src, Filesystem.EXT4, random_mib=6)
    repo = ImageStore(tmp_path / "repo")
    create_chunked(src, repo, "base", lock_dir=lock_dir)
    filesystem.make(dst, Filesystem.EXT4, "old")  # something a failed restore must not leave
    return repo, want, dst


def _largest_chunk(repo: ImageStore) -> Path:
    made = image.load(repo, "base")
    biggest = max(made.chunks, key=lambda c: c.size)
    return image.chunk_store(repo).path(biggest.digest)


def test_damaged_chunk_is_33_and_the_partition_wiped(
    chunked: tuple[ImageStore, str, str], lock_dir: Path
) -> None:
    repo, _, dst = chunked
    _flip(_largest_chunk(repo))
    with pytest.raises(ImageFileError) as exc:
        restore_chunked(repo, "base", dst, lock_dir=lock_dir)
    assert exc.value.code == 33 and "damaged" in exc.value.message
    assert filesystem.detect(dst) is Filesystem.EMPTY


def test_missing_chunk_is_refused_before_writing(
    chunked: tuple[ImageStore, str, str], lock_dir: Path
) -> None:
    repo, _, dst = chunked
    _largest_chunk(repo).unlink()
    with pytest.raises(ImageFileError, match="missing"):
        restore_chunked(repo, "base", dst, lock_dir=lock_dir)
    assert filesystem.detect(dst) is Filesystem.EXT4  # untouched


def test_verify_finds_a_flipped_byte(chunked: tuple[ImageStore, str, str]) -> None:
    repo, _, _ = chunked
    runner = CliRunner()
    args = ["verify", "base", "--dir", str(repo.root)]
    assert runner.invoke(app, args).exit_code == 0
    _flip(_largest_chunk(repo))
    assert [d for d, _ in image.verify(repo, "base")] == [_largest_chunk(repo).stem]
    assert runner.invoke(app, args).exit_code == 33


def _used_blocks(img: Path) -> tuple[bytes, bytes]:
    """The bitmap and used-block data of an OpenGnSys image file."""
    comp = compressor.detect(img)
    assert comp is not None
    argv = compressor.decompress_argv(comp) or ["cat"]
    with open(img, "rb") as f:
        raw = subprocess.run(argv, stdin=f, capture_output=True, check=True).stdout
    blocks = UsedBlocks(io.BytesIO(raw))
    out = bytearray(blocks.size)
    view = memoryview(out)
    done = 0
    while n := blocks.readinto(view[done:]):
        done += n
    return blocks.bitmap, bytes(out)


def test_convert_round_trip_keeps_the_filesystem_data(
    make_disk: MakeDisk, tmp_path: Path, lock_dir: Path
) -> None:
    src, dst = _pair(make_disk, Filesystem.EXT4)
    want = fill_partition(src, Filesystem.EXT4, random_mib=6)
    repo = ImageStore(tmp_path / "repo")
    create_image(src, repo, "og", comp=Compressor.ZSTD, reduce=False, lock_dir=lock_dir)
    convert.to_chunked(repo, "og", target="ck")
    restore_chunked(repo, "ck", dst, lock_dir=lock_dir)
    assert hash_partition(dst, Filesystem.EXT4) == want
    convert.to_partclone(repo, "ck", target="back", comp=Compressor.LZOP)
    assert _used_blocks(repo.files("back").img) == _used_blocks(repo.files("og").img)
    filesystem.make(dst, Filesystem.EXT4)
    restore_image(repo, "back", dst, lock_dir=lock_dir)  # .full.sum written by the conversion
    assert hash_partition(dst, Filesystem.EXT4) == want


def test_convert_refuses_a_damaged_image_file(
    make_disk: MakeDisk, tmp_path: Path, lock_dir: Path
) -> None:
    src, _ = _pair(make_disk, Filesystem.EXT4)
    fill_partition(src, Filesystem.EXT4, random_mib=2)
    repo = ImageStore(tmp_path / "repo")
    create_image(src, repo, "og", comp=Compressor.NONE, reduce=False, lock_dir=lock_dir)
    _flip(repo.files("og").img)
    with pytest.raises(ImageFileError):
        convert.to_chunked(repo, "og")
    assert not image.exists(repo, "og")


def _change(root: Path) -> None:
    """About 5 % of the data: a file added, one modified in its middle, some deleted."""
    (root / "added.bin").write_bytes(random.Random(9).randbytes(256 * 1024))
    with open(root / "bin.dat", "r+b") as f:
        f.seek(3 * MIB)
        f.write(random.Random(10).randbytes(64 * 1024))
    for i in range(5):
        (root / f"docs/deep/er/t{i}.txt").unlink()


def test_differential_onto_its_base_writes_only_the_difference(
    make_disk: MakeDisk, tmp_path: Path, lock_dir: Path
) -> None:
    size = 96 * MIB
    loop = make_disk(3 * size + 4 * MIB, TableKind.GPT, [PartSpec(size, Filesystem.EXT4)] * 3)
    src, dst, other = (loop.partition(n) for n in (1, 2, 3))
    fill_partition(src, Filesystem.EXT4, random_mib=6)
    repo = ImageStore(tmp_path / "repo")
    base = create_chunked(src, repo, "base", lock_dir=lock_dir)
    restore_chunked(repo, "base", dst, lock_dir=lock_dir)
    with Mount(src, Filesystem.EXT4) as root:
        _change(root)
        want = tree_hash(root)
    diff = create_chunked(src, repo, "v2", lock_dir=lock_dir, diff_of="base")
    assert diff.manifest.base is not None and diff.manifest.base.digest == base.manifest.digest
    assert diff.diff_bytes is not None and 0 < diff.diff_bytes < base.stats.new_stored_bytes // 2
    onto_base = restore_chunked(repo, "v2", dst, lock_dir=lock_dir)
    assert hash_partition(dst, Filesystem.EXT4) == want
    assert 0 < onto_base.written_bytes < diff.manifest.data_size // 2
    # onto the wrong base: every chunk it lacks is written, the result is still the image
    fill_partition(other, Filesystem.EXT4, seed=5, random_mib=6)
    wrong = restore_chunked(repo, "v2", other, lock_dir=lock_dir)
    assert hash_partition(other, Filesystem.EXT4) == want
    assert wrong.written_bytes > 2 * onto_base.written_bytes


def test_onto_its_base_by_record_and_the_record_lost_on_any_change(
    make_disk: MakeDisk, tmp_path: Path, lock_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The partition's record lets an in-place restore skip reading it, only while the
    filesystem's fingerprint is the one ogref's restore left; a mount that wrote to it, or a
    restore that failed, sends the next one back to the full check — same result every time."""
    src, dst = _pair(make_disk, Filesystem.EXT4)
    fill_partition(src, Filesystem.EXT4, random_mib=6)
    repo = ImageStore(tmp_path / "repo")
    create_chunked(src, repo, "base", lock_dir=lock_dir)
    with Mount(src, Filesystem.EXT4) as root:
        _change(root)
        want = tree_hash(root)
    diff = create_chunked(src, repo, "v2", lock_dir=lock_dir, diff_of="base")
    record = fingerprint.record_path(lock_dir, dst)

    restore_chunked(repo, "base", dst, lock_dir=lock_dir)
    fast = restore_chunked(repo, "v2", dst, lock_dir=lock_dir)
    assert fast.by_record and 0 < fast.written_bytes < diff.manifest.data_size // 2
    assert record.is_file()  # it now records v2
    assert hash_partition(dst, Filesystem.EXT4) == want  # (a read-write mount: record stale)

    restore_chunked(repo, "base", dst, lock_dir=lock_dir)
    with Mount(dst, Filesystem.EXT4) as root:  # changed behind ogref's back, then unmounted
        (root / "bin.dat").write_bytes(b"not the base")
    checked = restore_chunked(repo, "v2", dst, lock_dir=lock_dir)
    assert not checked.by_record
    assert hash_partition(dst, Filesystem.EXT4) == want

    restore_chunked(repo, "base", dst, lock_dir=lock_dir)

    def broken(*_a: object, **_k: object) -> None:
        raise OSError("the write failed")

    monkeypatch.setattr("ogref.runtime.chunked.restore.write_chunks", broken)
    with pytest.raises(OSError):
        restore_chunked(repo, "v2", dst, lock_dir=lock_dir)
    monkeypatch.undo()
    assert not record.exists()  # taken before the write, not written back after a failure


def test_store_full_during_create_keeps_the_previous_version(
    make_disk: MakeDisk, tmp_path: Path, lock_dir: Path
) -> None:
    src, _ = _pair(make_disk, Filesystem.EXT4)
    fill_partition(src, Filesystem.EXT4, random_mib=1)
    with LoopDisk(tmp_path / "repofs.img", 48 * MIB) as repo_disk:
        filesystem.make(repo_disk.device, Filesystem.EXT4)
        with Mount(repo_disk.device, Filesystem.EXT4) as repo_root:
            repo = ImageStore(repo_root / "images")
            first = create_chunked(src, repo, "v", lock_dir=lock_dir)
            with Mount(src, Filesystem.EXT4) as root:  # 40 MiB that cannot be compressed
                (root / "random.bin").write_bytes(random.Random(3).randbytes(40 * MIB))
            with pytest.raises(CacheSizeError):
                create_chunked(src, repo, "v", lock_dir=lock_dir)
            assert image.load(repo, "v").digest == first.manifest.digest
            assert not repo.files("v").lock.exists()
            assert [p.name for p in repo.root.glob("v.*")] == ["v.manifest.json"]


def test_cli_create_diff_and_restore(make_disk: MakeDisk, tmp_path: Path, lock_dir: Path) -> None:
    src, dst = _pair(make_disk, Filesystem.EXT4)
    fill_partition(src, Filesystem.EXT4, random_mib=2)
    runner = CliRunner()
    common = ["--dir", str(tmp_path / "repo"), "--lock-dir", str(lock_dir)]
    made = runner.invoke(app, ["create", src, "base", "--format", "chunked", *common])
    assert made.exit_code == 0, made.stdout
    # the pack the repository's senders use, made by create: every chunk of the image, once
    repo = ImageStore(tmp_path / "repo")
    assert json.loads(made.stdout)["pack"] == str(transfer.pack_path(repo, "base"))
    assert Path(f"{transfer.pack_path(repo, 'base')}.torrent").is_file()
    base = image.load(repo, "base")
    with open(transfer.pack_path(repo, "base"), "rb") as f:
        unpacked = transfer.unpack(f, base, ChunkStore(tmp_path / "fresh"))
    assert unpacked.kept == len({c.digest for c in base.chunks})
    with Mount(src, Filesystem.EXT4) as root:
        _change(root)
        want = tree_hash(root)
    diff = runner.invoke(
        app, ["create", src, "v2", "--format", "chunked", "--diff-of", "base", *common]
    )
    assert diff.exit_code == 0 and json.loads(diff.stdout)["diff_bytes"] > 0
    full = runner.invoke(app, ["restore", "v2", dst, "--full", *common])
    assert full.exit_code == 0 and json.loads(full.stdout)["chunks_skipped"] == 0
    assert hash_partition(dst, Filesystem.EXT4) == want
    again = json.loads(runner.invoke(app, ["restore", "v2", dst, *common]).stdout)
    assert again["code"] == 0 and again["written_bytes"] == 0  # in place: nothing differs


def test_clone_of_a_cached_chunked_image_restores_from_its_stream(
    make_disk: MakeDisk, tmp_path: Path, lock_dir: Path
) -> None:
    """A MASTER's cached chunked image as it goes over multicast (its manifest, then its pack,
    nothing stored): the target restores it; a manifest other than the announced one is 33
    and the partition wiped."""
    from ogref.agent.protocol import image_from_json, image_to_json
    from ogref.errors import OgError
    from ogref.runtime.chunked import inventory
    from ogref.runtime.chunked.restore import restore_clone

    src, dst = _pair(make_disk, Filesystem.EXT4)
    fill_partition(src, Filesystem.EXT4, random_mib=2)
    cache = ImageStore(tmp_path / "cache")
    made = create_chunked(src, cache, "lab", lock_dir=lock_dir).manifest
    with Mount(src, Filesystem.EXT4) as root:
        want = tree_hash(root)
    announced = image_from_json(image_to_json(inventory.to_image(made, "lab", 1)))
    assert announced.chunked and announced.checksum == made.digest

    data = b"".join(transfer.clone_stream(cache, "lab"))  # what the MASTER sends

    def received(write: Callable[[bytes], object], md5: Any) -> int:  # as udp-receiver does
        for at in range(0, len(data), 7777):
            md5.update(data[at : at + 7777])
            write(data[at : at + 7777])
        return len(data)

    done = restore_clone(received, announced, dst, lock_dir=lock_dir)
    assert done.checksum == made.digest and done.moved_bytes == len(data)
    assert done.stream_md5 == hashlib.md5(data).hexdigest()  # the MASTER reports the same
    assert hash_partition(dst, Filesystem.EXT4) == want
    other = dataclasses.replace(announced, checksum="0" * 64)
    with pytest.raises(OgError) as exc:
        restore_clone(received, other, dst, lock_dir=lock_dir)
    assert exc.value.code == 33 and filesystem.detect(dst) is Filesystem.EMPTY
