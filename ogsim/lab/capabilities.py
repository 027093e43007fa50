"""What this host lets a lab do, and what a scenario needs from it.

Machines do not all run the same kernel: some are built without multicast routing
(``CONFIG_IP_MROUTE``) or netem, some have no usable KVM.  :func:`probe` finds out once per
process by *trying* each feature in a throwaway network namespace (``unshare --net`` around one
child process: the namespace dies with the child, so nothing is created that a manifest would
have to own).  :func:`needs` reads a scenario and says which capabilities its meaning depends on
on a given backend; :func:`check` compares the two and gives the one-line reasons a run is
refused *before* the lab creates anything, and the notes of what is only approximated.

Multicast between subnets is the case that matters most: the lab's router forwards it with
``smcrouted`` where the kernel routes multicast, else with an nftables ``netdev`` rule that
duplicates the session's frames from one router leg to the others (``CONFIG_NFT_DUP_NETDEV``,
no multicast routing needed; see ``docs/host-requirements.md`` for what differs).  This module
probes and decides; it builds nothing and runs no scenario.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ogsim.scenario import Scenario

ASSUME_MISSING_ENV = "OGSIM_ASSUME_MISSING"
"""Comma-separated capability names to treat as missing (what a run would do on such a host)."""

LAN_DELAY_S = 0.001
"""One-way link delays up to this are a LAN's and are only noted when netem is missing."""


@dataclass(frozen=True)
class Capability:
    """One thing a host may or may not do, with the kernel option behind it and how to check."""

    name: str
    what: str
    kernel_option: str
    check: str


CAPABILITIES: dict[str, Capability] = {
    c.name: c
    for c in (
        Capability(
            "multicast_routing",
            "kernel multicast routing (smcroute between subnets)",
            "CONFIG_IP_MROUTE",
            "ls /proc/net/ip_mr_vif; zcat /proc/config.gz | grep IP_MROUTE",
        ),
        Capability(
            "multicast_relay",
            "nftables netdev dup (the lab's relay of multicast between subnets)",
            "CONFIG_NFT_DUP_NETDEV",
            "zcat /proc/config.gz | grep -E 'NFT_DUP_NETDEV|NF_TABLES_NETDEV'",
        ),
        Capability(
            "netem",
            "tc netem (link delay)",
            "CONFIG_NET_SCH_NETEM",
            "zcat /proc/config.gz | grep NETEM; tc qdisc add dev lo root netem delay 1ms",
        ),
        Capability(
            "tbf",
            "tc tbf (link rates)",
            "CONFIG_NET_SCH_TBF",
            "zcat /proc/config.gz | grep NET_SCH_TBF",
        ),
        Capability(
            "nft_bridge_loss",
            "nftables bridge family with numgen (packet loss)",
            "CONFIG_NF_TABLES_BRIDGE + CONFIG_NFT_NUMGEN",
            "zcat /proc/config.gz | grep -E 'NF_TABLES_BRIDGE|NFT_NUMGEN'",
        ),
        Capability(
            "igmp_snooping",
            "bridge IGMP snooping with an IGMPv3 querier",
            "CONFIG_BRIDGE_IGMP_SNOOPING",
            "zcat /proc/config.gz | grep BRIDGE_IGMP_SNOOPING",
        ),
        Capability(
            "loop_devices",
            "loop block devices with partitions (the clients' disks)",
            "CONFIG_BLK_DEV_LOOP",
            "ls /dev/loop-control",
        ),
        Capability(
            "fuse",
            "FUSE (smbnetfs: createImage into the repository share)",
            "CONFIG_FUSE_FS",
            "ls /dev/fuse",
        ),
        Capability(
            "kvm",
            "hardware virtualisation for the VM lab (else TCG, slower)",
            "CONFIG_KVM_INTEL / CONFIG_KVM_AMD (not PVM)",
            "ls /dev/kvm; lsmod | grep -E 'kvm_(intel|amd)'",
        ),
    )
}


@dataclass(frozen=True)
class HostCapabilities:
    """The probed capabilities of this host (``present[name]``), and the kernel they came from."""

    kernel: str
    present: dict[str, bool]
    assumed_missing: tuple[str, ...] = ()

    def has(self, name: str) -> bool:
        return self.present.get(name, False) and name not in self.assumed_missing

    def record(self) -> dict[str, Any]:
        """What a run's results keep: the kernel and each capability as the run saw it."""
        return {
            "kernel": self.kernel,
            "capabilities": {n: self.has(n) for n in sorted(self.present)},
            **({"assumed_missing": list(self.assumed_missing)} if self.assumed_missing else {}),
        }


