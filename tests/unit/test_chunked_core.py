"""The decision core with chunked images: the same checks and errors as an ``.img``, and a cache
update that counts (and moves) only the chunks the CACHE lacks.

Driven through the real session and the model oracle; the situations are built here by hand.
"""

from __future__ import annotations

from dataclasses import replace

from ogref.core.deploy import DeployRequest, DeploySession, Operation
from ogref.core.driver import ModelOracle, chunks_present, drive
from ogref.core.events import (
    CacheInspected,
    Command,
    DeleteCachedCopy,
    EvictFromCache,
    FetchToCache,
    Finish,
    InspectImage,
    RestorePartition,
    Source,
)
from ogref.core.table import Admission, CopyState, Room, admission, copy_state, room_for
from ogref.errors import OgErr
from ogref.model import (
    Cache,
    CachedImage,
    CacheFullAction,
    Computer,
    Disk,
    DiskLayout,
    EngineConfig,
    Filesystem,
    Image,
    ImageFormat,
    ImageKind,
    Method,
    Partition,
    Repository,
)
from ogref.units import GIB, MIB

BASE = Image(
    "win10", Filesystem.NTFS, 20 * GIB, 8 * GIB, checksum="b" * 64, format=ImageFormat.CHUNKED
)
NEW = Image(
    "win10-v2",
    Filesystem.NTFS,
    20 * GIB,
    8 * GIB + 100 * MIB,
    checksum="c" * 64,
    format=ImageFormat.CHUNKED,
    kind=ImageKind.DIFFERENTIAL,
    base="win10",
    added_size=500 * MIB,
)
REPO = Repository("repo", "10.0.0.1", (BASE, NEW))


def pc(cache: Cache | None, part: int = 40 * GIB, fs: Filesystem = Filesystem.NTFS) -> Computer:
    disk = Disk(1, 200 * GIB, partitions=(Partition(1, part, fs),))
    return Computer("pc01", "10.0.1.11/24", disks=DiskLayout((disk,)), cache=cache)


def run(
    cache: Cache | None,
    image: str = "win10-v2",
    method: str = "UNICAST-CACHE",
    policy: EngineConfig | None = None,
    computer: Computer | None = None,
    operation: Operation = Operation.RESTORE_COMMAND,
) -> tuple[DeploySession, list[Command], ModelOracle]:
    request = DeployRequest(operation, image, Method.parse(method))
    session = DeploySession(request, policy or EngineConfig())
    oracle = ModelOracle(computer or pc(cache), REPO)
    return session, drive(session, oracle), oracle


def holding_base(free: int) -> Cache:
    size = 30 * GIB
    return Cache(
        size,
        (CachedImage("win10", BASE.stored_size, BASE.checksum, chunked=True),),
        size - BASE.stored_size - free,
    )


def test_update_moves_only_the_chunks_the_cache_lacks() -> None:
    _session, cmds, oracle = run(holding_base(free=2 * GIB))
    fetch = next(c for c in cmds if isinstance(c, FetchToCache))
    assert fetch.size == NEW.added_size  # not the 8.1 GiB of the whole image
    fin = cmds[-1]
    assert isinstance(fin, Finish) and fin.code == OgErr.OK
    restore = next(c for c in cmds if isinstance(c, RestorePartition))
    assert restore.source is Source.CACHE
    cache = oracle.cache
    assert cache is not None and cache.get("win10-v2") is not None and cache.get("win10")
    # the shared chunks are counted once: the cache grew by the added bytes only
    assert holding_base(2 * GIB).free - cache.free == NEW.added_size


def test_room_counts_only_the_bytes_to_add() -> None:
    # 1 GiB free: far too little for the 8.1 GiB image, enough for its 500 MiB of new chunks
    session, cmds, _ = run(holding_base(free=GIB))
    assert session.trace[0] == "A11"
    assert isinstance(cmds[-1], Finish) and cmds[-1].code == OgErr.OK
    # 400 MiB free: not enough even for the new chunks → 16 (no fallback with NONE)
    policy = EngineConfig(
        restore_protocol_not_cache=EngineConfig.opengnsys_1_1_1d().restore_protocol_not_cache
    )
    session, cmds, _ = run(holding_base(free=400 * MIB), policy=policy)
    assert isinstance(cmds[-1], Finish) and cmds[-1].code == OgErr.CACHESIZE
    assert "chunks to add 500" in " ".join(getattr(c, "text", "") for c in cmds)


def test_without_the_base_the_whole_image_counts() -> None:
    empty = Cache(30 * GIB, (), 30 * GIB - 2 * GIB)
    _session, cmds, _ = run(empty, policy=EngineConfig.opengnsys_1_1_1d())
    assert isinstance(cmds[-1], Finish) and cmds[-1].code == OgErr.CACHESIZE


