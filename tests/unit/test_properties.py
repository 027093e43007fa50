"""Hypothesis properties of the decision core and the planner."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ogref.core.deploy import DeployRequest, DeploySession, Operation
from ogref.core.driver import ModelOracle, drive
from ogref.core.events import (
    CacheInspected,
    Command,
    DeleteCachedCopy,
    EmptyCache,
    EvictFromCache,
    FetchToCache,
    FormatCache,
    InspectCache,
    MethodSwitched,
    RestorePartition,
    Source,
)
from ogref.model import (
    ALL_METHODS,
    Cache,
    CachedImage,
    CacheFullAction,
    EngineConfig,
    Method,
    MulticastSession,
    NotCacheProtocol,
    Transport,
)
from ogref.units import GIB
from tests.unit.situations import IMAGE, REPO, computer

CACHE_COMMANDS = (
    InspectCache,
    FormatCache,
    EmptyCache,
    EvictFromCache,
    DeleteCachedCopy,
    FetchToCache,
)


@st.composite
def caches(draw: st.DrawFn) -> Cache | None:
    if draw(st.booleans()) and draw(st.booleans()):
        return None
    size = draw(st.integers(1, 64)) * GIB
    copy = draw(st.sampled_from(["absent", "current", "stale", "partial"]))
    images: list[CachedImage] = []
    if copy != "absent":
        csize = min(size, IMAGE.stored_size if copy != "partial" else draw(st.integers(1, 9)) * GIB)
        checksum = "B" * 32 if copy == "stale" else IMAGE.checksum
        images.append(CachedImage("img", csize, checksum, complete=copy != "partial"))
    used = sum(i.size for i in images)
    if used < size and draw(st.booleans()):
        images.append(
            CachedImage("other", draw(st.integers(0, size - used)), "o" * 32, last_used=1)
        )
    used = sum(i.size for i in images)
    overhead = draw(st.integers(0, size - used)) if used < size else 0
    return Cache(size, tuple(images), overhead)


policies = st.builds(
    EngineConfig,
    action_cache_full=st.sampled_from(CacheFullAction),
    restore_protocol_not_cache=st.sampled_from(NotCacheProtocol),
    strict=st.booleans(),  # 1.1.1d's rules (the strict preset) obey the same properties
)


def plan(
    cache: Cache | None, method: Method, policy: EngineConfig
) -> tuple[DeploySession, list[Command]]:
    req = DeployRequest(Operation.RESTORE_COMMAND, "img", method, multicast=MulticastSession())
    session = DeploySession(req, policy)
    return session, drive(session, ModelOracle(computer(cache), REPO))


@settings(max_examples=300, deadline=None)
@given(caches(), st.sampled_from([m for m in ALL_METHODS if not m.uses_cache]), policies)
def test_direct_never_emits_a_cache_command(
    cache: Cache | None, method: Method, policy: EngineConfig
) -> None:
    _, cmds = plan(cache, method, policy)
    assert not any(isinstance(c, CACHE_COMMANDS) for c in cmds)


@settings(max_examples=300, deadline=None)
@given(caches(), policies)
def test_torrent_never_runs_without_a_cache(cache: Cache | None, policy: EngineConfig) -> None:
    _session, cmds = plan(cache, Method.parse("TORRENT"), policy)
    seen_cache = False
    for c in cmds:
        if isinstance(c, FetchToCache) and c.transport is Transport.TORRENT:
            assert seen_cache, "torrent fetch before a cache was found"
            assert cache is not None
        if isinstance(c, RestorePartition):
            assert c.transport is not Transport.TORRENT or c.source is Source.CACHE
        if isinstance(c, InspectCache):
            seen_cache = cache is not None
    if cache is None:
        assert not any(isinstance(c, FetchToCache) for c in cmds)


def cannot_use_cache(cache: Cache | None) -> bool:
    """Independent statement of the seed's requirement: a CACHE with room for the image."""
    if cache is None:
        return True
    cached = cache.get("img")
    if cached and cached.complete and cached.checksum == IMAGE.checksum:
        return False
    if IMAGE.stored_size >= cache.size:
        return True
    have = cached.size if cached else 0
    partial_ok = cached is not None and not cached.complete and cached.checksum == IMAGE.checksum
    need = IMAGE.stored_size - (have if partial_ok else 0)
    free = cache.free + (0 if partial_ok else have)
    return need >= free


@settings(max_examples=400, deadline=None)
@given(
    st.lists(caches(), min_size=1, max_size=12),
    st.sampled_from([m for m in ALL_METHODS if m.uses_cache]),
)
def test_default_policy_fallback_set_is_exactly_the_unqualified_set(
    cache_list: list[Cache | None], method: Method
) -> None:
    fell_back, expected = set(), set()
    for i, cache in enumerate(cache_list):
        session, cmds = plan(cache, method, EngineConfig())
        if any(isinstance(c, MethodSwitched) for c in cmds):
            fell_back.add(i)
            assert str(session.method_used) == "UNICAST-DIRECT"
        if cannot_use_cache(cache):
            expected.add(i)
        assert session.result is not None and session.result.ok
    assert fell_back == expected


@settings(max_examples=100, deadline=None)
@given(caches(), st.sampled_from(ALL_METHODS), policies)
def test_plans_are_deterministic(cache: Cache | None, method: Method, policy: EngineConfig) -> None:
    _, a = plan(cache, method, policy)
    _, b = plan(cache, method, policy)
    assert a == b


@settings(max_examples=200, deadline=None)
@given(caches(), st.sampled_from(ALL_METHODS), policies)
def test_every_session_finishes_with_one_finish_last(
    cache: Cache | None, method: Method, policy: EngineConfig
) -> None:
    _session, cmds = plan(cache, method, policy)
    from ogref.core.events import Finish

    assert isinstance(cmds[-1], Finish) and sum(isinstance(c, Finish) for c in cmds) == 1
    cache_seen = [c for c in cmds if isinstance(c, CacheInspected)]
    assert not cache_seen  # events never appear among commands
