"""Repository housekeeping without devices: synthetic chunked images (a used-block stream cut
into the store, as a create cuts partclone's) to delete, collect and report on; the same
protocol a create follows (image lock held, chunks claimed or written, manifest published)
interleaved with a collection at its two dangerous moments."""

from __future__ import annotations

import io
import json
import os
import random
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ogref.errors import LockedError, NotFoundError
from ogref.model.storage import Filesystem
from ogref.runtime import partclone
from ogref.runtime.chunked import chunker, garbage, image, transfer, usage
from ogref.runtime.chunked.cli import app
from ogref.runtime.chunked.manifest import Chunking, Manifest
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.lock import LockFile

BS = 4096
SMALL = Chunking(1024, 4096, 16384)


def _data(seed: int, blocks: int = 64) -> bytes:
    return random.Random(seed).randbytes(blocks * BS)


def _make(repo: ImageStore, name: str, data: bytes) -> Manifest:
    """A chunked image of ``data`` (every block used), made as a create makes one."""
    blocks = len(data) // BS
    header = partclone.Header("0.3.23", "EXTFS", blocks * BS, BS, blocks, blocks)
    store = image.chunk_store(repo)
    files = repo.files(name)
    with LockFile(files.lock, name):
        refs, _ = chunker.cut(io.BytesIO(data), store, chunking=SMALL, workers=1)
        bitmap = b"\xff" * ((blocks + 7) // 8)
        made = Manifest(header, Filesystem.EXT4, bitmap, tuple(refs), SMALL)
        store.sync()
        image.publish(repo, files.name, made)
    return made


def _chunks(made: Manifest) -> set[str]:
    return {c.digest for c in made.chunks}


def _age(repo: ImageStore, seconds: int = 3600) -> None:
    """Make every chunk look written long ago (as a real repository's are)."""
    for _, path in image.chunk_store(repo).entries():
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 10**9))


def test_delete_frees_only_unshared_chunks_and_reports_usage(tmp_path: Path) -> None:
    repo = ImageStore(tmp_path / "repo")
    common = _data(1, 48)
    a = _make(repo, "a", common + _data(2, 16))
    b = _make(repo, "b", common + _data(3, 16))
    shared = _chunks(a) & _chunks(b)
    assert shared and _chunks(a) - shared
    report = usage.report(repo)
    rows = {r.name: r for r in report.images}
    store = image.chunk_store(repo)
    only_a = sum(store.size_on_disk(d) for d in _chunks(a) - shared)
    assert rows["a"].owned_bytes == only_a
    assert rows["a"].shared_bytes == sum(store.size_on_disk(d) for d in shared)
    assert report.repository_bytes == report.chunk_store_bytes < report.images_bytes
    assert report.dedup_ratio is not None and report.dedup_ratio < 1
    _age(repo)
    done = garbage.delete(repo, "a")
    assert done.collected is not None and done.collected.bytes_freed == only_a
    assert {d for d, _ in store.entries()} == _chunks(b)
    assert image.verify(repo, "b") == []
    assert not repo.files("a").lock.exists()
    with pytest.raises(NotFoundError):
        garbage.delete(repo, "a")


def test_delete_ant_keeps_what_the_current_version_or_a_differential_uses(tmp_path: Path) -> None:
    repo = ImageStore(tmp_path / "repo")
    common = _data(1, 48)
    old = _make(repo, "v", common + _data(2, 16))
    new = _make(repo, "v", common + _data(3, 16))  # old becomes v.manifest.json.ant
    assert image.manifest_path(repo, "v").with_suffix(".json.ant").is_file()
    _age(repo)
    done = garbage.delete(repo, "v", version="ant")
    assert done.removed == ["v.manifest.json.ant"]
    assert done.collected is not None
    assert done.collected.chunks_freed == len(_chunks(old) - _chunks(new))
    assert image.verify(repo, "v") == []
    with pytest.raises(NotFoundError, match="no previous version"):
        garbage.delete(repo, "v", version="ant")


