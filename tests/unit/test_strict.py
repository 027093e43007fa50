"""The strict preset (``opengnsys-1.1.1d-strict``), one case per deviation row it switches back.

For each decision-level row of ``docs/deviations.md`` (2-8, 10-12, 20, and the rows 23-24 of
the image-info review) the same situation runs twice on 1.1.1d's stock engine.cfg values: under
``opengnsys-1.1.1d`` it gives ogLab's column, under ``opengnsys-1.1.1d-strict`` (the same values
plus ``STRICT``) the OpenGnSys column of that row, announced by a ``Defect`` for that row before
the decision is carried out.  The expectations are written out here from the reference (§11),
not derived from ``ogref.core.table``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ogref.core.deploy import DeployRequest, DeploySession, Operation
from ogref.core.driver import ModelOracle, drive
from ogref.core.events import (
    Command,
    ConfigureOs,
    Defect,
    Event,
    FailureKind,
    FetchToCache,
    Finish,
    ImageInspected,
    InspectImage,
    Log,
    PostconfFailed,
    RestoreFailed,
    RestorePartition,
    Source,
    TransferFailed,
)
from ogref.core.table import CopyState, Room
from ogref.errors import ConfigError, OgErr
from ogref.model import (
    ALL_METHODS,
    Cache,
    CachedImage,
    CacheFullAction,
    EngineConfig,
    Filesystem,
    Method,
    NotCacheProtocol,
    TorrentSession,
)
from ogref.units import GIB
from tests.unit.situations import IMAGE, MCAST, REPO, Answering, cache_for, computer, run

OURS = EngineConfig.opengnsys_1_1_1d()  # stock 1.1.1d values, ogLab's rules
THEIRS = EngineConfig.opengnsys_1_1_1d_strict()  # the same values, 1.1.1d's rules


@dataclass(frozen=True)
class Outcome:
    """What a session did, as the tests look at it."""

    code: int
    kinds: tuple[str, ...]  # command kinds, without Log lines
    defects: tuple[int, ...]
    commands: tuple[Command, ...] = ()


@dataclass(frozen=True)
class Expect:
    """One column: the exit code, command kinds that must / must not appear."""

    code: int
    has: tuple[str, ...] = ()
    lacks: tuple[str, ...] = ()
    check: Callable[[Outcome], bool] = field(default=lambda _o: True)

    def assert_met(self, got: Outcome) -> None:
        assert got.code == self.code, got
        assert all(k in got.kinds for k in self.has), got
        assert not any(k in got.kinds for k in self.lacks), got
        assert self.check(got), got


def outcome(cmds: list[Command]) -> Outcome:
    last = cmds[-1]
    assert isinstance(last, Finish)
    return Outcome(
        int(last.code),
        tuple(type(c).__name__ for c in cmds if not isinstance(c, Log)),
        tuple(c.row for c in cmds if isinstance(c, Defect)),
        tuple(cmds),
    )


def session(
    policy: EngineConfig,
    method: str,
    cache: Cache | None,
    *,
    operation: Operation = Operation.RESTORE_COMMAND,
    on: type | None = None,
    event: Event | None = None,
    part_size: int = 40 * GIB,
    fs: Filesystem = Filesystem.NTFS,
    **req: object,
) -> Outcome:
    pc = computer(cache, part_size=part_size, fs=fs)
    oracle = Answering(pc, REPO, on=on, event=event) if on and event else ModelOracle(pc, REPO)
    return outcome(run(cache, method, policy, operation, oracle, **req)[1])


def engine_text(policy: EngineConfig, text: str, method: str, cache: Cache | None) -> Outcome:
    """Read engine.cfg ``text`` over ``policy``: refused (1) or run."""
    try:
        cfg = EngineConfig.from_text(text, source="engine.cfg", base=policy)
    except ConfigError as exc:
        return Outcome(int(exc.code), ("ConfigError",), ())
    return session(cfg, method, cache)


def restore_source(source: Source) -> Callable[[Outcome], bool]:
    def check(o: Outcome) -> bool:
        return any(isinstance(c, RestorePartition) and c.source is source for c in o.commands)

    return check


def fetch_where(pred: Callable[[FetchToCache], bool]) -> Callable[[Outcome], bool]:
    def check(o: Outcome) -> bool:
        return any(isinstance(c, FetchToCache) and pred(c) for c in o.commands)

    return check


NONE_UNICAST = {"restore_protocol_not_cache": NotCacheProtocol.UNICAST}
BF = cache_for(CopyState.PARTIAL, Room.FITS, strict=True)  # an interrupted torrent's .bf
CROWDED = Cache(100 * GIB, (), overhead=95 * GIB)  # 5 GiB free; the other files survive DELETE
SMALL = 4 * GIB  # the image holds 5 GiB of data


@dataclass(frozen=True)
class Case:
    """A deviation row: one situation and the two columns."""

    row: int
    situation: Callable[[EngineConfig], Outcome]
    ours: Expect
    theirs: Expect


CASES = [
    pytest.param(
        Case(
            2,
            lambda p: session(p, "UNICAST", BF),
            Expect(
                0, has=("FetchToCache", "RestorePartition"), check=fetch_where(lambda f: f.resume)
            ),
            Expect(
                31,
                has=("FetchToCache",),
                lacks=("RestorePartition", "DeleteCachedCopy", "MethodSwitched"),
                check=fetch_where(lambda f: f.keeps_bf),
            ),
        ),
        id="row2-unicast-beside-a-torrent-bf",
    ),
    pytest.param(
        Case(
            2,
            lambda p: session(p, "MULTICAST", BF),
            Expect(0, has=("FetchToCache", "RestorePartition")),
            Expect(31, has=("FetchToCache",), lacks=("RestorePartition", "DeleteCachedCopy")),
        ),
        id="row2-multicast-beside-a-torrent-bf",
    ),
    *[
        pytest.param(
            Case(
                3,
                lambda p, v=value: engine_text(
                    p, f'RESTOREPROTOCOLNOTCACHE="{v}"', "UNICAST", None
                ),
                Expect(int(OgErr.FORMAT), has=("ConfigError",)),
                Expect(5, lacks=("RestorePartition", "MethodSwitched")),
            ),
            id=f"row3-rpnc-{value or 'empty'}",
        )
        for value in ("", "unicast", "TORRENT")
    ],
    pytest.param(
        Case(
            3,
            lambda p: engine_text(
                p, "ACTIONCACHEFULL=format", "UNICAST", cache_for(CopyState.ABSENT, Room.GE_FREE)
            ),
            Expect(int(OgErr.FORMAT), has=("ConfigError",)),
            Expect(16, lacks=("FormatCache", "FetchToCache")),
        ),
        id="row3-acf-lower-case-behaves-as-none",
    ),
    pytest.param(
        Case(
            4,
            lambda p: session(p, "UNICAST", cache_for(CopyState.STALE, Room.GE_SIZE)),
            Expect(16, lacks=("DeleteCachedCopy",)),
            Expect(16, has=("DeleteCachedCopy",)),
        ),
        id="row4-stale-copy-deleted-then-16",
    ),
    pytest.param(
        Case(
            4,
            lambda p: session(
                p.with_overrides(**NONE_UNICAST),
                "TORRENT",
                cache_for(CopyState.STALE, Room.GE_FREE),
            ),
            Expect(0, has=("MethodSwitched",), lacks=("DeleteCachedCopy",)),
            Expect(0, has=("DeleteCachedCopy", "MethodSwitched")),
        ),
        id="row4-stale-copy-deleted-then-fallback",
    ),
    *[
        pytest.param(
            Case(
                5,
                lambda p, m=method: session(p, m, cache_for(CopyState.STALE_HEAD, Room.FITS)),
                Expect(0, has=("DeleteCachedCopy", "FetchToCache")),
                Expect(0, lacks=("FetchToCache",), check=restore_source(Source.CACHE)),
            ),
            id=f"row5-stale-head-{method.lower()}",
        )
        for method in ("UNICAST", "MULTICAST")
    ],
    *[
        pytest.param(
            Case(
                6,
                lambda p, k=kind: session(
                    p,
                    "UNICAST",
                    cache_for(CopyState.ABSENT, Room.FITS),
                    on=FetchToCache,
                    event=TransferFailed(k, "smb: connection reset"),
                ),
                Expect(code, lacks=("DeleteCachedCopy",)),
                Expect(31, has=("DeleteCachedCopy",)),
            ),
            id=f"row6-unicast-copy-{kind}",
        )
        for kind, code in ((FailureKind.RECEIVE, 31), (FailureKind.NOT_FOUND, 2))
    ],
    *[
        pytest.param(
            Case(
                7,
                lambda p, k=kind: session(
                    p, "MULTICAST-DIRECT", None, on=RestorePartition, event=RestoreFailed(k)
                ),
                Expect(code),
                Expect(5),
            ),
            id=f"row7-multicast-direct-{kind}",
        )
        for kind, code in (
            (FailureKind.JOIN, 60),
            (FailureKind.RECEIVE, 59),
            (FailureKind.CORRUPT, 33),
        )
    ],
    pytest.param(
        Case(
            7,
            lambda p: session(
                p,
                "MULTICAST",
                None,
                operation=Operation.RESTORE_IMAGE,
                on=RestorePartition,
                event=RestoreFailed(FailureKind.RECEIVE),
            ),
            Expect(59),
            Expect(58),
        ),
        id="row7-restore-image-multicast-receive-58",
    ),
    pytest.param(
        Case(
            8,
            lambda p: session(
                p.with_overrides(action_cache_full=CacheFullAction.DELETE),
                "UNICAST",
                CROWDED,
            ),
            Expect(16, has=("EmptyCache",), lacks=("FetchToCache",)),
            Expect(31, has=("EmptyCache", "FetchToCache"), lacks=("RestorePartition",)),
        ),
        id="row8-no-recheck-after-delete",
    ),
    pytest.param(
        Case(
            10,
            lambda p: session(
                p, "UNICAST", cache_for(CopyState.ABSENT, Room.FITS), part_size=SMALL
            ),
            Expect(30, lacks=("InspectCache", "FetchToCache")),
            Expect(5, has=("FetchToCache",), lacks=("RestorePartition",)),
        ),
        id="row10-size-checked-after-the-transfer",
    ),
    pytest.param(
        Case(
            11,
            lambda p: session(p, "UNICAST-DIRECT", None, fs=Filesystem.EXT4),
            Expect(20, lacks=("RestorePartition",)),
            Expect(
                0,
                check=lambda o: any(
                    isinstance(c, RestorePartition) and c.change_filesystem for c in o.commands
                ),
            ),
        ),
        id="row11-filesystem-never-compared",
    ),
    pytest.param(
        Case(
            12,
            lambda p: session(
                p,
                "UNICAST-DIRECT",
                None,
                on=ConfigureOs,
                event=PostconfFailed(OgErr.NOTOS, "no OS found"),
            ),
            Expect(int(OgErr.NOTOS)),
            Expect(0, has=("ConfigureOs",)),
        ),
        id="row12-configure-os-status-ignored",
    ),
    pytest.param(
        Case(
            23,
            lambda p: session(
                p,
                "UNICAST",
                cache_for(CopyState.CURRENT, Room.FITS),
                on=RestorePartition,
                event=RestoreFailed(FailureKind.LOCKED, "CACHE/img.img.lock"),
            ),
            Expect(4),
            Expect(5),
        ),
        id="row23-lock-in-the-cache-at-restore",
    ),
    pytest.param(
        Case(
            23,
            lambda p: session(
                p,
                "UNICAST",
                cache_for(CopyState.CURRENT, Room.FITS),
                source=Source.CACHE,
                on=InspectImage,
                event=ImageInspected(True, True, IMAGE, locked=True),
            ),
            Expect(4, lacks=("RestorePartition",)),
            Expect(5, lacks=("RestorePartition",)),
        ),
        id="row23-deploy-image-cache-locked",
    ),
    pytest.param(
        Case(
            23,
            lambda p: session(p, "UNICAST-DIRECT", None, part_size=SMALL),
            Expect(30, lacks=("RestorePartition",)),
            Expect(5, lacks=("RestorePartition",)),
        ),
        id="row23-direct-size-masked",
    ),
    pytest.param(
        Case(
            24,
            lambda p: session(p, "TORRENT", cache_for(CopyState.ABSENT, Room.FITS), torrent=None),
            Expect(
                0,
                has=("FetchToCache",),
                check=fetch_where(lambda f: f.torrent == TorrentSession.parse("peer:60")),
            ),
            Expect(31, lacks=("FetchToCache", "RestorePartition")),
        ),
        id="row24-torrent-without-options",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_default_gives_the_oglab_column(case: Case) -> None:
    got = case.situation(OURS)
    case.ours.assert_met(got)
    assert got.defects == ()


@pytest.mark.parametrize("case", CASES)
def test_strict_gives_the_opengnsys_column(case: Case) -> None:
    got = case.situation(THEIRS)
    case.theirs.assert_met(got)
    assert case.row in got.defects, f"no Defect({case.row}) announced: {got.defects}"


def test_every_decision_level_row_has_a_case() -> None:
    rows = {p.values[0].row for p in CASES}
    assert rows | {20} == {2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 20, 23, 24}


@pytest.mark.parametrize(
    ("transport", "theirs"), [("TORRENT", (1, 120)), ("MULTICAST", (1, 30)), ("UNICAST", (0, 0))]
)
def test_row20_start_sleeps(transport: str, theirs: tuple[int, int]) -> None:
    """The strict preset sleeps as 1.1.1d's updateCache does; the stock preset does not."""
    drawn: list[tuple[int, int]] = []

    def randint(lo: int, hi: int) -> int:
        drawn.append((lo, hi))
        return hi

    assert OURS.start_delay.draw(transport, randint) == 0.0 and drawn == []
    assert THEIRS.start_delay.draw(transport, randint) == float(theirs[1])
    assert drawn == ([theirs] if theirs[1] else [])