# --------------------------------------------------------------------------- probing

_PROBE_NFT_RELAY = """
table netdev ogprobe {
  chain in0 {
    type filter hook ingress device "ogp0" priority 0; policy accept;
    ip daddr 239.255.0.1 ip ttl > 1 dup to "ogp1"
  }
}
"""
_PROBE_NFT_LOSS = """
table bridge ogprobe {
  chain fw {
    type filter hook forward priority 0; policy accept;
    oifname "ogp1" numgen random mod 1000000 < 10 counter drop
  }
}
"""


def _ok(argv: list[str], stdin: str | None = None) -> bool:
    try:
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _mroute_works() -> bool:
    """Whether this (throwaway) namespace accepts a multicast-routing socket (MRT_INIT)."""
    import socket

    mrt_init = 200  # linux/mroute.h
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IGMP)
    except OSError:
        return False
    try:
        s.setsockopt(socket.IPPROTO_IP, mrt_init, 1)
        return True
    except OSError:
        return False
    finally:
        s.close()


def probe_here() -> dict[str, bool]:
    """Try each network feature in the current network namespace (meant to be a throwaway one:
    run by ``python -m ogsim.lab.capabilities --probe-here`` under ``unshare --net``)."""
    found: dict[str, bool] = {}
    _ok(["ip", "link", "set", "lo", "up"])
    veth = _ok(["ip", "link", "add", "ogp0", "type", "veth", "peer", "name", "ogp1"])
    if veth:
        _ok(["ip", "link", "set", "ogp0", "up"])
        _ok(["ip", "link", "set", "ogp1", "up"])
    found["netem"] = _ok(["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"])
    _ok(["tc", "qdisc", "del", "dev", "lo", "root"])
    found["tbf"] = _ok(
        ["tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "1mbit", "burst", "32kb",
         "latency", "50ms"]
    )  # fmt: skip
    found["igmp_snooping"] = _ok(["ip", "link", "add", "ogpbr", "type", "bridge"]) and _ok(
        ["ip", "link", "set", "ogpbr", "type", "bridge", "mcast_snooping", "1", "mcast_querier",
         "1", "mcast_igmp_version", "3"]
    )  # fmt: skip
    found["multicast_relay"] = veth and _ok(["nft", "-f", "-"], _PROBE_NFT_RELAY)
    found["nft_bridge_loss"] = veth and _ok(["nft", "-f", "-"], _PROBE_NFT_LOSS)
    found["multicast_routing"] = _mroute_works()
    return found


def _host_only() -> dict[str, bool]:
    """Capabilities read off the host itself (devices), not from a namespace."""
    from ogsim.lab.libvirt.domain import kvm_works

    return {
        "loop_devices": Path("/dev/loop-control").exists(),
        "fuse": Path("/dev/fuse").exists(),
        "kvm": kvm_works(),
    }


def _assumed_missing() -> tuple[str, ...]:
    raw = os.environ.get(ASSUME_MISSING_ENV, "")
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    unknown = [n for n in names if n not in CAPABILITIES]
    if unknown:
        raise ValueError(
            f"{ASSUME_MISSING_ENV}: unknown capability {', '.join(unknown)} "
            f"(known: {', '.join(CAPABILITIES)})"
        )
    return names