def test_gc_frees_chunks_of_a_removed_manifest_and_finishes_interrupted_work(
    tmp_path: Path,
) -> None:
    repo = ImageStore(tmp_path / "repo")
    keep = _make(repo, "keep", _data(1))
    gone = _make(repo, "gone", _data(2))
    image.manifest_path(repo, "gone").unlink()
    store = image.chunk_store(repo)
    # an interrupted collection set aside a chunk 'keep' needs, and one nobody needs
    needed, spare = sorted(_chunks(keep))[0], sorted(_chunks(gone))[0]
    for d in (needed, spare):
        os.replace(store.path(d), store.path(d).with_name(f".{d}.zst{garbage.ASIDE}1"))
    stale = store.path(needed).with_name(f".{needed}.99.1.tmp")
    stale.write_bytes(b"half")
    _age(repo)
    os.utime(stale, ns=(0, 0))
    done = garbage.collect(repo)
    assert done.chunks_restored == 1 and done.temporaries_removed == 1
    assert done.chunks_freed == len(_chunks(gone)) - 1
    assert image.verify(repo, "keep") == []
    assert {d for d, _ in store.entries()} == _chunks(keep)
    assert not list(store.root.glob("*/.*"))


def test_gc_is_refused_while_a_create_holds_its_image_lock(tmp_path: Path) -> None:
    """A create that started before the collection: its claimed chunks are older than the
    epoch and no manifest names them yet, so the collection must not run at all."""
    repo = ImageStore(tmp_path / "repo")
    old = _make(repo, "old", _data(1))
    image.manifest_path(repo, "old").unlink()  # its chunks: garbage, which 'new' will reuse
    _age(repo)
    claimed = threading.Event()
    go_on = threading.Event()
    store = image.chunk_store(repo)

    def create() -> None:
        with LockFile(repo.files("new").lock, "new"):
            for d in _chunks(old):
                assert store.claim(d)
            # claimed before the collection's epoch: make that unmistakable on coarse clocks
            _age(repo)
            claimed.set()
            assert go_on.wait(30)
            made = Manifest(old.header, old.filesystem, old.bitmap, old.chunks, SMALL)
            image.publish(repo, "new", made)

    worker = threading.Thread(target=create)
    worker.start()
    try:
        assert claimed.wait(30)
        with pytest.raises(LockedError, match=r"new\.img\.lock"):
            garbage.collect(repo)
    finally:
        go_on.set()
        worker.join(30)
    assert image.verify(repo, "new") == []


def test_gc_keeps_chunks_a_create_claims_after_the_epoch(tmp_path: Path) -> None:
    """A create that starts after the collection checked the locks and read the manifests: the
    chunks it reuses are unreferenced in the collection's view, but claimed after its epoch."""
    repo = ImageStore(tmp_path / "repo")
    old = _make(repo, "old", _data(1))
    image.manifest_path(repo, "old").unlink()
    _age(repo)
    results: list[Manifest] = []

    def create() -> None:
        results.append(_make(repo, "new", _data(1)))

    def in_between(phase: str) -> None:
        if phase == "scanned":  # the create runs whole, in a thread, while the GC waits
            worker = threading.Thread(target=create)
            worker.start()
            worker.join(60)

    done = garbage.collect(repo, on_phase=in_between)
    assert results and _chunks(results[0]) == _chunks(old)
    assert done.chunks_freed == 0 and done.chunks_kept_recent == len(_chunks(old))
    assert image.verify(repo, "new") == []


def test_cli_delete_gc_usage(tmp_path: Path) -> None:
    repo = ImageStore(tmp_path / "repo")
    _make(repo, "a", _data(1))
    _make(repo, "b", _data(1)[: 32 * BS] + _data(2, 32))
    runner = CliRunner()
    where = ["--dir", str(repo.root)]
    shown = json.loads(runner.invoke(app, ["usage", *where]).stdout)
    assert shown["code"] == 0 and [r["name"] for r in shown["images"]] == ["a", "b"]
    assert shown["dedup_ratio"] < 1
    _age(repo)
    gone = json.loads(runner.invoke(app, ["delete", "a", *where]).stdout)
    assert gone["code"] == 0 and gone["collected"]["chunks_freed"] > 0
    assert json.loads(runner.invoke(app, ["gc", *where]).stdout)["chunks_freed"] == 0
    missing = runner.invoke(app, ["delete", "a", *where])
    assert missing.exit_code == 2
    table = usage_table_text(repo)
    assert "dedup ratio" in table and "b" in table


