"""Every row of the decision tables, driven through the real session.

The rows come from ``ogref.core.table`` itself; the situations and the expected observable
commands are built here independently, so a wrong row, a wrong lookup or a session that ignores
the table all fail.
"""

from __future__ import annotations

import itertools

import pytest

from ogref.core import table
from ogref.core.events import (
    Defect,
    DeleteCachedCopy,
    EmptyCache,
    EvictFromCache,
    FetchToCache,
    Finish,
    FormatCache,
    InspectCache,
    MethodSwitched,
    RestorePartition,
    Source,
)
from ogref.core.table import Admission, CopyState, Room
from ogref.errors import OgErr
from ogref.model import CacheFullAction, EngineConfig, NotCacheProtocol, Transport
from tests.unit.situations import cache_for, run

CASES = []
for row in table.ADMISSION:
    for strict, has_cache, copy, room, acf, transport in itertools.product(
        (False, True), (True, False), CopyState, Room, CacheFullAction, Transport
    ):
        if row.freed is True:
            continue  # reached only after freeing: covered by test_recheck_after_freeing
        if acf is CacheFullAction.OTHER and not strict:
            continue  # OTHER is read only under STRICT
        if transport is not Transport.TORRENT and not strict:
            continue  # ogLab's rows ignore the transport
        situation = (has_cache, copy, room, acf, False)
        found = table.admission(*situation, strict=strict, transport=transport)
        if found is row and (has_cache or copy is CopyState.ABSENT):
            mode = "strict" if strict else "oglab"
            CASES.append(
                pytest.param(
                    row,
                    situation,
                    strict,
                    transport,
                    id=f"{row.id}-{mode}-{has_cache}-{copy}-{room}-{acf}-{transport}",
                )
            )


def test_every_admission_row_is_reachable() -> None:
    reached = {p.values[0].id for p in CASES} | {"A4", "S4", "C1"}  # C1: test_chunked_core
    assert reached == {r.id for r in table.ADMISSION}


@pytest.mark.parametrize(("row", "situation", "strict", "transport"), CASES)
def test_admission_row(
    row: table.AdmissionRow, situation: tuple, strict: bool, transport: Transport
) -> None:
    has_cache, copy, room, acf, _ = situation
    cache = cache_for(copy, room, strict) if has_cache else None
    policy = EngineConfig(
        action_cache_full=acf, restore_protocol_not_cache=NotCacheProtocol.NONE, strict=strict
    )
    session, cmds = run(cache, f"{transport}-CACHE", policy)
    assert session.trace[0] == row.id
    types = [type(c) for c in cmds]
    finish = cmds[-1]
    assert isinstance(finish, Finish)
    defects = [c.row for c in cmds if isinstance(c, Defect)]
    assert not defects or strict, "only a strict session reproduces 1.1.1d's defects"
    if row.decision is Admission.FAIL_NOTCACHE:
        assert finish.code == OgErr.NOTCACHE and FetchToCache not in types
    elif row.decision is Admission.FAIL_CACHESIZE:
        assert finish.code == OgErr.CACHESIZE and FetchToCache not in types
    elif row.decision is Admission.USE_CACHED:
        assert FetchToCache not in types
        restore = next(c for c in cmds if isinstance(c, RestorePartition))
        assert restore.source is Source.CACHE and finish.ok
        assert defects == ([5] if copy is CopyState.STALE_HEAD else [])
    elif row.decision is Admission.FETCH:
        fetch = next(c for c in cmds if isinstance(c, FetchToCache))
        assert not fetch.resume and DeleteCachedCopy not in types and finish.ok
    elif row.decision is Admission.REPLACE:
        assert types.index(DeleteCachedCopy) < types.index(FetchToCache) and finish.ok
    elif row.decision is Admission.RESUME:
        fetch = next(c for c in cmds if isinstance(c, FetchToCache))
        assert fetch.resume and DeleteCachedCopy not in types and finish.ok
    elif row.decision is Admission.FORMAT:
        assert FormatCache in types
        assert types.index(FormatCache) < types.index(FetchToCache)
    elif row.decision is Admission.DELETE:
        assert EmptyCache in types
    elif row.decision is Admission.EVICT:
        assert EvictFromCache in types
    elif row.decision is Admission.DROP:
        # 1.1.1d: the stale copy goes first, whatever follows; a 16 then leaves nothing
        first_delete = types.index(DeleteCachedCopy)
        refill = {FetchToCache, FormatCache, EmptyCache}
        assert not set(types[:first_delete]) & (refill | {RestorePartition})
        if not set(types) & refill:
            assert defects[:1] == [4] and finish.code == OgErr.CACHESIZE
    elif row.decision is Admission.FETCH_BESIDE_BF:
        fetch = next(c for c in cmds if isinstance(c, FetchToCache))
        assert fetch.keeps_bf and not fetch.resume and DeleteCachedCopy not in types
        assert defects == [2] and finish.code == OgErr.UPDATECACHE
    else:  # pragma: no cover
        pytest.fail(f"unhandled decision {row.decision}")


