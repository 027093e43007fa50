"""The executed OpenGnSys 1.1.1d decision table (reference §11), written out by hand, plus the
deliberate ogLab deviations.  Independent of the table module: these are the expectations."""

from __future__ import annotations

import pytest

from ogref.core.deploy import DeployRequest, DeploySession, Operation
from ogref.core.driver import ModelOracle, drive
from ogref.core.events import (
    Command,
    ConfigureOs,
    DeleteCachedCopy,
    Event,
    FailureKind,
    FetchToCache,
    Finish,
    FormatCache,
    InspectCache,
    RestoreFailed,
    RestorePartition,
    Source,
    TransferFailed,
    TransferFinished,
)
from ogref.core.table import CopyState, Room
from ogref.errors import FormatError, OgErr
from ogref.model import (
    CachedImage,
    CacheFullAction,
    EngineConfig,
    Filesystem,
    Method,
    NotCacheProtocol,
)
from ogref.units import GIB
from tests.unit.situations import IMAGE, REPO, cache_for, computer, kinds, run

OG = EngineConfig.opengnsys_1_1_1d()
CACHE_CMDS = (
    "InspectCache",
    "FormatCache",
    "EmptyCache",
    "EvictFromCache",
    "DeleteCachedCopy",
    "FetchToCache",
)


def finish(cmds: list[Command]) -> Finish:
    last = cmds[-1]
    assert isinstance(last, Finish)
    return last


@pytest.mark.parametrize("method", ["UNICAST-DIRECT", "MULTICAST-DIRECT"])
@pytest.mark.parametrize("cache", [None, "full"])
def test_row1_direct_never_touches_cache(method: str, cache: str | None) -> None:
    c = cache_for(CopyState.STALE, Room.GE_SIZE) if cache else None
    _, cmds = run(c, method, OG)
    assert not set(kinds(cmds)) & set(CACHE_CMDS)
    restore = next(x for x in cmds if isinstance(x, RestorePartition))
    assert restore.source is Source.REPO and finish(cmds).ok


@pytest.mark.parametrize("method", ["UNICAST", "MULTICAST-CACHE", "TORRENT"])
def test_row2_no_cache_is_15_without_fallback_in_1_1_1d(method: str) -> None:
    _, cmds = run(None, method, OG)
    assert finish(cmds).code == OgErr.NOTCACHE and "RestorePartition" not in kinds(cmds)


@pytest.mark.parametrize("room", [Room.GE_SIZE, Room.GE_FREE])
def test_row3_current_copy_restored_without_transfer_whatever_the_room(room: Room) -> None:
    _, cmds = run(cache_for(CopyState.CURRENT, room), "TORRENT", OG)
    assert "FetchToCache" not in kinds(cmds)
    assert next(x for x in cmds if isinstance(x, RestorePartition)).source is Source.CACHE


@pytest.mark.parametrize("acf", list(CacheFullAction))
def test_row4_image_not_smaller_than_cache_is_16_for_any_acf(acf: CacheFullAction) -> None:
    _, cmds = run(
        cache_for(CopyState.ABSENT, Room.GE_SIZE),
        "UNICAST",
        OG.with_overrides(action_cache_full=acf),
    )
    assert finish(cmds).code == OgErr.CACHESIZE and "FormatCache" not in kinds(cmds)


def test_row5_equal_free_with_format_formats_then_fetches() -> None:
    _, cmds = run(
        cache_for(CopyState.ABSENT, Room.GE_FREE),
        "UNICAST",
        OG.with_overrides(action_cache_full=CacheFullAction.FORMAT),
    )
    k = kinds(cmds)
    assert k.index("FormatCache") < k.index("FetchToCache") and finish(cmds).ok


def test_row5_equal_free_with_none_is_16() -> None:
    _, cmds = run(cache_for(CopyState.ABSENT, Room.GE_FREE), "UNICAST", OG)
    assert finish(cmds).code == OgErr.CACHESIZE


class Failing(ModelOracle):
    """The model oracle, but one command answers with a failure."""

    def __init__(self, *a: object, fail: type, event: Event, **k: object) -> None:
        super().__init__(*a, **k)  # type: ignore[arg-type]
        self.fail, self.event = fail, event

    def answer(self, cmd: Command) -> Event | None:
        if isinstance(cmd, self.fail):
            return self.event
        return super().answer(cmd)


def run_failing(
    method: str, fail: type, event: Event, policy: EngineConfig = OG, cache: object = "absent"
) -> list[Command]:
    c = cache_for(CopyState.ABSENT, Room.FITS) if cache == "absent" else None
    oracle = Failing(computer(c), REPO, fail=fail, event=event)
    return run(c, method, policy, oracle=oracle)[1]


