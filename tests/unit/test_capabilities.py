"""What a scenario needs from the host on a lab backend, and how a missing capability is told.

No root needed: the host's capabilities are given, not probed (``tests/lab/test_capabilities.py``
checks the probe itself on this machine's kernel).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from ogsim.lab.capabilities import (
    CAPABILITIES,
    HostCapabilities,
    HostCapabilityError,
    check,
    multicast_crossings,
    needs,
    require,
)
from ogsim.scenario import build_scenario, load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def host(*missing: str, kernel: str = "6.1-test") -> HostCapabilities:
    return HostCapabilities(kernel, {n: n not in missing for n in CAPABILITIES})


def test_cross_subnet_multicast_needs_routing_or_the_relay() -> None:
    sc = load_scenario(SCENARIOS / "s14-multicast-two-subnets.yaml")
    crossing = [n for n in needs(sc, "netns") if "multicast_routing" in n.any_of]
    assert len(crossing) == 1
    assert crossing[0].any_of == ("multicast_routing", "multicast_relay")
    assert "10.0.1.0/24" in crossing[0].why and "10.0.2.0/24" in crossing[0].why
    # either mechanism is enough
    assert check(sc, "netns", host("multicast_routing")).ok
    assert check(sc, "netns", host("multicast_relay")).ok


def test_neither_mechanism_refuses_with_the_kernel_options_named() -> None:
    sc = load_scenario(SCENARIOS / "s14-multicast-two-subnets.yaml")
    verdict = check(sc, "netns", host("multicast_routing", "multicast_relay", kernel="6.18-fc"))
    assert len(verdict.refusals) == 1
    line = verdict.refusals[0]
    assert "\n" not in line
    for word in ("s14-multicast-two-subnets", "netns", "CONFIG_IP_MROUTE", "CONFIG_NFT_DUP_NETDEV",
                 "6.18-fc", "operation 0"):  # fmt: skip
        assert word in line
    with pytest.raises(HostCapabilityError) as info:
        require(sc, "netns", host("multicast_routing", "multicast_relay", kernel="6.18-fc"))
    assert info.value.refusals == verdict.refusals


def test_a_router_that_does_not_route_multicast_needs_neither() -> None:
    # s21: network.router.multicast false — the routed classroom must fail, not be relayed
    sc = load_scenario(SCENARIOS / "s21-multicast-not-routed.yaml")
    assert multicast_crossings(sc) == []
    assert check(sc, "netns", host("multicast_routing", "multicast_relay")).ok


@pytest.mark.parametrize(
    "name", ["seed-35pc-torrent-cache", "s02-unicast-direct-35", "s15-campus-1000"]
)
def test_scenarios_without_routed_multicast_need_no_router(name: str) -> None:
    sc = load_scenario(SCENARIOS / f"{name}.yaml")
    assert multicast_crossings(sc) == []


def _two_rooms(method: str, engine: dict[str, Any] | None = None) -> Any:
    data = yaml.safe_load((SCENARIOS / "s14-multicast-two-subnets.yaml").read_text())
    data = copy.deepcopy(data)
    data["operations"][0]["restore"]["method"] = method
    if engine:
        data["engine"] = engine
    return build_scenario(data)


def test_a_fallback_to_multicast_counts_as_multicast() -> None:
    assert multicast_crossings(_two_rooms("UNICAST-CACHE")) == []
    fallback = _two_rooms("TORRENT-CACHE", {"RESTOREPROTOCOLNOTCACHE": "MULTICAST"})
    assert len(multicast_crossings(fallback)) == 1


def test_a_lan_delay_without_netem_is_noted_a_longer_one_refused() -> None:
    sc = load_scenario(SCENARIOS / "s02-unicast-direct-35.yaml")
    verdict = check(sc, "netns", host("netem"))
    assert verdict.ok
    assert any("0.2 ms not emulated" in n and "CONFIG_NET_SCH_NETEM" in n for n in verdict.notes)
    assert check(sc, "netns", host()).notes == []
    data = yaml.safe_load((SCENARIOS / "s02-unicast-direct-35.yaml").read_text())
    data["classrooms"][0]["defaults"]["hw"]["link"]["delay"] = "20ms"
    slow = build_scenario(data)
    refused = check(slow, "netns", host("netem"))
    assert len(refused.refusals) == 1 and "20 ms" in refused.refusals[0]
    assert "CONFIG_NET_SCH_NETEM" in refused.refusals[0]


def test_loss_needs_the_nft_bridge_family() -> None:
    sc = load_scenario(SCENARIOS / "s13-multicast-loss-crash.yaml")
    assert not check(sc, "netns", host("nft_bridge_loss")).ok
    assert check(sc, "netns", host()).ok


def test_kvm_is_only_noted_for_the_vm_lab() -> None:
    sc = load_scenario(SCENARIOS / "vm-4pc-restore-and-boot.yaml")
    verdict = check(sc, "libvirt", host("kvm"))
    assert verdict.ok and any("TCG" in n for n in verdict.notes)
    assert needs(sc, "sim") == []


def test_assumed_missing_names_must_be_known(monkeypatch: pytest.MonkeyPatch) -> None:
    from ogsim.lab import capabilities

    monkeypatch.setenv(capabilities.ASSUME_MISSING_ENV, "multicast_routing,netem")
    caps = capabilities.probe()
    assert not caps.has("multicast_routing") and not caps.has("netem")
    assert caps.record()["assumed_missing"] == ["multicast_routing", "netem"]
    monkeypatch.setenv(capabilities.ASSUME_MISSING_ENV, "warp_drive")
    with pytest.raises(ValueError, match="warp_drive"):
        capabilities.probe()