def test_row2_the_bf_stays_so_every_later_update_fails_again() -> None:
    """§11 note 2: it clears only when a TORRENT deploy completes or the cache is wiped."""
    roomy = Cache(100 * GIB, (CachedImage("img", 4 * GIB, IMAGE.checksum, complete=False),))
    oracle = ModelOracle(computer(roomy), REPO)
    codes = []
    for method in ("UNICAST", "UNICAST", "TORRENT", "UNICAST"):
        req = DeployRequest(
            Operation.RESTORE_COMMAND,
            "img",
            Method.parse(method),
            multicast=MCAST,
            torrent=TorrentSession(),
        )
        codes.append(int(drive(DeploySession(req, THEIRS), oracle)[-1].code))  # type: ignore[attr-defined]
    assert codes == [31, 31, 0, 0]


def test_row5_torrent_still_redownloads_a_stale_head_copy() -> None:
    got = session(THEIRS, "TORRENT", cache_for(CopyState.STALE_HEAD, Room.FITS))
    Expect(0, has=("DeleteCachedCopy", "FetchToCache")).assert_met(got)


def test_restore_image_keeps_its_own_numbers_in_both_modes() -> None:
    """restoreImage alone is not deployImage: a lock is 4 there, strict or not."""
    for policy in (OURS, THEIRS):
        got = session(
            policy,
            "UNICAST",
            cache_for(CopyState.CURRENT, Room.FITS),
            operation=Operation.RESTORE_IMAGE,
            source=Source.CACHE,
            on=InspectImage,
            event=ImageInspected(True, True, IMAGE, locked=True),
        )
        assert got.code == OgErr.LOCKED


