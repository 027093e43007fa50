"""The agent honours the engine's STARTDELAY before a multicast/torrent updateCache (no root)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from ogref.agent.master import StartDelayExecutor
from ogref.model import EngineConfig, Transport
from ogref.model.policy import StartDelay
from ogref.transports.executor import NetworkExecutor


def _executor(policy: EngineConfig, slept: list[float]) -> StartDelayExecutor:
    ex = StartDelayExecutor.__new__(StartDelayExecutor)
    ex.policy = policy
    ex.net = SimpleNamespace(clock=lambda: 0.0, phases=[])  # type: ignore[assignment]
    ex.log = lambda text: None  # type: ignore[method-assign]
    ex.sleep = slept.append  # type: ignore[method-assign,assignment]
    return ex


@pytest.mark.parametrize(
    ("delay", "transport", "expect_sleep"),
    [
        (StartDelay(), Transport.TORRENT, False),
        (StartDelay.opengnsys(), Transport.TORRENT, True),
        (StartDelay.opengnsys(), Transport.MULTICAST, True),
        (StartDelay.opengnsys(), Transport.UNICAST, False),
    ],
)
def test_agent_sleeps_only_as_the_policy_says(
    monkeypatch: pytest.MonkeyPatch, delay: StartDelay, transport: Transport, expect_sleep: bool
) -> None:
    monkeypatch.setattr(NetworkExecutor, "_fetch", lambda self, cmd: "fetched")
    slept: list[float] = []
    ex = _executor(EngineConfig(start_delay=delay), slept)
    cmd: Any = SimpleNamespace(transport=transport)
    assert ex._fetch(cmd) == "fetched"
    assert bool(slept) is expect_sleep
    if expect_sleep:
        lo, hi = delay.range_for(str(transport))
        assert lo <= slept[0] <= hi
        assert [p.name for p in ex.net.phases] == ["wait"]
