"""The fluid network: max-min fairness with caps, lazy recompute, completion times."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ogsim.loop import Loop
from ogsim.network import Flow, Link, Network


def _run(caps: list[float], capacity: float, size: float = 100.0) -> dict[int, float]:
    loop = Loop()
    net = Network(loop)
    link = net.link("up", capacity)
    done: dict[int, float] = {}
    for i, cap in enumerate(caps):
        net.start(Flow(size, (link,), cap, lambda f, i=i: done.__setitem__(i, loop.now)))
    loop.run()
    return done


def test_equal_flows_share_the_link_and_finish_together() -> None:
    done = _run([1e9] * 4, capacity=40.0)
    assert all(t == pytest.approx(10.0) for t in done.values())  # 4 × 100 B at 40 B/s


def test_capped_flow_leaves_the_rest_to_others() -> None:
    done = _run([5.0, 1e9], capacity=30.0)
    # the capped flow gets 5 B/s (20 s); the other gets 25 B/s until 4 s … then all 30 B/s
    assert done[0] == pytest.approx(20.0)
    assert done[1] == pytest.approx(100 / 25)


def test_link_down_stalls_then_resumes() -> None:
    loop = Loop()
    net = Network(loop)
    link = net.link("up", 10.0)
    finished: list[float] = []
    net.start(Flow(100.0, (link,), 1e9, lambda f: finished.append(loop.now)))
    loop.at(5.0, lambda: net.set_link(link, up=False))
    loop.at(8.0, lambda: net.set_link(link, up=True))
    loop.run()
    assert finished == [pytest.approx(13.0)]


def test_wire_overhead_costs_link_capacity() -> None:
    loop = Loop()
    net = Network(loop)
    link = net.link("up", 10.0)
    finished: list[float] = []
    net.start(Flow(100.0, (link,), 1e9, lambda f: finished.append(loop.now), wire=1.25))
    loop.run()
    assert finished == [pytest.approx(12.5)]


@settings(max_examples=60, deadline=None)
@given(
    caps=st.lists(st.floats(min_value=0.5, max_value=100.0), min_size=1, max_size=12),
    capacity=st.floats(min_value=1.0, max_value=200.0),
)
def test_max_min_rates_respect_link_and_caps(caps: list[float], capacity: float) -> None:
    loop = Loop()
    net = Network(loop)
    link = net.link("up", capacity)
    flows = [Flow(1e6, (link,), c, lambda f: None) for c in caps]
    for f in flows:
        net.start(f)
    loop.run(until=0.0)
    net._recompute()
    rates = [f.rate for f in flows]
    assert sum(rates) <= capacity * (1 + 1e-9)
    for f in flows:
        assert f.rate <= f.cap * (1 + 1e-9)
    # max-min: any flow below its cap gets at least as much as every other flow
    bottlenecked = [f for f in flows if f.rate < f.cap * (1 - 1e-9)]
    if bottlenecked:
        assert sum(rates) == pytest.approx(min(capacity, sum(caps)), rel=1e-6)
        top = max(rates)
        for f in bottlenecked:
            assert f.rate == pytest.approx(top, rel=1e-6)


def _reference_fill(flows: list[Flow]) -> None:
    """The progressive filling as it was before local jobs skipped it (main d6eff61): every
    flow, local or not, goes through the rounds."""
    left: dict[Link, float] = {}
    count: dict[Link, float] = {}
    pending: list[Flow] = []
    for f in flows:
        f.rate = 0.0
        if f.cap <= 0 or any(not lk.up or lk.capacity <= 0 for lk in f.links):
            continue
        pending.append(f)
        for lk in f.links:
            left[lk] = lk.capacity
            count[lk] = count.get(lk, 0.0) + f.wire
    pending.sort(key=lambda f: f.cap)
    while pending:
        level = float("inf")
        for lk, n in count.items():
            if n > 1e-12:
                share = max(0.0, left[lk]) / n
                if share < level:
                    level = share
        if pending[0].cap <= level:
            i = 0
            while i < len(pending) and pending[i].cap <= level:
                i += 1
            frozen, pending = pending[:i], pending[i:]
            for f in frozen:
                f.rate = f.cap
                for lk in f.links:
                    left[lk] -= f.cap * f.wire
                    count[lk] -= f.wire
            continue
        tight = {lk for lk, n in count.items() if n > 1e-12 and left[lk] / n <= level * (1 + 1e-12)}
        keep: list[Flow] = []
        for f in pending:
            if any(lk in tight for lk in f.links):
                f.rate = level
                for lk in f.links:
                    left[lk] -= level * f.wire
                    count[lk] -= f.wire
            else:
                keep.append(f)
        pending = keep


@settings(max_examples=300, deadline=None)
@given(
    capacities=st.lists(st.floats(1.0, 1e4), min_size=1, max_size=4),
    flows=st.lists(
        st.tuples(
            st.sets(st.integers(0, 3), max_size=3),  # links crossed (none: a local job)
            st.one_of(st.floats(0.0, 2e4), st.just(float("inf"))),  # cap
            st.sampled_from([1.0, 1.0 / 0.9, 1.25]),  # wire
        ),
        max_size=12,
    ),
    down=st.sets(st.integers(0, 3), max_size=1),
)
def test_local_jobs_skip_the_filling_with_the_same_rates(
    capacities: list[float], flows: list[tuple[set[int], float, float]], down: set[int]
) -> None:
    # a local job gets its cap and the linked flows get exactly (to the float) the rates the
    # filling gave every flow when the local jobs went through it too
    net = Network(Loop())
    links = [net.link(f"l{i}", c) for i, c in enumerate(capacities)]
    for i in down & set(range(len(links))):
        links[i].up = False
    made = [
        Flow(
            100.0,
            tuple(links[i] for i in sorted(ls) if i < len(links)),
            cap,
            lambda f: None,
            wire=wire,
        )
        for ls, cap, wire in flows
    ]
    for f in made:
        net.flows[f] = None
    net._fill()
    got = [f.rate for f in made]
    _reference_fill(made)
    assert got == [f.rate for f in made]