def test_recheck_after_freeing() -> None:
    """A4 (ogLab): after DELETE the free space is checked again; still short → 16."""
    cache = cache_for(CopyState.ABSENT, Room.GE_FREE)
    policy = EngineConfig(
        action_cache_full=CacheFullAction.DELETE, restore_protocol_not_cache=NotCacheProtocol.NONE
    )
    session, cmds = run(cache, "UNICAST", policy)  # overhead survives DELETE: still no room
    assert session.trace == ["A6", "A4", "F2"]
    assert isinstance(cmds[-1], Finish) and cmds[-1].code == OgErr.CACHESIZE
    assert not any(isinstance(c, FetchToCache) for c in cmds)


FALLBACK_CASES = [
    pytest.param(row, allowed, rpnc, transport, id=f"{row.id}-{allowed}-{rpnc}-{transport}")
    for row in table.FALLBACK
    for allowed, rpnc, transport in itertools.product((True, False), NotCacheProtocol, Transport)
    if table.fallback(allowed, rpnc, transport) is row
]


def test_every_fallback_row_is_reachable() -> None:
    assert {p.values[0].id for p in FALLBACK_CASES} == {r.id for r in table.FALLBACK}


@pytest.mark.parametrize(("row", "allowed", "rpnc", "transport"), FALLBACK_CASES)
def test_fallback_row(
    row: table.FallbackRow, allowed: bool, rpnc: NotCacheProtocol, transport: Transport
) -> None:
    from ogref.core.deploy import Operation

    op = Operation.RESTORE_COMMAND if allowed else Operation.DEPLOY_WIZARD
    strict = rpnc is NotCacheProtocol.OTHER  # read only under STRICT
    policy = EngineConfig(restore_protocol_not_cache=rpnc, strict=strict)
    session, cmds = run(None, f"{transport}-CACHE", policy, op)
    assert session.trace == ["A1", row.id]
    finish = cmds[-1]
    assert isinstance(finish, Finish)
    switched = [c for c in cmds if isinstance(c, MethodSwitched)]
    if rpnc is NotCacheProtocol.OTHER and allowed:
        # 1.1.1d calls restoreImage with no arguments: 5, no switch, no restore
        assert finish.code == OgErr.IMAGE and not switched
        assert [c.row for c in cmds if isinstance(c, Defect)] == [3]
        assert not any(isinstance(c, RestorePartition) for c in cmds)
        return
    expected = (
        {
            NotCacheProtocol.NONE: None,
            NotCacheProtocol.OTHER: None,
            NotCacheProtocol.UNICAST: "UNICAST-DIRECT",
            NotCacheProtocol.MULTICAST: "MULTICAST-DIRECT"
            if transport is Transport.MULTICAST
            else "UNICAST-DIRECT",
        }[rpnc]
        if allowed
        else None
    )
    if expected is None:
        assert not switched and finish.code == OgErr.NOTCACHE
    else:
        assert str(switched[0].used) == expected and finish.ok
        restore = next(c for c in cmds if isinstance(c, RestorePartition))
        assert restore.source is Source.REPO and str(restore.transport) == expected.split("-")[0]
        assert switched[0].reason  # every switch carries its reason
    assert not any(isinstance(c, FetchToCache) for c in cmds)
    assert any(isinstance(c, InspectCache) for c in cmds)


FAILURE_CASES = [
    pytest.param(
        row, id=f"{row.transport}-{row.stage}-{row.kind}-{int(row.code)}-strict={row.strict}"
    )
    for row in table.FAILURE_CODES
    if row.ref != "fallthrough"
]


@pytest.mark.parametrize("row", FAILURE_CASES)
def test_failure_code_rows(row: table.FailureRow) -> None:
    """Each failure row, concretised, gives its code and never a fallback."""
    from ogref.core.events import FailureKind

    transport = row.transport or Transport.UNICAST
    kind = row.kind or FailureKind.RECEIVE
    stage = row.stage or table.Stage.CACHE
    strict, in_deploy = bool(row.strict), bool(row.in_deploy)
    got = table.failure_code(transport, stage, kind, strict=strict, in_deploy=in_deploy)
    assert got.code == row.code or table.FAILURE_CODES.index(got) < table.FAILURE_CODES.index(row)
