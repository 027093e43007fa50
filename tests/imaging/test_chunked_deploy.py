"""Chunked images through the decision core and the executor on loop devices: deploy into the
CACHE's chunk store, an update of a new version that moves only the chunks the CACHE lacks and
resumes at chunk granularity after an interruption, restore from the CACHE, UNICAST-DIRECT from
the repository, the cache model's accounting."""

from __future__ import annotations

from pathlib import Path

import pytest

from ogref.core.deploy import DeployRequest, Operation
from ogref.core.events import FetchToCache
from ogref.errors import OgErr
from ogref.model.method import UNICAST_CACHE, UNICAST_DIRECT, Method
from ogref.model.policy import EngineConfig
from ogref.model.storage import Filesystem, TableKind
from ogref.runtime.cachefs import CachePartition, init_cache
from ogref.runtime.chunked import image, inventory, transfer
from ogref.runtime.chunked.create import create_chunked
from ogref.runtime.disk import PartSpec
from ogref.runtime.executor import Executor, Machine
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.mount import Mount
from ogref.units import MIB

from .conftest import MakeDisk, fill_partition, hash_partition, tree_hash
from .test_chunked import _change

pytestmark = [pytest.mark.root, pytest.mark.imaging]


def _run(machine: Machine, name: str, method: Method, op: Operation) -> tuple[int, Executor]:
    ex = Executor(machine)
    fin = ex.run(DeployRequest(op, name, method, 1, 1, postconf=False), EngineConfig())
    return int(fin.code), ex


def _moved(ex: Executor) -> int:
    fetches = [c for c in ex.commands if isinstance(c, FetchToCache)]
    assert len(fetches) == 1
    return fetches[0].size


def test_update_moves_only_missing_chunks_and_resumes(
    make_disk: MakeDisk, tmp_path: Path, lock_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_disk(100 * MIB, TableKind.MSDOS, [PartSpec(96 * MIB, Filesystem.EXT4)])
    node = src.partition(1)
    base_tree = fill_partition(node, Filesystem.EXT4, random_mib=6)
    repo = ImageStore(tmp_path / "repo")
    base = create_chunked(node, repo, "base", lock_dir=lock_dir)
    with Mount(node, Filesystem.EXT4) as root:
        _change(root)
        want = tree_hash(root)
    diff = create_chunked(node, repo, "v2", lock_dir=lock_dir, diff_of="base")
    assert diff.diff_bytes
    pc = make_disk(320 * MIB, TableKind.MSDOS, [PartSpec(100 * MIB, Filesystem.EXT4)])
    init_cache(pc.device, 160 * MIB)
    machine = Machine({1: pc.device}, repo.root, tmp_path / "cache", lock_dir, "pc", grub=False)

    code, ex = _run(machine, "base", UNICAST_CACHE, Operation.RESTORE_COMMAND)
    assert code == OgErr.OK
    assert hash_partition(machine.partition(1, 1), Filesystem.EXT4) == base_tree
    assert _moved(ex) == base.stats.new_stored_bytes

    # an update of v2 cut after a few chunks: those chunks stay, whole and checked
    real = transfer.DirectorySource.frame
    calls = {"n": 0}

    def flaky(self: transfer.DirectorySource, digest: str) -> bytes:
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(5, "Input/output error")
        return real(self, digest)

    monkeypatch.setattr(transfer.DirectorySource, "frame", flaky)
    code, ex = _run(machine, "v2", UNICAST_CACHE, Operation.UPDATE_CACHE)
    assert code == OgErr.UPDATECACHE
    first = _moved(ex)
    assert first == diff.diff_bytes  # counted against the base's chunks, not the whole image
    monkeypatch.setattr(transfer.DirectorySource, "frame", real)

    code, ex = _run(machine, "v2", UNICAST_CACHE, Operation.RESTORE_COMMAND)
    assert code == OgErr.OK, ex.commands[-1]
    second = _moved(ex)
    assert 0 < second < first  # resumed: the chunks of the first attempt were not asked again
    assert hash_partition(machine.partition(1, 1), Filesystem.EXT4) == want

    with CachePartition(machine.partition(1, 4), tmp_path / "cache2") as cache:
        model = cache.model()
        held = {i.name: i for i in model.images}
        assert held["base"].chunked and held["v2"].chunked and held["v2"].complete
        assert held["v2"].checksum == diff.manifest.digest
        sizes = inventory.chunk_sizes(image.chunk_store(cache.store))
        assert model.shared + held["base"].size + held["v2"].size == sum(sizes.values())
        assert model.shared > 0  # the chunks the two versions share are counted once


def test_unicast_direct_reads_chunks_from_the_repository(
    make_disk: MakeDisk, tmp_path: Path, lock_dir: Path
) -> None:
    src = make_disk(68 * MIB, TableKind.MSDOS, [PartSpec(64 * MIB, Filesystem.EXT4)])
    want = fill_partition(src.partition(1), Filesystem.EXT4, random_mib=2)
    repo = ImageStore(tmp_path / "repo")
    create_chunked(src.partition(1), repo, "lin", lock_dir=lock_dir)
    pc = make_disk(80 * MIB, TableKind.MSDOS, [PartSpec(72 * MIB, Filesystem.EXT4)])
    machine = Machine({1: pc.device}, repo.root, tmp_path / "cache", lock_dir, "pc", grub=False)
    code, _ = _run(machine, "lin", UNICAST_DIRECT, Operation.RESTORE_COMMAND)
    assert code == OgErr.OK
    assert hash_partition(machine.partition(1, 1), Filesystem.EXT4) == want
    # a chunk missing from the repository: found at inspection, 33, the partition untouched
    victim = next(p for p in image.chunk_store(repo).root.rglob("*.zst"))
    victim.unlink()
    code, _ = _run(machine, "lin", UNICAST_DIRECT, Operation.RESTORE_COMMAND)
    assert code == OgErr.IMAGEFILE
    assert hash_partition(machine.partition(1, 1), Filesystem.EXT4) == want
