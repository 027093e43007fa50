"""The repository side of chunked images on real loop devices: edit (files added and removed,
visible after a restore; only the changed chunks stored; a link on the way refused), garbage
collection while a real create runs, deletion freeing only unshared chunks, and the read-only
FUSE mount showing the tree a restore gives."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ogref.errors import LockedError, UnsafePathError
from ogref.model.storage import Filesystem, TableKind
from ogref.runtime import filesystem
from ogref.runtime.chunked import garbage, image, usage
from ogref.runtime.chunked.cli import app
from ogref.runtime.chunked.create import create_chunked
from ogref.runtime.chunked.edit import Addition, edit_chunked
from ogref.runtime.chunked.restore import restore_chunked
from ogref.runtime.disk import PartSpec
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.mount import Mount, is_mountpoint
from ogref.units import MIB

from .conftest import MakeDisk, fat_fill, fill_partition, hash_partition, need, tree_hash

pytestmark = [pytest.mark.root, pytest.mark.imaging]

SIZE = 64 * MIB


def _pair(make_disk: MakeDisk, fs: Filesystem = Filesystem.EXT4) -> tuple[str, str]:
    loop = make_disk(2 * SIZE + 4 * MIB, TableKind.GPT, [PartSpec(SIZE, fs), PartSpec(SIZE, fs)])
    return loop.partition(1), loop.partition(2)


def _software(where: Path, seed: int) -> Path:
    """A small 'package': a directory of files."""
    rng = random.Random(seed)
    pkg = where / f"pkg{seed}"
    (pkg / "bin").mkdir(parents=True)
    (pkg / "bin/tool").write_bytes(rng.randbytes(300 * 1024))
    (pkg / "README").write_text("package " * 2000)
    return pkg


@pytest.mark.parametrize("fs", [Filesystem.EXT4, Filesystem.NTFS])
def test_edit_adds_and_removes_and_stores_only_changed_chunks(
    make_disk: MakeDisk, tmp_path: Path, lock_dir: Path, fs: Filesystem
) -> None:
    if fs is Filesystem.NTFS:
        need("mkfs.ntfs", "ntfs-3g", "ntfsfix", "partclone.ntfs")
    src, dst = _pair(make_disk, fs)
    fill_partition(src, fs, random_mib=2)
    repo = ImageStore(tmp_path / "repo")
    first = create_chunked(src, repo, "lin", lock_dir=lock_dir)
    pkg = _software(tmp_path, 1)
    note = tmp_path / "motd"
    note.write_text("edited\n")
    done = edit_chunked(
        repo, "lin", add=[Addition(pkg, "opt/pkg"), Addition(note, "etc/motd")],
        remove=["docs/deep/er/t3.txt", "bin.dat"], message="pkg in, bin.dat out",
        lock_dir=lock_dir, work_dir=tmp_path,
    )  # fmt: skip
    # the same edit made by hand on the source is what a restore of the new version shows
    with Mount(src, fs) as root:
        shutil.copytree(pkg, root / "opt/pkg")
        shutil.copy2(note, root / "etc/motd")
        (root / "docs/deep/er/t3.txt").unlink()
        (root / "bin.dat").unlink()
        want = tree_hash(root)
    restore_chunked(repo, "lin", dst, lock_dir=lock_dir)
    filesystem.check(dst, fs)
    assert hash_partition(dst, fs) == want
    new = image.load(repo, "lin")
    assert new.message == "pkg in, bin.dat out" and done.previous.digest == first.manifest.digest
    ant = image.manifest_path(repo, "lin").with_name("lin.manifest.json.ant")
    assert json.loads(ant.read_bytes())["digest"] == first.manifest.digest
    # about 300 KiB of new data plus metadata: far less than the first create stored
    assert done.created.stats.new_stored_bytes < first.stats.new_stored_bytes // 4
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(UnsafePathError):  # 'link' is a symbolic link in the image
        edit_chunked(repo, "lin", remove=["link/er/t5.txt"], lock_dir=lock_dir, work_dir=scratch)
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True)
    assert str(scratch) not in loops.stdout and not list(scratch.iterdir())  # nothing left
    assert image.load(repo, "lin").digest == new.digest
    assert not repo.files("lin").lock.exists()


def test_edit_fat_with_mtools(make_disk: MakeDisk, tmp_path: Path, lock_dir: Path) -> None:
    need("mkfs.vfat", "mcopy", "mdel", "mmd", "fsck.fat", "partclone.fat")
    src, dst = _pair(make_disk, Filesystem.FAT32)
    fat_fill(src, tmp_path)
    repo = ImageStore(tmp_path / "repo")
    create_chunked(src, repo, "efi", lock_dir=lock_dir)
    grub = tmp_path / "grubx64.efi"
    grub.write_bytes(random.Random(5).randbytes(200 * 1024))
    edit_chunked(
        repo, "efi", add=[Addition(grub, "EFI/ubuntu/grubx64.efi")], remove=["readme.txt"],
        lock_dir=lock_dir, work_dir=tmp_path,
    )  # fmt: skip
    restore_chunked(repo, "efi", dst, lock_dir=lock_dir)
    filesystem.check(dst, Filesystem.FAT32)
    got = tmp_path / "got.efi"
    mtools = ["-i", dst]
    subprocess.run(["mcopy", *mtools, "::/EFI/ubuntu/grubx64.efi", str(got)], check=True)
    assert got.read_bytes() == grub.read_bytes()
    assert subprocess.run(["mtype", *mtools, "::/readme.txt"], capture_output=True).returncode
    boot = subprocess.run(["mdir", *mtools, "::/EFI/BOOT"], capture_output=True, check=True)
    assert b"BOOTX64" in boot.stdout.upper()


def test_gc_during_a_real_create_and_delete_frees_only_unshared_chunks(
    make_disk: MakeDisk, tmp_path: Path, lock_dir: Path
) -> None:
    src, _ = _pair(make_disk)
    fill_partition(src, Filesystem.EXT4, random_mib=2)
    repo = ImageStore(tmp_path / "repo")
    old = create_chunked(src, repo, "old", lock_dir=lock_dir)
    image.manifest_path(repo, "old").unlink()  # its chunks: garbage a new create will reuse
    store = image.chunk_store(repo)
    started, go_on = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def paused(done: int, total: int) -> None:
        if not started.is_set():
            started.set()  # some chunks claimed, none published
            assert go_on.wait(60)

    def create() -> None:
        try:
            create_chunked(src, repo, "new", lock_dir=lock_dir, progress=paused)
        except BaseException as exc:
            failure.append(exc)
            started.set()

    worker = threading.Thread(target=create)
    worker.start()
    try:
        assert started.wait(60)
        with pytest.raises(LockedError):
            garbage.collect(repo)
    finally:
        go_on.set()
        worker.join(120)
    assert not failure
    assert image.verify(repo, "new") == []
    assert garbage.collect(repo).chunks_freed <= 2  # what e2fsck's superblock update changed
    # two images sharing most chunks: deleting one frees only what the other does not use
    with Mount(src, Filesystem.EXT4) as root:
        (root / "extra.bin").write_bytes(random.Random(4).randbytes(MIB))
    create_chunked(src, repo, "more", lock_dir=lock_dir)
    owned = {r.name: r.owned_bytes for r in usage.report(repo).images}
    new_chunks = {c.digest for c in image.load(repo, "new").chunks}
    more_chunks = {c.digest for c in image.load(repo, "more").chunks}
    gone = garbage.delete(repo, "more")
    assert gone.collected is not None and gone.collected.bytes_freed == owned["more"]
    assert {d for d, _ in store.entries()} == new_chunks
    assert new_chunks & more_chunks and image.verify(repo, "new") == []
    assert len(old.manifest.chunks) > 0


def test_cli_edit(make_disk: MakeDisk, tmp_path: Path, lock_dir: Path) -> None:
    src, _ = _pair(make_disk)
    fill_partition(src, Filesystem.EXT4, random_mib=1)
    common = ["--dir", str(tmp_path / "repo"), "--lock-dir", str(lock_dir)]
    runner = CliRunner()
    assert runner.invoke(app, ["create", src, "e", "--format", "chunked", *common]).exit_code == 0
    diff = ["create", src, "d", "--format", "chunked", "--diff-of", "e", *common]
    assert runner.invoke(app, diff).exit_code == 0
    gone = runner.invoke(app, ["edit", "d", "--remove", "no/such/file", *common])
    assert gone.exit_code == 2, gone.stdout
    unsafe = runner.invoke(app, ["edit", "d", "--remove", "../etc", *common])
    assert unsafe.exit_code == 14
    note = tmp_path / "n.txt"
    note.write_text("n")
    ok = runner.invoke(app, ["edit", "d", "--add", f"{note}:n.txt", "--message", "m", *common])
    assert ok.exit_code == 0, ok.stdout
    assert json.loads(ok.stdout)["new_chunks"] >= 1
    edited = image.load(ImageStore(tmp_path / "repo"), "d")
    assert edited.base is not None and edited.base.name == "e"  # still differential


@pytest.mark.parametrize("fs", [Filesystem.EXT4, Filesystem.NTFS])
def test_mount_shows_the_tree_a_restore_gives(
    make_disk: MakeDisk, tmp_path: Path, lock_dir: Path, fs: Filesystem
) -> None:
    if fs is Filesystem.NTFS:
        need("mkfs.ntfs", "ntfs-3g", "partclone.ntfs")
    need("fusermount3")
    pytest.importorskip("mfusepy", reason="mfusepy missing: pip install -e '.[lab]'")
    src, dst = _pair(make_disk, fs)
    fill_partition(src, fs, random_mib=2)
    repo = ImageStore(tmp_path / "repo")
    create_chunked(src, repo, "m", lock_dir=lock_dir)
    restore_chunked(repo, "m", dst, lock_dir=lock_dir)
    want = hash_partition(dst, fs)
    target, state = tmp_path / "browse", tmp_path / "state"
    target.mkdir()
    runner = CliRunner()
    where = ["--dir", str(repo.root), "--state-dir", str(state)]
    shown = runner.invoke(app, ["mount", "m", str(target), *where])
    try:
        assert shown.exit_code == 0, shown.stdout
        pid = json.loads(shown.stdout)["server_pid"]
        assert tree_hash(target) == want
        with pytest.raises(OSError):  # read-only
            (target / "new.txt").write_text("x")
        again = runner.invoke(app, ["mount", "m", str(target), *where])
        assert again.exit_code != 0  # not empty, already mounted
    finally:
        done = runner.invoke(app, ["umount", str(target), "--state-dir", str(state)])
    assert done.exit_code == 0, done.stdout
    assert not is_mountpoint(target) and not list(state.iterdir())
    assert (
        not Path(f"/proc/{pid}/cmdline").exists()
        or b"fusefs" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    )
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True)
    assert str(state) not in loops.stdout
    gone = runner.invoke(app, ["umount", str(target), "--state-dir", str(state)])
    assert gone.exit_code == 2
