"""Failures on real devices: too small (30), corrupt or truncated streams (33), repository full
during create (previous image intact), names escaping the repository, concurrent restores."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ogref.errors import (
    CacheSizeError,
    FormatError,
    ImageFileError,
    ImageSizePartitionError,
    LockedError,
    MulticastReceiveFileError,
    OgError,
)
from ogref.model.image import Compressor, Image
from ogref.model.storage import Filesystem, TableKind
from ogref.runtime import filesystem
from ogref.runtime.create import create_image
from ogref.runtime.disk import PartSpec
from ogref.runtime.imagefile import ImageStore, md5_full, read_sum
from ogref.runtime.lock import LockFile, partition_lock_path
from ogref.runtime.loopdev import LoopDisk
from ogref.runtime.mount import Mount
from ogref.runtime.restore import restore_image
from ogref.transports.stream import Source, restore_from
from ogref.units import MIB

from .conftest import MakeDisk, fill_partition, hash_partition

pytestmark = [pytest.mark.root, pytest.mark.imaging]


@pytest.fixture
def made(make_disk: MakeDisk, tmp_path: Path, lock_dir: Path) -> tuple[ImageStore, str, MakeDisk]:
    """An ext4 image 'base' (zstd) in a repository; returns (repo, tree hash, make_disk)."""
    src = make_disk(256 * MIB, TableKind.MSDOS, [PartSpec(128 * MIB, Filesystem.EXT4)])
    want = fill_partition(src.partition(1), Filesystem.EXT4, random_mib=8)
    repo = ImageStore(tmp_path / "repo")
    create_image(
        src.partition(1), repo, "base", comp=Compressor.ZSTD, reduce=False, lock_dir=lock_dir
    )
    return repo, want, make_disk


def test_too_small_partition_is_30(made: tuple[ImageStore, str, MakeDisk], lock_dir: Path) -> None:
    repo, _, make_disk = made
    dst = make_disk(128 * MIB, TableKind.MSDOS, [PartSpec(64 * MIB, Filesystem.EXT4)])
    with pytest.raises(ImageSizePartitionError) as exc:
        restore_image(repo, "base", dst.partition(1), lock_dir=lock_dir)
    assert exc.value.code == 30


@pytest.mark.parametrize("keep_sum", [True, False], ids=["with-full-sum", "stream-checks-only"])
def test_flipped_byte_is_detected(
    made: tuple[ImageStore, str, MakeDisk], lock_dir: Path, keep_sum: bool
) -> None:
    repo, _, make_disk = made
    files = repo.files("base")
    if not keep_sum:
        files.full_sum.unlink()
    size = files.img.stat().st_size
    with open(files.img, "r+b") as f:
        f.seek(size // 2)
        byte = f.read(1)
        f.seek(size // 2)
        f.write(bytes([byte[0] ^ 0x5A]))
    dst = make_disk(256 * MIB, TableKind.MSDOS, [PartSpec(160 * MIB, Filesystem.EXT4)])
    with pytest.raises(ImageFileError):
        restore_image(repo, "base", dst.partition(1), lock_dir=lock_dir)
    # never reported restored: the half-written filesystem is wiped
    assert filesystem.detect(dst.partition(1)) is Filesystem.EMPTY


def test_truncated_image_is_detected(
    made: tuple[ImageStore, str, MakeDisk], lock_dir: Path
) -> None:
    repo, _, make_disk = made
    files = repo.files("base")
    files.full_sum.unlink()
    with open(files.img, "r+b") as f:
        f.truncate(files.img.stat().st_size * 2 // 3)
    dst = make_disk(256 * MIB, TableKind.MSDOS, [PartSpec(160 * MIB, Filesystem.EXT4)])
    with pytest.raises(ImageFileError) as exc:
        restore_image(repo, "base", dst.partition(1), lock_dir=lock_dir)
    assert filesystem.detect(dst.partition(1)) is Filesystem.EMPTY
    # the failure keeps partclone's log and says where it is
    notes = [n for n in getattr(exc.value, "__notes__", []) if n.startswith("partclone log: ")]
    assert notes, exc.value
    assert Path(notes[0].removeprefix("partclone log: ")).is_file()


def test_a_successful_create_and_restore_leave_no_partclone_log(
    made: tuple[ImageStore, str, MakeDisk], lock_dir: Path
) -> None:
    repo, _, make_disk = made
    dst = make_disk(256 * MIB, TableKind.MSDOS, [PartSpec(160 * MIB, Filesystem.EXT4)])
    restore_image(repo, "base", dst.partition(1), lock_dir=lock_dir)
    tmp = Path(tempfile.gettempdir())
    for kind in ("create", "restore"):
        assert not (tmp / f"ogref-partclone-{kind}-{os.getpid()}.log").exists(), kind


def test_repository_full_during_create_keeps_the_previous_image(
    make_disk: MakeDisk, tmp_path: Path, lock_dir: Path
) -> None:
    src = make_disk(256 * MIB, TableKind.MSDOS, [PartSpec(160 * MIB, Filesystem.EXT4)])
    fill_partition(src.partition(1), Filesystem.EXT4, random_mib=1)
    with LoopDisk(tmp_path / "repofs.img", 64 * MIB) as repo_disk:
        filesystem.make(repo_disk.device, Filesystem.EXT4)
        with Mount(repo_disk.device, Filesystem.EXT4) as repo_root:
            repo = ImageStore(repo_root / "images")
            create_image(src.partition(1), repo, "v", lock_dir=lock_dir, reduce=False)
            files = repo.files("v")
            before = md5_full(files.img)
            # now 36 MiB of incompressible data: the 0.65 estimate passes, the write does not
            with Mount(src.partition(1), Filesystem.EXT4) as root:
                (root / "random.bin").write_bytes(os.urandom(36 * MIB))
            free = repo.free_space()
            (repo_root / "filler").write_bytes(b"\0" * (free - 28 * MIB))
            with pytest.raises(CacheSizeError):
                create_image(src.partition(1), repo, "v", lock_dir=lock_dir, reduce=False)
            assert md5_full(files.img) == before == read_sum(files.full_sum)
            assert not files.lock.exists() and not files.staged().img.exists()
            assert sorted(p.name for p in files.root.iterdir()) == [
                "v.img",
                "v.img.full.sum",
                "v.img.info",
                "v.img.sum",
                "v.img.torrent",
            ]


@pytest.mark.parametrize("name", ["../escape", "a/../../b", "//etc/passwd", "a/b/c", "..", ""])
def test_names_escaping_the_repository_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(FormatError):
        ImageStore(tmp_path).files(name)


def test_symlink_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo/ou").symlink_to("/etc")
    with pytest.raises(FormatError):
        ImageStore(tmp_path / "repo").files("ou/passwd")


def test_two_restores_of_one_image_at_once(
    made: tuple[ImageStore, str, MakeDisk], lock_dir: Path
) -> None:
    repo, want, make_disk = made
    d1 = make_disk(256 * MIB, TableKind.MSDOS, [PartSpec(160 * MIB, Filesystem.EXT4)])
    d2 = make_disk(256 * MIB, TableKind.GPT, [PartSpec(160 * MIB, Filesystem.EXT4)])
    errors: list[BaseException] = []

    def job(node: str) -> None:
        try:
            restore_image(repo, "base", node, lock_dir=lock_dir)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(d.partition(1),)) for d in (d1, d2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert hash_partition(d1.partition(1), Filesystem.EXT4) == want
    assert hash_partition(d2.partition(1), Filesystem.EXT4) == want


def test_locked_partition_and_locked_image_are_4(
    made: tuple[ImageStore, str, MakeDisk], lock_dir: Path
) -> None:
    repo, _, make_disk = made
    dst = make_disk(256 * MIB, TableKind.MSDOS, [PartSpec(160 * MIB, Filesystem.EXT4)])
    part_lock = LockFile(partition_lock_path(lock_dir, dst.partition(1)), "test")
    with part_lock, pytest.raises(LockedError):
        restore_image(repo, "base", dst.partition(1), lock_dir=lock_dir)
    with LockFile(repo.files("base").lock, "test"), pytest.raises(LockedError):
        restore_image(repo, "base", dst.partition(1), lock_dir=lock_dir)


def test_filesystem_mismatch_needs_permission(
    made: tuple[ImageStore, str, MakeDisk], lock_dir: Path
) -> None:
    repo, want, make_disk = made
    dst = make_disk(256 * MIB, TableKind.MSDOS, [PartSpec(160 * MIB, Filesystem.FAT32)])
    filesystem.make(dst.partition(1), Filesystem.FAT32)
    with pytest.raises(OgError) as exc:
        restore_image(repo, "base", dst.partition(1), lock_dir=lock_dir)
    assert exc.value.code == 20
    restore_image(repo, "base", dst.partition(1), lock_dir=lock_dir, allow_fs_change=True)
    assert hash_partition(dst.partition(1), Filesystem.EXT4) == want


def _network_source(data: bytes, fail_after: int | None = None) -> Source:
    def source(write: Callable[[bytes], object], md5: Any) -> int:
        sent = 0
        for i in range(0, len(data), 1 << 20):
            if fail_after is not None and sent >= fail_after:
                raise MulticastReceiveFileError("udp-receiver exited 1: timeout")
            chunk = data[i : i + (1 << 20)]
            md5.update(chunk)
            write(chunk)
            sent += len(chunk)
        return sent

    return source


def test_a_broken_network_stream_is_the_transfers_failure_not_a_corrupt_image(
    made: tuple[ImageStore, str, MakeDisk], lock_dir: Path
) -> None:
    repo, _, make_disk = made
    files = repo.files("base")
    data = files.img.read_bytes()
    image = Image("base", Filesystem.EXT4, 0, len(data), checksum=md5_full(files.img))
    dst = make_disk(256 * MIB, TableKind.MSDOS, [PartSpec(160 * MIB, Filesystem.EXT4)])
    with pytest.raises(OgError) as exc:
        restore_from(
            _network_source(data, fail_after=len(data) // 2),
            image,
            dst.partition(1),
            lock_dir=lock_dir,
            what="test stream",
        )
    assert not isinstance(exc.value, ImageFileError), exc.value  # not "corrupt image" (33)
    assert "udp-receiver" in exc.value.message
    assert filesystem.detect(dst.partition(1)) is Filesystem.EMPTY


def test_a_network_stream_with_another_md5_is_33_and_wiped(
    made: tuple[ImageStore, str, MakeDisk], lock_dir: Path
) -> None:
    repo, want, make_disk = made
    files = repo.files("base")
    data = files.img.read_bytes()
    dst = make_disk(256 * MIB, TableKind.MSDOS, [PartSpec(160 * MIB, Filesystem.EXT4)])
    good = Image("base", Filesystem.EXT4, 0, len(data), checksum=md5_full(files.img))
    done = restore_from(_network_source(data), good, dst.partition(1), lock_dir=lock_dir, what="t")
    assert done.bytes_read == len(data)
    assert hash_partition(dst.partition(1), Filesystem.EXT4) == want
    wrong = Image("base", Filesystem.EXT4, 0, len(data), checksum="0" * 32)
    with pytest.raises(ImageFileError, match="MD5"):
        restore_from(_network_source(data), wrong, dst.partition(1), lock_dir=lock_dir, what="t")
    assert filesystem.detect(dst.partition(1)) is Filesystem.EMPTY