def test_stale_chunked_copy_is_kept_not_replaced() -> None:
    # the cache holds an older version of the same name: its chunks are the update's base
    size = 30 * GIB
    old = CachedImage("win10-v2", BASE.stored_size, "d" * 64, chunked=True)
    cache = Cache(size, (old,), size - BASE.stored_size - 2 * GIB)
    assert copy_state(cache, NEW) is CopyState.STALE
    session, cmds, oracle = run(cache)
    assert session.trace[0] == "C1"
    assert not any(isinstance(c, DeleteCachedCopy) for c in cmds)
    assert oracle.cache is not None and oracle.cache.get("win10-v2").checksum == NEW.checksum  # type: ignore[union-attr]
    # an .img's stale copy is still replaced (deleted first)
    img = replace(NEW, format=ImageFormat.PARTCLONE, kind=ImageKind.MONOLITHIC, added_size=0)
    row = admission(True, CopyState.STALE, Room.FITS, CacheFullAction.NONE, False)
    assert row.decision is Admission.REPLACE
    assert room_for(cache, img, CopyState.STALE) is Room.FITS
    assert room_for(cache, NEW, CopyState.STALE, present=0) is Room.GE_FREE


def test_current_chunked_copy_is_used() -> None:
    size = 30 * GIB
    cur = CachedImage("win10-v2", NEW.stored_size, NEW.checksum, chunked=True)
    session, cmds, _ = run(Cache(size, (cur,), 0))
    assert session.trace[0] == "A2"
    assert not any(isinstance(c, FetchToCache) for c in cmds)
    # the same digest in an .img copy's place is not the chunked image
    as_img = CachedImage("win10-v2", NEW.stored_size, NEW.checksum)
    assert copy_state(Cache(size, (as_img,), 0), NEW) is CopyState.STALE


def test_same_checks_and_errors_as_an_img() -> None:
    # data larger than the partition: 30; another filesystem: 20; missing: 2
    _, cmds, _ = run(holding_base(GIB), computer=pc(holding_base(GIB), part=10 * GIB))
    assert isinstance(cmds[-1], Finish) and cmds[-1].code == OgErr.IMGSIZEPARTITION
    _, cmds, _ = run(holding_base(GIB), computer=pc(holding_base(GIB), fs=Filesystem.EXT4))
    assert isinstance(cmds[-1], Finish) and cmds[-1].code == OgErr.FILESYS
    _, cmds, _ = run(holding_base(GIB), image="nothere")
    assert isinstance(cmds[-1], Finish) and cmds[-1].code == OgErr.NOTFOUND


def test_strict_never_applies_1_1_1d_rows_to_chunked_images() -> None:
    size = 30 * GIB
    old = CachedImage("win10-v2", BASE.stored_size, "d" * 64, chunked=True)
    cache = Cache(size, (old,), size - BASE.stored_size - 2 * GIB)
    session, cmds, _ = run(cache, policy=EngineConfig.opengnsys_1_1_1d_strict())
    assert session.trace[0] == "C1"  # not S3's DROP
    assert isinstance(cmds[-1], Finish) and cmds[-1].code == OgErr.OK
    # nor 1.1.1d's checks: the size is checked before the transfer (30, not 5 after it)
    small = pc(cache, part=10 * GIB)
    _, cmds, _ = run(cache, policy=EngineConfig.opengnsys_1_1_1d_strict(), computer=small)
    assert not any(isinstance(c, FetchToCache) for c in cmds)
    assert isinstance(cmds[-1], Finish) and cmds[-1].code == OgErr.IMGSIZEPARTITION


def test_eviction_counts_the_bytes_to_add() -> None:
    size = 30 * GIB
    other = CachedImage("other", 3 * GIB, "e" * 32, last_used=1.0)
    base = CachedImage("win10", BASE.stored_size, BASE.checksum, chunked=True, last_used=2.0)
    cache = Cache(size, (other, base), size - 3 * GIB - BASE.stored_size - 100 * MIB)
    policy = EngineConfig(action_cache_full=CacheFullAction.EVICT)
    _, cmds, _oracle = run(cache, policy=policy)
    evict = next(c for c in cmds if isinstance(c, EvictFromCache))
    assert evict.names == ("other",)  # the base stays: its chunks are shared
    assert isinstance(cmds[-1], Finish) and cmds[-1].code == OgErr.OK


def test_present_reported_by_the_driver_is_what_counts() -> None:
    base = holding_base(GIB)
    assert chunks_present(base, NEW) == NEW.stored_size - NEW.added_size
    assert chunks_present(base, BASE) == BASE.stored_size
    assert chunks_present(Cache(30 * GIB), NEW) == 0

    class Lying(ModelOracle):
        def answer(self, cmd: Command):  # type: ignore[no-untyped-def]
            ev = super().answer(cmd)
            return CacheInspected(ev.cache, 0) if isinstance(ev, CacheInspected) else ev

    request = DeployRequest(Operation.UPDATE_CACHE, "win10-v2", Method.parse("UNICAST"))
    session = DeploySession(request, EngineConfig.opengnsys_1_1_1d())
    cmds = drive(session, Lying(pc(base), REPO))
    assert isinstance(cmds[-1], Finish) and cmds[-1].code == OgErr.CACHESIZE
    assert any(isinstance(c, InspectImage) for c in cmds)