@pytest.mark.parametrize(
    ("method", "kind", "code"),
    [
        ("MULTICAST", FailureKind.JOIN, OgErr.PROTOCOLJOINMASTER),
        ("MULTICAST", FailureKind.RECEIVE, OgErr.MCASTRECEIVERFILE),
        ("TORRENT", FailureKind.RECEIVE, OgErr.UPDATECACHE),
        ("UNICAST", FailureKind.RECEIVE, OgErr.UPDATECACHE),
        ("UNICAST", FailureKind.NOT_FOUND, OgErr.NOTFOUND),
    ],
)
def test_rows6_to_8_transfer_failures_never_fall_back(
    method: str, kind: FailureKind, code: OgErr
) -> None:
    policy = EngineConfig()  # even with a fallback policy
    cmds = run_failing(method, FetchToCache, TransferFailed(kind), policy)
    assert finish(cmds).code == code
    assert "RestorePartition" not in kinds(cmds) and "MethodSwitched" not in kinds(cmds)


def test_row6_checksum_mismatch_is_31_and_deletes_the_copy() -> None:
    cmds = run_failing("UNICAST", FetchToCache, TransferFinished("f" * 32))
    assert finish(cmds).code == OgErr.UPDATECACHE
    assert isinstance(cmds[-3], DeleteCachedCopy) or "DeleteCachedCopy" in kinds(cmds)
    assert "RestorePartition" not in kinds(cmds)


@pytest.mark.parametrize(
    ("rpnc", "method", "used"),
    [
        (NotCacheProtocol.UNICAST, "MULTICAST", "UNICAST-DIRECT"),
        (NotCacheProtocol.UNICAST, "TORRENT", "UNICAST-DIRECT"),
        (NotCacheProtocol.MULTICAST, "MULTICAST", "MULTICAST-DIRECT"),
        (NotCacheProtocol.MULTICAST, "TORRENT", "UNICAST-DIRECT"),
        (NotCacheProtocol.MULTICAST, "UNICAST", "UNICAST-DIRECT"),
    ],
)
def test_row9_fallback_mapping(rpnc: NotCacheProtocol, method: str, used: str) -> None:
    session, cmds = run(None, method, OG.with_overrides(restore_protocol_not_cache=rpnc))
    assert str(session.method_used) == used and finish(cmds).ok


def test_row10_restore_failure_is_5_and_skips_configure_os() -> None:
    cmds = run_failing(
        "UNICAST-DIRECT", RestorePartition, RestoreFailed(FailureKind.IO), cache=None
    )
    assert finish(cmds).code == OgErr.IMAGE and "ConfigureOs" not in kinds(cmds)


def test_row11_restore_ok_runs_configure_os() -> None:
    _, cmds = run(cache_for(CopyState.ABSENT, Room.FITS), "UNICAST", OG)
    assert any(isinstance(c, ConfigureOs) for c in cmds) and finish(cmds).ok


# ----------------------------------------------------------------- ogLab deviations (documented)


def test_fix_stale_head_is_redownloaded_for_unicast() -> None:
    """1.1.1d accepts a copy whose last MiB matches (exit 0, outdated image); we compare whole files."""
    _, cmds = run(cache_for(CopyState.STALE, Room.FITS), "UNICAST", OG)
    assert "FetchToCache" in kinds(cmds) and "DeleteCachedCopy" in kinds(cmds)


def test_fix_multicast_direct_receive_error_is_59_not_5() -> None:
    cmds = run_failing(
        "MULTICAST-DIRECT", RestorePartition, RestoreFailed(FailureKind.RECEIVE), cache=None
    )
    assert finish(cmds).code == OgErr.MCASTRECEIVERPARTITION


def test_fix_multicast_direct_join_error_is_60_not_5() -> None:
    cmds = run_failing(
        "MULTICAST-DIRECT", RestorePartition, RestoreFailed(FailureKind.JOIN), cache=None
    )
    assert finish(cmds).code == OgErr.PROTOCOLJOINMASTER


def test_fix_corrupt_stream_is_33() -> None:
    cmds = run_failing(
        "UNICAST-DIRECT", RestorePartition, RestoreFailed(FailureKind.CORRUPT), cache=None
    )
    assert finish(cmds).code == OgErr.IMAGEFILE


def test_fix_partial_torrent_does_not_break_a_unicast_update() -> None:
    """1.1.1d: a leftover .torrent.bf makes every later UNICAST update exit 31 with a good copy."""
    c = cache_for(CopyState.PARTIAL, Room.FITS)
    _, cmds = run(c, "UNICAST", OG)
    assert finish(cmds).ok


def test_fix_stale_copy_kept_when_the_image_cannot_fit() -> None:
    """1.1.1d deletes the stale copy before the size check, so a 16 leaves nothing."""
    _, cmds = run(cache_for(CopyState.STALE, Room.GE_SIZE), "UNICAST", OG)
    assert finish(cmds).code == OgErr.CACHESIZE and "DeleteCachedCopy" not in kinds(cmds)


def test_size_check_before_transfer_is_30() -> None:
    c = cache_for(CopyState.ABSENT, Room.FITS)
    request = DeployRequest(Operation.RESTORE_COMMAND, "img", Method.parse("UNICAST"))
    session = DeploySession(request, OG)
    pc = computer(c, part_size=4 * GIB)  # image data is 5 GiB
    cmds = drive(session, ModelOracle(pc, REPO))
    assert finish(cmds).code == OgErr.IMGSIZEPARTITION and "FetchToCache" not in kinds(cmds)


