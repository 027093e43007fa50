"""Create → restore round trips on real loop devices: content identical, fsck clean, interop."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ogref.model.image import Compressor
from ogref.model.storage import Filesystem, TableKind
from ogref.runtime import filesystem
from ogref.runtime.create import create_image
from ogref.runtime.disk import PartSpec
from ogref.runtime.imagefile import TORRENT_PIECE, ImageStore, make_torrent, md5_full, read_sum
from ogref.runtime.restore import restore_image
from ogref.units import MIB

from .conftest import MakeDisk, fat_fill, fat_hash, fill_partition, hash_partition, need

pytestmark = [pytest.mark.root, pytest.mark.imaging]


@pytest.mark.parametrize("comp", [Compressor.ZSTD, Compressor.LZOP, Compressor.GZIP])
def test_ext4_round_trip_onto_another_partition_number(
    make_disk: MakeDisk, tmp_path: Path, lock_dir: Path, comp: Compressor
) -> None:
    src = make_disk(256 * MIB, TableKind.MSDOS, [PartSpec(128 * MIB, Filesystem.EXT4)])
    dst = make_disk(
        256 * MIB, TableKind.GPT, [PartSpec(64 * MIB), PartSpec(128 * MIB, Filesystem.EXT4)]
    )
    want = fill_partition(src.partition(1), Filesystem.EXT4)
    repo = ImageStore(tmp_path / "repo")
    made = create_image(src.partition(1), repo, "linux", comp=comp, lock_dir=lock_dir)
    files = repo.files("linux")
    assert made.info.compressor is comp
    assert files.info.read_text().startswith(f"PARTCLONE:{comp}:EXT4:")
    assert read_sum(files.full_sum) == md5_full(files.img) == made.image.checksum
    assert files.sum.exists() and not files.lock.exists()
    restore_image(repo, "linux", dst.partition(2), lock_dir=lock_dir)
    filesystem.check(dst.partition(2), Filesystem.EXT4)
    assert hash_partition(dst.partition(2), Filesystem.EXT4) == want
    # the source was reduced for imaging and extended back
    assert filesystem.fs_size(src.partition(1), Filesystem.EXT4) == 128 * MIB


def test_ntfs_round_trip(make_disk: MakeDisk, tmp_path: Path, lock_dir: Path) -> None:
    need("mkfs.ntfs", "ntfs-3g", "ntfsfix", "partclone.ntfs")
    src = make_disk(256 * MIB, TableKind.GPT, [PartSpec(128 * MIB, Filesystem.NTFS)])
    dst = make_disk(256 * MIB, TableKind.MSDOS, [PartSpec(160 * MIB, Filesystem.NTFS)])
    want = fill_partition(src.partition(1), Filesystem.NTFS)
    repo = ImageStore(tmp_path / "repo")
    create_image(src.partition(1), repo, "win", comp=Compressor.LZOP, lock_dir=lock_dir)
    restore_image(repo, "win", dst.partition(1), lock_dir=lock_dir)
    filesystem.check(dst.partition(1), Filesystem.NTFS)  # ntfsfix -n clean after the restore
    assert hash_partition(dst.partition(1), Filesystem.NTFS) == want


def test_fat_round_trip(make_disk: MakeDisk, tmp_path: Path, lock_dir: Path) -> None:
    need("mkfs.vfat", "mcopy", "fsck.fat", "partclone.fat")
    src = make_disk(128 * MIB, TableKind.GPT, [PartSpec(48 * MIB, Filesystem.FAT32)])
    dst = make_disk(128 * MIB, TableKind.GPT, [PartSpec(64 * MIB, Filesystem.FAT32)])
    want = fat_fill(src.partition(1), tmp_path)
    repo = ImageStore(tmp_path / "repo")
    made = create_image(src.partition(1), repo, "efi", comp=Compressor.GZIP, lock_dir=lock_dir)
    assert made.image.filesystem is Filesystem.FAT32 and not made.reduced
    restore_image(repo, "efi", dst.partition(1), lock_dir=lock_dir)
    filesystem.check(dst.partition(1), Filesystem.FAT32)
    assert fat_hash(dst.partition(1), tmp_path) == want


def test_partition_smaller_than_source_but_large_enough_for_the_data(
    make_disk: MakeDisk, tmp_path: Path, lock_dir: Path
) -> None:
    src = make_disk(512 * MIB, TableKind.MSDOS, [PartSpec(384 * MIB, Filesystem.EXT4)])
    dst = make_disk(256 * MIB, TableKind.MSDOS, [PartSpec(96 * MIB, Filesystem.EXT4)])
    want = fill_partition(src.partition(1), Filesystem.EXT4, random_mib=16)
    repo = ImageStore(tmp_path / "repo")
    made = create_image(src.partition(1), repo, "small", lock_dir=lock_dir)
    assert made.reduced and made.image.data_size < 96 * MIB
    restore_image(repo, "small", dst.partition(1), lock_dir=lock_dir)
    filesystem.extend(dst.partition(1), Filesystem.EXT4)
    filesystem.check(dst.partition(1), Filesystem.EXT4)
    assert hash_partition(dst.partition(1), Filesystem.EXT4) == want


def test_interop_ogref_image_restores_with_the_stock_pipeline(
    make_disk: MakeDisk, tmp_path: Path, lock_dir: Path
) -> None:
    src = make_disk(256 * MIB, TableKind.MSDOS, [PartSpec(128 * MIB, Filesystem.EXT4)])
    dst = make_disk(256 * MIB, TableKind.MSDOS, [PartSpec(128 * MIB, Filesystem.EXT4)])
    want = fill_partition(src.partition(1), Filesystem.EXT4)
    repo = ImageStore(tmp_path / "repo")
    create_image(src.partition(1), repo, "og", comp=Compressor.LZOP, lock_dir=lock_dir)
    img = repo.files("og").img
    subprocess.run(
        ["bash", "-o", "pipefail", "-c",
         f"lzop -dc {img} | partclone.restore -s - -o {dst.partition(1)} -L {tmp_path}/pc.log"],
        check=True, capture_output=True,
    )  # fmt: skip
    assert hash_partition(dst.partition(1), Filesystem.EXT4) == want


def test_interop_stock_image_restores_with_ogref(
    make_disk: MakeDisk, tmp_path: Path, lock_dir: Path
) -> None:
    src = make_disk(256 * MIB, TableKind.MSDOS, [PartSpec(128 * MIB, Filesystem.EXT4)])
    dst = make_disk(256 * MIB, TableKind.MSDOS, [PartSpec(128 * MIB, Filesystem.EXT4)])
    want = fill_partition(src.partition(1), Filesystem.EXT4)
    repo = ImageStore(tmp_path / "repo")
    repo.root.mkdir()
    img = repo.root / "stock.img"
    subprocess.run(
        ["bash", "-o", "pipefail", "-c",
         f"partclone.extfs -c -s {src.partition(1)} -o - -L {tmp_path}/pc.log | lzop > {img}"],
        check=True, capture_output=True,
    )  # fmt: skip
    done = restore_image(repo, "stock", dst.partition(1), lock_dir=lock_dir)
    assert not done.verified  # no .full.sum: the stream checks (lzop, partclone CRC) guard it
    assert hash_partition(dst.partition(1), Filesystem.EXT4) == want


@pytest.mark.parametrize("piece", [TORRENT_PIECE, 256 * 1024])
def test_torrent_pieces_hashed_while_writing_equal_libtorrents(
    make_disk: MakeDisk, tmp_path: Path, lock_dir: Path, piece: int
) -> None:
    lt = pytest.importorskip("libtorrent")
    src = make_disk(256 * MIB, TableKind.MSDOS, [PartSpec(128 * MIB, Filesystem.EXT4)])
    fill_partition(src.partition(1), Filesystem.EXT4, random_mib=12)  # > 2 pieces of 4 MiB
    repo = ImageStore(tmp_path / "repo")
    made = create_image(
        src.partition(1), repo, "t", comp=Compressor.LZOP, lock_dir=lock_dir, torrent_piece=piece
    )
    assert made.torrent
    files = repo.files("t")
    in_pass = files.torrent.read_bytes()
    # the same torrent made the slow way: libtorrent reads the finished file back
    files.torrent.unlink()
    assert make_torrent(files, "", made.image.checksum, piece_size=piece)
    slow, fast = lt.bdecode(files.torrent.read_bytes()), lt.bdecode(in_pass)
    assert slow[b"info"] == fast[b"info"]  # pieces, length, name (the dates may differ)
    assert fast[b"info"][b"piece length"] == piece
    assert slow[b"comment"] == fast[b"comment"] == made.image.checksum.encode()
    assert files.img.stat().st_size > 2 * TORRENT_PIECE


def test_piece_size_must_be_a_power_of_two_block_multiple(
    make_disk: MakeDisk, tmp_path: Path, lock_dir: Path
) -> None:
    from ogref.errors import FormatError

    src = make_disk(64 * MIB, TableKind.MSDOS, [PartSpec(32 * MIB, Filesystem.EXT4)])
    with pytest.raises(FormatError, match="piece size"):
        create_image(src.partition(1), ImageStore(tmp_path / "r"), "t", torrent_piece=3 * 16384)
    assert not (tmp_path / "r" / "t.img").exists()