def test_strict_parser_reads_unknown_values_as_1_1_1d_does() -> None:
    cfg = EngineConfig.from_text(
        "STRICT=TRUE\nRESTOREPROTOCOLNOTCACHE=torrent\nACTIONCACHEFULL=EVICT"
    )
    assert cfg.restore_protocol_not_cache is NotCacheProtocol.OTHER
    assert cfg.action_cache_full is CacheFullAction.OTHER  # EVICT is ogLab's, unknown to 1.1.1d
    assert EngineConfig.from_text(cfg.to_text()) == cfg
    with pytest.raises(ConfigError):
        EngineConfig.from_text("RESTOREPROTOCOLNOTCACHE=OTHER")  # never outside STRICT


def test_presets() -> None:
    assert EngineConfig.preset("oglab") == EngineConfig()
    assert EngineConfig.preset("opengnsys-1.1.1d") == OURS and not OURS.strict
    strict = EngineConfig.preset("opengnsys-1.1.1d-strict")
    assert strict.strict and strict == OURS.with_overrides(
        strict=True, start_delay=THEIRS.start_delay
    )


# ----------------------------------------------------------------- strict says where it differs


@st.composite
def caches(draw: st.DrawFn) -> Cache | None:
    """Caches around the image's 10 GiB: sizes, free space and partial copies near the >=."""
    if draw(st.booleans()) and draw(st.booleans()):
        return None
    size = draw(st.sampled_from([8, 10, 12, 16, 64])) * GIB
    copy = draw(st.sampled_from(["absent", "current", "stale", "stale_head", "partial", "other"]))
    images: list[CachedImage] = []
    if copy != "absent":
        partial = copy in ("partial", "other")
        wanted = draw(st.sampled_from([1, 4, 6, 9])) * GIB if partial else IMAGE.stored_size
        checksum = IMAGE.checksum if copy in ("current", "partial") else "B" * 32
        images.append(
            CachedImage(
                "img", min(size, wanted), checksum, not partial, same_tail=copy == "stale_head"
            )
        )
    used = sum(i.size for i in images)
    free = draw(st.integers(0, 12)) * GIB  # whole GiB: the boundaries (>=) are hit often
    return Cache(size, tuple(images), max(0, size - used - free))