def usage_table_text(repo: ImageStore) -> str:
    from rich.console import Console

    from ogref.runtime.chunked.cli import usage_table

    console = Console(record=True, width=160)
    console.print(usage_table(usage.report(repo), str(repo.root)))
    return console.export_text()


def test_usage_and_delete_of_an_opengnsys_image_beside_chunked_ones(tmp_path: Path) -> None:
    repo = ImageStore(tmp_path / "repo")
    _make(repo, "ck", _data(1))
    files = repo.files("og")
    files.img.write_bytes(b"x" * 5000)
    files.info.write_text("PARTCLONE:ZSTD:EXT4:1000\n")
    Path(f"{files.img}.ant").write_bytes(b"y" * 3000)
    report = usage.report(repo)
    rows = {(r.name, r.version): r for r in report.images}
    assert rows[("og", "current")].stored_bytes == 5000
    assert rows[("og", "current")].logical_bytes == 1000 * 1024
    assert rows[("og", "ant")].format == "partclone"
    assert report.image_file_bytes == 8000
    assert report.repository_bytes == report.chunk_store_bytes + 8000
    gone = garbage.delete(repo, "og", version="ant")
    assert gone.removed == ["og.img.ant"] and files.img.exists()
    garbage.delete(repo, "og")
    assert not files.img.exists() and not files.info.exists()
    assert [r.name for r in usage.report(repo).images] == ["ck"]


def test_a_mount_that_fails_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ogref.errors import FilesystemError, FormatError, ImageFileError
    from ogref.runtime.chunked import browse

    repo = ImageStore(tmp_path / "repo")
    made = _make(repo, "a", _data(1))
    target, state = tmp_path / "dir", tmp_path / "state"
    target.mkdir()
    (target / "x").write_text("x")
    with pytest.raises(FormatError):  # not empty
        browse.mount_image(repo, "a", target, state_dir=state)
    (target / "x").unlink()
    monkeypatch.setattr(browse, "SERVER", "ogref.no_such_server")  # the server dies at once
    with pytest.raises(FilesystemError, match="FUSE server stopped"):
        browse.mount_image(repo, "a", target, state_dir=state)
    assert not list(state.iterdir()) and not list(target.iterdir())
    image.chunk_store(repo).path(made.chunks[0].digest).unlink()
    with pytest.raises(ImageFileError, match="missing"):  # before anything is started
        browse.mount_image(repo, "a", target, state_dir=state)
    with pytest.raises(NotFoundError):
        browse.unmount_image(target, state_dir=state)


def test_delete_removes_the_pack_and_its_torrent(tmp_path: Path) -> None:
    repo = ImageStore(tmp_path / "repo")
    _make(repo, "a", _data(1))
    pack = transfer.ensure_pack(repo, "a")
    assert pack is not None and pack.is_file()
    Path(f"{pack}.torrent").write_bytes(b"d4:infoe")  # as make_pack_torrent leaves it
    gone = garbage.delete(repo, "a")
    assert not pack.exists() and not Path(f"{pack}.torrent").exists()
    assert "a.pack" in gone.removed and not list(image.chunk_store(repo).entries())


def test_libvirt_lab_announces_chunked_images_too(tmp_path: Path) -> None:
    """The VM lab's repository: a chunked image gets its pack's .torrent, announced here."""
    from ogsim.lab.libvirt.services import announce_here

    repo = ImageStore(tmp_path / "repo")
    _make(repo, "a", _data(2))
    assert announce_here(repo.root, "10.9.8.7") == ["a"]
    torrent = Path(f"{transfer.pack_path(repo, 'a')}.torrent").read_bytes()
    assert b"10.9.8.7" in torrent
