"""updateCache / deploy on real devices, driven by the decision core through the executor."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ogref.core.deploy import DeployRequest, Operation
from ogref.errors import OgErr
from ogref.model.method import TORRENT_CACHE, UNICAST_CACHE, UNICAST_DIRECT
from ogref.model.policy import EngineConfig
from ogref.model.storage import Filesystem, TableKind
from ogref.runtime import cacheupdate, disk, filesystem, imagefile
from ogref.runtime.cachefs import CachePartition, find_cache, init_cache
from ogref.runtime.create import create_image
from ogref.runtime.disk import PartSpec
from ogref.runtime.executor import Executor, Machine
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.mount import Mount
from ogref.units import MIB

from .conftest import MakeDisk, fill_partition, hash_partition

pytestmark = [pytest.mark.root, pytest.mark.imaging]

ETC = ("etc",)  # configureOs rewrites /etc: compare everything else


@pytest.fixture
def client(make_disk: MakeDisk, tmp_path: Path, lock_dir: Path) -> tuple[Machine, str]:
    """A client: disk 1 = target partition 1 + CACHE (4); a repository with image 'linux'."""
    src = make_disk(256 * MIB, TableKind.MSDOS, [PartSpec(128 * MIB, Filesystem.EXT4)])
    fill_partition(src.partition(1), Filesystem.EXT4)
    want = hash_partition(src.partition(1), Filesystem.EXT4, ETC)
    repo = ImageStore(tmp_path / "repo")
    create_image(src.partition(1), repo, "linux", lock_dir=lock_dir)
    pc = make_disk(512 * MIB, TableKind.MSDOS, [PartSpec(160 * MIB, Filesystem.EXT4)])
    init_cache(pc.device, 128 * MIB)
    machine = Machine(
        {1: pc.device}, repo.root, tmp_path / "cache", lock_dir, "aula1-pc07", grub=False
    )
    return machine, want


def _deploy(machine: Machine, method=UNICAST_CACHE, policy=None, op=Operation.RESTORE_COMMAND):  # type: ignore[no-untyped-def]
    ex = Executor(machine)
    request = DeployRequest(op, "linux", method, 1, 1)
    fin = ex.run(request, policy or EngineConfig())
    return fin, ex


def test_cache_partition_is_made_as_opengnsys_makes_it(make_disk: MakeDisk) -> None:
    for table, name, type_id in ((TableKind.MSDOS, "", "ca"), (TableKind.GPT, "CACHE", "")):
        d = make_disk(256 * MIB, table, [PartSpec(64 * MIB)])
        node = init_cache(d.device, 64 * MIB)
        entries = {e[0]: e for e in disk.partition_entries(d.device)}
        assert node.endswith("p4") and entries[4][2] == name and entries[4][3] == type_id
        assert filesystem.probe(node)["LABEL"] == "CACHE"
        assert find_cache(d.device) == 4
        # at the end of the disk
        assert entries[4][1] >= 63 * MIB
        assert disk.read_disk(d.device).partition(4).is_cache  # type: ignore[union-attr]


def test_deploy_fetches_then_reuses_the_cached_copy(client: tuple[Machine, str]) -> None:
    machine, want = client
    fin, ex = _deploy(machine)
    assert fin.code == OgErr.OK, fin.message
    text = " ".join(str(c) for c in ex.commands)
    assert "FetchToCache" in text
    assert hash_partition(machine.partition(1, 1), Filesystem.EXT4, ETC) == want
    fin2, ex2 = _deploy(machine)
    assert fin2.code == OgErr.OK
    assert "FetchToCache" not in " ".join(str(c) for c in ex2.commands)
    assert any("no transfer" in r or "current" in r for r in fin2.reasons)


def test_postconf_sets_hostname_and_fstab(client: tuple[Machine, str]) -> None:
    machine, _ = client
    fin, ex = _deploy(machine)
    assert fin.code == OgErr.OK
    node = machine.partition(1, 1)
    uuid = filesystem.uuid(node)
    with Mount(node, Filesystem.EXT4, readonly=True) as root:
        assert (root / "etc/hostname").read_text() == "aula1-pc07\n"
        fstab = (root / "etc/fstab").read_text()
    assert re.search(rf"^UUID={uuid}\s+/\s", fstab, re.M)
    assert "swap" not in fstab  # no swap partition on the disk: the line is dropped
    assert any("GRUB" in n for n in ex.notes)


def test_stale_cached_copy_is_replaced(client: tuple[Machine, str]) -> None:
    machine, want = client
    assert _deploy(machine)[0].code == OgErr.OK
    cache = CachePartition(machine.partition(1, 4), machine.cache_root)
    with cache:
        files = cache.store.files("linux")
        with open(files.img, "r+b") as f:
            f.write(b"garbage")
        imagefile.write_text(files.full_sum, imagefile.md5_full(files.img) + "\n")
    fin, ex = _deploy(machine)
    assert fin.code == OgErr.OK, fin.message
    assert "DeleteCachedCopy" in " ".join(str(c) for c in ex.commands)
    assert hash_partition(machine.partition(1, 1), Filesystem.EXT4, ETC) == want


def test_checksum_mismatch_after_transfer_is_31_and_the_copy_is_deleted(
    client: tuple[Machine, str],
) -> None:
    machine, _ = client
    repo = ImageStore(machine.repository)
    imagefile.write_text(repo.files("linux").full_sum, "0" * 32 + "\n")  # repository's sum lies
    fin, _ = _deploy(machine)
    assert fin.code == OgErr.UPDATECACHE
    with CachePartition(machine.partition(1, 4), machine.cache_root) as cache:
        assert not cache.store.files("linux").img.exists()


def test_no_cache_falls_back_to_unicast_direct(client: tuple[Machine, str]) -> None:
    machine, want = client
    disk.delete_partition(machine.device(1), 4)
    fin, _ = _deploy(machine, TORRENT_CACHE)
    assert fin.code == OgErr.OK and fin.method_used == UNICAST_DIRECT
    assert hash_partition(machine.partition(1, 1), Filesystem.EXT4, ETC) == want
    fin, _ = _deploy(machine, policy=EngineConfig.opengnsys_1_1_1d())
    assert fin.code == OgErr.NOTCACHE


def test_interrupted_copy_resumes(client: tuple[Machine, str]) -> None:
    machine, _ = client
    repo = ImageStore(machine.repository)
    found = imagefile.inspect(repo, "linux")
    assert found.image is not None
    with CachePartition(machine.partition(1, 4), machine.cache_root) as cache:
        dst = cache.store.files("linux")
        dst.img.parent.mkdir(parents=True, exist_ok=True)
        half = repo.files("linux").img.read_bytes()[: found.image.stored_size // 2]
        dst.img.write_bytes(half)
        imagefile.write_text(dst.partial, found.image.checksum + "\n")
        model = cache.model()
        assert model.get("linux") is not None and not model.get("linux").complete  # type: ignore[union-attr]
        done = cacheupdate.fetch_unicast(repo, cache.store, found.image, resume=True)
        assert done.resumed_from == len(half)
        assert done.checksum == found.image.checksum and not dst.partial.exists()


def test_cli_deploy_image_json(client: tuple[Machine, str]) -> None:
    from ogref.runtime.cli import app

    machine, want = client
    args = [
        "deploy-image", "REPO", "/linux", "1", "1", "UNICAST",
        "--disk", f"1={machine.device(1)}", "--repo-dir", str(machine.repository),
        "--cache-root", str(machine.cache_root), "--lock-dir", str(machine.lock_dir),
        "--no-grub", "--hostname", "pc01", "--json",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["code"] == 0 and out["method"] == "UNICAST-CACHE"
    assert hash_partition(machine.partition(1, 1), Filesystem.EXT4, ETC) == want
    missing = CliRunner().invoke(app, [*args[:2], "/nothere", *args[3:]])
    assert missing.exit_code == 2