def _partial(gib: int, checksum: str, free_gib: int) -> Cache:
    """64 GiB with an interrupted copy of ``gib`` GiB and ``free_gib`` GiB free."""
    held = gib * GIB
    return Cache(
        64 * GIB, (CachedImage("img", held, checksum, False),), 64 * GIB - held - free_gib * GIB
    )


stock_policies = st.builds(
    EngineConfig.opengnsys_1_1_1d().with_overrides,
    action_cache_full=st.sampled_from(
        [CacheFullAction.NONE, CacheFullAction.FORMAT, CacheFullAction.DELETE]
    ),
    restore_protocol_not_cache=st.sampled_from(
        [NotCacheProtocol.NONE, NotCacheProtocol.UNICAST, NotCacheProtocol.MULTICAST]
    ),
)


@settings(max_examples=300, deadline=None)
@given(caches(), st.sampled_from(ALL_METHODS), stock_policies)
@example(_partial(4, IMAGE.checksum, 8), Method.parse("TORRENT"), OURS)  # room: 6 vs 10 GiB
@example(_partial(4, "B" * 32, 20), Method.parse("TORRENT"), OURS)  # another version's .bf
def test_strict_differs_from_oglab_only_where_it_announces_a_defect(
    cache: Cache | None, method: Method, policy: EngineConfig
) -> None:
    ours = session(policy, str(method), cache)
    theirs = session(policy.with_overrides(strict=True), str(method), cache)
    if not theirs.defects:
        assert theirs.code == ours.code

        def shape(o: Outcome) -> tuple[object, ...]:
            restores = [
                (c.source, c.transport) for c in o.commands if isinstance(c, RestorePartition)
            ]
            fetches = [c.resume for c in o.commands if isinstance(c, FetchToCache)]
            return (fetches, "MethodSwitched" in o.kinds, restores)

        assert shape(theirs) == shape(ours)