@functools.cache
def _probe_cached() -> tuple[str, tuple[tuple[str, bool], ...]]:
    kernel = os.uname().release
    net = dict.fromkeys(
        (
            "netem",
            "tbf",
            "igmp_snooping",
            "multicast_relay",
            "nft_bridge_loss",
            "multicast_routing",
        ),
        False,
    )
    if os.geteuid() == 0 and shutil.which("unshare"):
        try:
            done = subprocess.run(
                ["unshare", "--net", "--", sys.executable, "-m", __name__, "--probe-here"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            done = None
        if done is not None and done.returncode == 0:
            net.update(json.loads(done.stdout.strip().splitlines()[-1]))
    return kernel, tuple(sorted({**net, **_host_only()}.items()))


def probe() -> HostCapabilities:
    """This host's capabilities (probed once per process; needs root for the network ones,
    which read as missing otherwise), minus any named in ``$OGSIM_ASSUME_MISSING``."""
    kernel, present = _probe_cached()
    return HostCapabilities(kernel, dict(present), _assumed_missing())


# --------------------------------------------------------------------------- what a scenario needs


@dataclass(frozen=True)
class Need:
    """A scenario's need: any one of ``any_of`` must be present.  A ``hard`` need missing refuses
    the run; a soft one is run without and noted (``approximation`` says what is lost)."""

    any_of: tuple[str, ...]
    why: str
    hard: bool = True
    approximation: str = ""


@dataclass
class Verdict:
    """What :func:`check` concluded: reasons to refuse, notes on what is approximated."""

    refusals: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refusals


def _subnet_of(scenario: Scenario, address: IPv4Address) -> IPv4Network:
    for room in scenario.site.classrooms:
        for pc in room.computers:
            if address in pc.subnet:
                return pc.subnet
    return IPv4Interface(f"{address}/24").network


def _repository_address(scenario: Scenario, name: str) -> IPv4Address:
    """Where a computer's repository is (the first one when its binding names no known one)."""
    from ogref.errors import FormatError

    try:
        return IPv4Address(scenario.site.repository(name).address)
    except (FormatError, ValueError):
        return IPv4Address(scenario.site.repositories[0].address)


def multicast_crossings(scenario: Scenario) -> list[str]:
    """The scenario's multicast sessions whose receivers sit outside the sender's subnet
    (empty when the router does not route multicast: then those receivers must fail)."""
    from ogref.model import Method, Transport
    from ogref.model.policy import NotCacheProtocol

    if not scenario.spec.network.router.multicast:
        return []
    site = scenario.site
    fallback_multicast = site.policy.restore_protocol_not_cache is NotCacheProtocol.MULTICAST
    found: list[str] = []
    for index, op in enumerate(site.operations):
        body = getattr(op, op.kind)
        if op.kind in ("restore", "deploy", "update_cache"):
            method = Method.parse(body.method)
            if method.transport is not Transport.MULTICAST and not (
                fallback_multicast and method.uses_cache
            ):
                continue
            targets = site.scope(body.to)
            sources = {_repository_address(scenario, pc.repository) for pc in targets}
        elif op.kind == "clone" and body.method == "MULTICAST":
            targets = site.scope(body.to)
            sources = {site.computer(body.master).address}
        else:
            continue
        for src in sources:
            net = _subnet_of(scenario, src)
            away = sorted({str(pc.subnet) for pc in targets if pc.address not in net})
            if away:
                found.append(
                    f"operation {index} ({op.kind}) multicasts from {src} to {', '.join(away)}"
                )
    return found


NETNS_MAX_COMPUTERS = 120
"""A netns lab runs one Python agent (≈ 40 MB), a loop disk and a namespace per computer on a
2-core host; beyond this the run would measure the host, not the classroom."""

NOT_EMULATED: dict[str, dict[str, str]] = {
    "netns": {
        "slow_disk": "the clients' disks are loop devices on the host's own disk, which the lab "
        "cannot slow down by a factor (cgroup v1 blkio does not throttle buffered writes)",
        "repository_restart": "a restart of the repository's services is not emulated yet "
        "(the simulator models a stall; stopping smbd would break the transfers instead)",
        "seeder_death:computers": "a computer's own seeding cannot be stopped apart from its "
        "download (only the repository's seeder: target repo)",
    },
    "libvirt": {
        kind: "the VM lab injects no faults yet (the netns lab does)"
        for kind in (
            "link_loss",
            "link_down",
            "client_crash",
            "seeder_death",
            "seeder_death:computers",
            "slow_disk",
            "repository_restart",
        )
    },
}
RUNS: dict[str, tuple[str, ...]] = {
    "netns": ("restore", "deploy", "update_cache", "create", "clone", "boot"),
    "libvirt": ("restore", "deploy", "update_cache", "boot"),
}
"""The console commands each lab backend carries out."""


def unsupported(scenario: Scenario, backend: str) -> list[str]:
    """What of ``scenario`` the ``backend`` cannot realise at all, whatever the host (reasons)."""
    out: list[str] = []
    if backend in ("netns", "libvirt") and getattr(scenario.spec.backends, backend) is None:
        meant = [b for b in ("sim", "netns", "libvirt") if getattr(scenario.spec.backends, b)]
        out.append(
            f"the scenario is meant for {', '.join(meant) or 'no backend'} (it has no "
            f"backends.{backend} section)"
        )
    table = NOT_EMULATED.get(backend, {})
    repos = {r.name for r in scenario.site.repositories}
    for i, f in enumerate(scenario.spec.faults):
        body = getattr(f, f.kind)
        key = f.kind
        if f.kind == "seeder_death" and set(body.target) - repos:
            key = "seeder_death:computers"
        if key in table:
            out.append(f"faults.{i} ({f.kind}): {table[key]}")
    for i, op in enumerate(scenario.site.operations):
        if backend in RUNS and op.kind not in RUNS[backend]:
            out.append(f"operations.{i} ({op.kind}): not carried out by the {backend} lab")
    if backend == "netns" and len(scenario.site.computers) > NETNS_MAX_COMPUTERS:
        out.append(
            f"{len(scenario.site.computers)} computers: the netns lab runs at most "
            f"{NETNS_MAX_COMPUTERS} on one host (an agent, a namespace and a loop disk each)"
        )
    return out


def needs(scenario: Scenario, backend: str) -> list[Need]:
    """What ``scenario`` needs from the host on ``backend`` (``netns`` or ``libvirt``)."""
    out: list[Need] = []
    if backend == "libvirt":
        out.append(
            Need(
                ("kvm",), "VMs", hard=False, approximation="VMs run under TCG (slower, same result)"
            )
        )
        return out
    if backend != "netns":
        return out
    out.append(Need(("loop_devices",), "the clients' disks are loop devices"))
    out.append(Need(("igmp_snooping",), "the lab's bridges snoop IGMP (multicast to members only)"))
    out.append(Need(("tbf",), "link rates are shaped with tc tbf"))
    for crossing in multicast_crossings(scenario):
        out.append(Need(("multicast_routing", "multicast_relay"), crossing))
    lossy = [n for n, hw in scenario.hosts.items() if hw.loss > 0]
    faults = [f.kind for f in scenario.spec.faults if f.kind in ("link_loss", "link_down")]
    if lossy or faults:
        what = f"link loss on {', '.join(lossy[:3])}" if lossy else f"fault {faults[0]}"
        out.append(Need(("nft_bridge_loss",), what))
    delays = sorted({hw.delay_s for hw in scenario.hosts.values() if hw.delay_s > 0})
    if delays:
        worst = delays[-1]
        lan = worst <= LAN_DELAY_S
        out.append(
            Need(
                ("netem",),
                f"link delay up to {worst * 1000:g} ms",
                hard=not lan,
                approximation=f"link delay of {worst * 1000:g} ms not emulated (a LAN's, "
                f"≤ {LAN_DELAY_S * 1000:g} ms: negligible beside the transfers)",
            )
        )
    if any(op.create is not None and op.create.target == "REPO" for op in scenario.site.operations):
        out.append(Need(("fuse",), "createImage into the repository share (smbnetfs)"))
    return out


def _names(any_of: Iterable[str]) -> str:
    caps = [CAPABILITIES[n] for n in any_of]
    return " nor ".join(f"{c.what} ({c.kernel_option})" for c in caps)


def check(scenario: Scenario, backend: str, caps: HostCapabilities) -> Verdict:
    """Refusals (one line each, naming the kernel option) and approximation notes."""
    verdict = Verdict()
    for why in unsupported(scenario, backend):
        verdict.refusals.append(f"{scenario.name} cannot run on {backend}: {why}")
    for need in needs(scenario, backend):
        if any(caps.has(n) for n in need.any_of):
            continue
        lack = ("neither " if len(need.any_of) > 1 else "no ") + _names(need.any_of)
        if need.hard:
            verdict.refusals.append(
                f"{scenario.name} cannot run on {backend} here: {need.why}, but this kernel "
                f"({caps.kernel}) has {lack}"
            )
        else:
            verdict.notes.append(f"{need.approximation}: this kernel has {lack}")
    return verdict


class HostCapabilityError(RuntimeError):
    """The host lacks what the scenario needs on this backend (checked before anything is built)."""

    def __init__(self, refusals: list[str]) -> None:
        super().__init__("; ".join(refusals))
        self.refusals = refusals


def require(scenario: Scenario, backend: str, caps: HostCapabilities | None = None) -> Verdict:
    """Raise :class:`HostCapabilityError` when ``scenario`` cannot mean the same on ``backend``
    here; else the verdict (its notes say what is approximated)."""
    verdict = check(scenario, backend, caps or probe())
    if not verdict.ok:
        raise HostCapabilityError(verdict.refusals)
    return verdict


def report() -> list[tuple[Capability, bool]]:
    """Every capability with whether this host has it (``ogsim host``)."""
    caps = probe()
    return [(c, caps.has(c.name)) for c in CAPABILITIES.values()]


if __name__ == "__main__":  # pragma: no cover - run under `unshare --net` by _probe_cached
    if sys.argv[1:] == ["--probe-here"]:
        print(json.dumps(probe_here()))
    else:
        sys.exit("usage: python -m ogsim.lab.capabilities --probe-here (inside unshare --net)")
