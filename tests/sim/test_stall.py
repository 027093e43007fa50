"""A model with nothing left to do ends (issue 11 §1, the hangs): torrent re-announces are daemon
timers, so a stalled swarm — a 0 rate that slipped past validation, a seeder dead before anyone
had the image — is reported "did not finish" instead of re-announcing forever."""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ogsim.loop import Loop
from ogsim.scenario import Scenario, build_scenario
from ogsim.simulator import simulate

SEED = Path(__file__).resolve().parents[2] / "scenarios" / "seed-35pc-torrent-cache.yaml"


@pytest.fixture(autouse=True)
def _bounded() -> Iterator[None]:
    """A hang fails the test after 30 s instead of blocking the suite."""

    def hung(*_: Any) -> None:
        raise TimeoutError("the simulation did not end")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(30)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def seed(mutate: Callable[[dict[str, Any]], None] | None = None) -> Scenario:
    data = yaml.safe_load(SEED.read_text(encoding="utf-8"))
    if mutate:
        mutate(data)
    return build_scenario(data)


def small(mutate: Callable[[dict[str, Any]], None] | None = None) -> Scenario:
    """The seed's classroom cut to 8 computers (no groups, overrides or expectations)."""

    def cut(d: dict[str, Any]) -> None:
        room = d["classrooms"][0]
        room["groups"] = []
        room["computers"] = {"count": 8, "first_host": 11}
        d["expect"] = []
        if mutate:
            mutate(d)

    return seed(cut)


def statuses(sc: Scenario) -> dict[str, int]:
    results = simulate(sc)
    out: dict[str, int] = {}
    for c in results.operations[0].computers:
        out[c.status] = out.get(c.status, 0) + 1
    return out


def test_a_zero_link_rate_past_validation_ends_as_did_not_finish() -> None:
    sc = seed()
    sc.hosts.update({k: dataclasses.replace(v, link_rate=0.0) for k, v in sc.hosts.items()})
    assert statuses(sc) == {"failed": 35}


def test_a_zero_repository_uplink_past_validation_ends() -> None:
    sc = seed()
    sc.repositories["repo"] = sc.repositories["repo"].model_copy(update={"uplink": 0.0})
    assert statuses(sc) == {"failed": 35}


def test_a_seeder_dead_before_the_swarm_has_the_image_ends() -> None:
    sc = seed(lambda d: d.update(faults=[{"at": "1s", "seeder_death": {"target": ["repo"]}}]))
    results = simulate(sc)
    by_name = {c.name: c for c in results.operations[0].computers}
    assert by_name.pop("pc34").status == by_name.pop("pc35").status == "ok"  # UNICAST-DIRECT
    assert {c.status for c in by_name.values()} == {"failed"}  # the 33 torrent clients
    assert all("did not finish" in c.message for c in by_name.values())


def test_a_link_down_for_a_while_still_recovers() -> None:
    """Re-announces keep running while other work is pending (the link coming back)."""
    sc = small(
        lambda d: d.update(
            faults=[{"at": "5s", "link_down": {"target": ["pc01", "pc02"], "for": "10min"}}]
        )
    )
    assert statuses(sc) == {"ok": 8}


# --------------------------------------------------------------------------- the loop


def test_only_daemon_timers_left_each_runs_once_more_then_the_loop_ends() -> None:
    loop = Loop()
    polls: list[float] = []

    def poll() -> None:
        polls.append(loop.now)
        loop.after(30.0, poll, daemon=True)

    loop.after(0.0, poll, daemon=True)
    loop.after(100.0, lambda: None)  # work until t=100
    assert loop.run() == 120.0
    assert polls == [0.0, 30.0, 60.0, 90.0, 120.0]


def test_a_daemon_timer_that_finds_work_keeps_the_loop_going() -> None:
    loop = Loop()
    done: list[float] = []

    def poll(n: int) -> None:
        if n == 0:
            loop.after(5.0, lambda: done.append(loop.now))  # found work
        loop.after(30.0, poll, n + 1, daemon=True)

    loop.after(1.0, poll, 0, daemon=True)
    loop.run()
    assert done == [6.0]


def test_cancelling_a_timer_that_already_ran_changes_nothing() -> None:
    loop = Loop()
    ran: list[str] = []
    first = loop.after(1.0, lambda: ran.append("a"))
    loop.after(2.0, lambda: (first.cancel(), ran.append("b")))
    loop.after(3.0, lambda: ran.append("c"))

    def poll() -> None:
        ran.append("poll")
        loop.after(10.0, poll, daemon=True)

    loop.after(0.5, poll, daemon=True)
    loop.run()  # a miscounted cancel would keep the poll alive forever
    assert ran == ["poll", "a", "b", "c", "poll"]


# --------------------------------------------------------------------------- crawling, not stalled


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["classrooms"][0]["defaults"]["hw"]["disk"].update(
            stall="100%", stall_factor=1e300
        ),
        lambda d: d["backends"].update(sim={"torrent_efficiency": "0.0001%"}),
        lambda d: d["backends"].update(sim={"scale": 1e-12}),
    ],
    ids=["disk-1e300-slower", "efficiency-1e-6", "scale-1e-12"],
)
def test_a_swarm_that_crawls_is_not_polled_forever(
    mutate: Callable[[dict[str, Any]], None],
) -> None:
    """Re-announces pause while no block arrives anywhere, so a transfer that takes 1e300 s
    costs a few thousand events, not 1e298 re-announces."""
    results = simulate(small(mutate))
    assert results.metrics.events < 100_000
    assert results.metrics.computers == 8


def test_a_flow_shorter_than_the_clock_resolution_completes() -> None:
    """At t = 1e15 s a 10-byte flow at 1 GB/s lasts less than one tick of the float clock."""
    from ogsim.network import Flow, Network

    loop = Loop()
    net = Network(loop)
    link = net.link("l", 1e9)
    done: list[float] = []
    loop.at(1e15, lambda: net.start(Flow(10.0, (link,), 1e9, lambda f: done.append(loop.now))))
    loop.run()
    assert done == [1e15]