def test_smaller_partition_than_source_but_big_enough_for_data_works() -> None:
    c = cache_for(CopyState.ABSENT, Room.FITS)
    request = DeployRequest(Operation.RESTORE_COMMAND, "img", Method.parse("UNICAST"), partition=1)
    pc = computer(c, part_size=6 * GIB)  # data 5 GiB fits although the source was larger
    cmds = drive(DeploySession(request, OG), ModelOracle(pc, REPO))
    assert finish(cmds).ok


def test_filesystem_mismatch_refused_unless_allowed() -> None:
    c = cache_for(CopyState.ABSENT, Room.FITS)
    pc = computer(c, fs=Filesystem.EXT4)
    req = DeployRequest(Operation.RESTORE_COMMAND, "img", Method.parse("UNICAST"))
    cmds = drive(DeploySession(req, OG), ModelOracle(pc, REPO))
    assert finish(cmds).code == OgErr.FILESYS
    req2 = DeployRequest(
        Operation.RESTORE_COMMAND, "img", Method.parse("UNICAST"), allow_fs_change=True
    )
    cmds2 = drive(DeploySession(req2, OG), ModelOracle(pc, REPO))
    assert finish(cmds2).ok
    assert next(c for c in cmds2 if isinstance(c, RestorePartition)).change_filesystem


def test_restore_onto_another_partition_number() -> None:
    from ogref.model import Disk, DiskLayout, Partition

    c = cache_for(CopyState.ABSENT, Room.FITS)
    pc = computer(c)
    pc2 = type(pc)(
        pc.name,
        pc.ip,
        disks=DiskLayout(
            (
                Disk(
                    1,
                    200 * GIB,
                    partitions=(
                        Partition(1, 10 * GIB, Filesystem.EXT4),
                        Partition(2, 40 * GIB, Filesystem.NTFS),
                    ),
                ),
            )
        ),
        cache=c,
    )
    req = DeployRequest(Operation.RESTORE_COMMAND, "img", Method.parse("UNICAST"), partition=2)
    assert IMAGE.source_partition == 1
    cmds = drive(DeploySession(req, OG), ModelOracle(pc2, REPO))
    assert finish(cmds).ok
    assert next(c for c in cmds if isinstance(c, RestorePartition)).partition == 2


def test_missing_repository_image_wins_over_a_current_cached_copy() -> None:
    from ogref.model import Repository

    c = cache_for(CopyState.CURRENT, Room.FITS)
    empty = Repository("repo", "10.0.0.1", ())
    req = DeployRequest(Operation.RESTORE_COMMAND, "img", Method.parse("UNICAST"))
    cmds = drive(DeploySession(req, OG), ModelOracle(computer(c), empty))
    assert finish(cmds).code == OgErr.NOTFOUND


def test_update_cache_only_never_restores() -> None:
    _, cmds = run(cache_for(CopyState.ABSENT, Room.FITS), "TORRENT", OG, Operation.UPDATE_CACHE)
    assert "RestorePartition" not in kinds(cmds) and finish(cmds).ok


def test_wizard_refuses_direct_methods() -> None:
    with pytest.raises(FormatError):
        DeployRequest(Operation.DEPLOY_WIZARD, "img", Method.parse("UNICAST-DIRECT"))


def test_restore_image_from_cache() -> None:
    c = cache_for(CopyState.CURRENT, Room.FITS)
    req = DeployRequest(
        Operation.RESTORE_IMAGE, "img", Method.parse("UNICAST"), source=Source.CACHE
    )
    cmds = drive(DeploySession(req, OG), ModelOracle(computer(c), REPO))
    assert next(x for x in cmds if isinstance(x, RestorePartition)).source is Source.CACHE
    assert InspectCache.__name__ not in kinds(cmds) and finish(cmds).ok


def test_evict_keeps_the_requested_image_and_frees_lru_first() -> None:
    from ogref.model import Cache

    others = (
        CachedImage("old", 30 * GIB, "x", last_used=1),
        CachedImage("new", 30 * GIB, "y", last_used=9),
    )
    c = Cache(size=70 * GIB, images=others, overhead=0)  # free 10 GiB = stored: not enough
    _session, cmds = run(c, "UNICAST", OG.with_overrides(action_cache_full=CacheFullAction.EVICT))
    evict = next(x for x in cmds if type(x).__name__ == "EvictFromCache")
    assert evict.names == ("old",) and finish(cmds).ok  # type: ignore[attr-defined]


def test_format_is_followed_by_a_fetch() -> None:
    _, cmds = run(
        cache_for(CopyState.STALE, Room.GE_FREE),
        "UNICAST",
        OG.with_overrides(action_cache_full=CacheFullAction.FORMAT),
    )
    assert [type(c) for c in cmds if isinstance(c, FormatCache | FetchToCache)] == [
        FormatCache,
        FetchToCache,
    ]
