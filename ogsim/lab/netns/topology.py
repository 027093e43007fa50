"""The lab's network: a switch namespace with one Linux bridge per subnet, and a namespace per
host (repository, server, each client, a router between subnets) joined to its bridge by a veth.

Every namespace and link is recorded in the run's :class:`~ogsim.lab.manifest.Manifest` before it
is created.  Nothing is attached to a real interface and nothing is NATed: the bridges live in the
switch namespace, the hosts only see their ``eth0`` (``eth1`` on the router).  Multicast works with
IGMP snooping on and an IGMPv3 querier on each bridge
(registered groups only reach their members; the link-local groups udpcast's rendezvous uses
must flood, so ``mcast_flood`` stays on), the repository and router ports are permanent
multicast routers.  The querier must speak IGMPv3: under v2 queries a host that hears another
member's report suppresses its own, the snooping bridge then forwards the group to the one port
that reported, and the silent members get nothing until the next query (measured: udp-sender
waiting 24–36 s on "notAnswered" receivers in most back-to-back sessions).  Across
subnets multicast goes through ``smcrouted`` in the router namespace (started here, recorded)
where the kernel routes multicast (``CONFIG_IP_MROUTE``), else through the *relay*: an nftables
``netdev`` table on the router's legs that duplicates the sessions' frames (TTL > 1) from each
leg to the others (:mod:`ogsim.lab.capabilities` says which the host can do).
Shaping is :mod:`ogsim.lab.netns.shaping`'s job; services are started elsewhere.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

from ogsim.lab.cgroup import joined
from ogsim.lab.manifest import Manifest

SWITCH = "sw"
MRELAY_TABLE = "oglab_mrelay"


class TopologyError(RuntimeError):
    """A namespace, link or address could not be set up."""


def sh(argv: Sequence[str], *, check: bool = True, timeout: float = 30) -> str:
    """Run one administrative command (ip, bridge, tc, nft); its stdout."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode:
        raise TopologyError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def new_prefix() -> str:
    """A short random namespace prefix for one run (``og3f2a``), so runs never collide."""
    return "og" + secrets.token_hex(2)


@dataclass(frozen=True)
class Host:
    """A host namespace with its address (``10.0.1.11/24``) and the switch-side port name."""

    name: str
    netns: str
    ip: str
    port: str
    bridge: str

    @property
    def address(self) -> str:
        return str(IPv4Interface(self.ip).ip)

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """``ip netns exec NS argv…`` (the PID of the result is the program's own: ip execs)."""
        return ["ip", "netns", "exec", self.netns, *argv]


@dataclass
class Topology:
    """Builds and remembers the lab network of one run."""

    manifest: Manifest
    prefix: str = field(default_factory=new_prefix)
    hosts: dict[str, Host] = field(default_factory=dict)
    bridges: dict[IPv4Network, str] = field(default_factory=dict)
    router: Host | None = None
    router_legs: dict[IPv4Network, str] = field(default_factory=dict)

    @property
    def switch(self) -> str:
        return f"{self.prefix}-{SWITCH}"

    # ------------------------------------------------------------------ building

    def _netns(self, name: str) -> str:
        """A new namespace ``<prefix>-<name>``; one that exists already (another run's, the
        user's) is refused, never adopted — and so never destroyed by this run."""
        ns = f"{self.prefix}-{name}"
        if Path(f"/run/netns/{ns}").exists():
            raise TopologyError(f"namespace {ns} exists already: not this run's")
        res = self.manifest.record("netns", ns)
        try:
            sh(["ip", "netns", "add", ns])
        except TopologyError as exc:
            if "exists" in str(exc):  # made by someone else in between: not ours
                self.manifest.release(res)
            raise
        sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        return ns

    def build_switch(self) -> None:
        """The switch namespace (no addresses: a pure L2 box)."""
        self._netns(SWITCH)

    def bridge_for(self, subnet: IPv4Network) -> str:
        """The bridge of ``subnet``, created on first use (snooping + querier on)."""
        if subnet in self.bridges:
            return self.bridges[subnet]
        br = f"br{len(self.bridges)}"
        self.manifest.record("link", br, netns=self.switch)
        sh(["ip", "-n", self.switch, "link", "add", br, "type", "bridge"])
        sh(
            [
                "ip",
                "-n",
                self.switch,
                "link",
                "set",
                br,
                "type",
                "bridge",
                "mcast_snooping",
                "1",
                "mcast_querier",
                "1",
                "mcast_query_interval",
                "1000",
                "mcast_igmp_version",
                "3",
            ]
        )
        sh(["ip", "-n", self.switch, "link", "set", br, "up"])
        self.bridges[subnet] = br
        return br

    def add_host(self, name: str, ip: str, *, mcast_router: bool = False) -> Host:
        """A host namespace ``name`` with ``eth0`` at ``ip`` (with prefix) on its subnet's bridge."""
        iface = IPv4Interface(ip)
        br = self.bridge_for(iface.network)
        ns = self._netns(name)
        port = f"v{name}"[:15]
        self._plug(ns, port, "eth0", br, iface, mcast_router=mcast_router)
        sh(["ip", "-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0"])
        host = Host(name, ns, str(iface), port, br)
        self.hosts[name] = host
        return host

    def _plug(
        self, ns: str, port: str, leg: str, br: str, iface: IPv4Interface, *, mcast_router: bool
    ) -> None:
        """A veth from bridge ``br`` (port ``port``, recorded) to ``leg`` in ``ns`` at ``iface``."""
        self.manifest.record("link", port, netns=self.switch)
        sh(["ip", "-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", leg,
            "netns", ns])  # fmt: skip
        sh(["ip", "-n", self.switch, "link", "set", port, "master", br, "up"])
        if mcast_router:
            sh(["bridge", "-n", self.switch, "link", "set", "dev", port, "mcast_router", "2"])
        sh(["ip", "-n", ns, "addr", "add", str(iface), "brd", "+", "dev", leg])
        sh(["ip", "-n", ns, "link", "set", leg, "up"])

    def add_router(self, subnets: Sequence[IPv4Network], run_dir: Path) -> Host:
        """A router namespace with a leg (``ethN`` at the subnet's last address) on each subnet,
        forwarding unicast and, through ``smcrouted``, multicast between them."""
        ns = self._netns("rtr")
        legs: list[str] = []
        for i, net in enumerate(subnets):
            br = self.bridge_for(net)
            port = f"vrtr{i}"
            leg = f"eth{i}"
            gw = IPv4Interface(f"{net.broadcast_address - 1}/{net.prefixlen}")
            self._plug(ns, port, leg, br, gw, mcast_router=True)
            self.router_legs[net] = leg
            legs.append(leg)
        sh(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        first = next(iter(subnets))
        self.router = Host(
            "rtr",
            ns,
            str(IPv4Interface(f"{first.broadcast_address - 1}/{first.prefixlen}")),
            "vrtr0",
            self.bridges[first],
        )
        return self.router

    def gateway(self, subnet: IPv4Network) -> str:
        """The router's address on ``subnet``."""
        return str(subnet.broadcast_address - 1)

    def route_between(self, host: Host, subnets: Sequence[IPv4Network]) -> None:
        """Route ``host`` to the other ``subnets`` through the router."""
        own = IPv4Interface(host.ip).network
        for net in subnets:
            if net != own:
                sh(["ip", "-n", host.netns, "route", "add", str(net), "via", self.gateway(own)])

    def start_mrouting(self, groups: Sequence[str], run_dir: Path) -> subprocess.Popen[bytes]:
        """``smcrouted`` in the router: each group from every leg to the others (a sender may
        be the repository or a MASTER in any subnet)."""
        assert self.router is not None
        conf = run_dir / "smcroute.conf"
        legs = list(self.router_legs.values())
        lines = [f"phyint {leg} enable" for leg in legs]
        for src in legs:
            outs = " ".join(leg for leg in legs if leg != src)
            lines += [f"mroute from {src} group {g} to {outs}" for g in groups]
        conf.write_text("\n".join(lines) + "\n")
        sock = run_dir / "smcroute.sock"
        pidf = run_dir / "smcroute.pid"
        log = open(run_dir / "smcroute.log", "wb")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            joined(
                self.router.exec_argv(
                    [
                        "smcrouted",
                        "-n",
                        "-N",
                        "-f",
                        str(conf),
                        "-u",
                        str(sock),
                        "-P",
                        str(pidf),
                        "-l",
                        "debug",
                    ]
                ),
                self.manifest.cgroup,
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.manifest.record_process("smcrouted", proc, netns=self.router.netns)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not sock.exists():
            time.sleep(0.05)
        if proc.poll() is not None:
            raise TopologyError(f"smcrouted exited {proc.returncode}: see {run_dir}/smcroute.log")
        return proc

    def start_mrelay(self, groups: Sequence[str]) -> str:
        """The relay: an nft ``netdev`` table in the router duplicating frames sent to
        ``groups`` with TTL > 1 from each leg's ingress to the other legs, as they are (source
        address, TTL and all); recorded before it is made.  Returns the table's name."""
        assert self.router is not None
        legs = list(self.router_legs.values())
        dst = "{ " + ", ".join(groups) + " }"
        chains = []
        for src in legs:
            dups = " ".join(f'dup to "{leg}"' for leg in legs if leg != src)
            chains.append(
                f"  chain from_{src} {{\n"
                f'    type filter hook ingress device "{src}" priority 0; policy accept;\n'
                f"    ip daddr {dst} ip ttl > 1 counter {dups}\n"
                "  }"
            )
        ruleset = f"table netdev {MRELAY_TABLE} {{\n" + "\n".join(chains) + "\n}\n"
        self.manifest.record(
            "nft_table", MRELAY_TABLE, netns=self.router.netns, extra={"family": "netdev"}
        )
        done = subprocess.run(
            ["ip", "netns", "exec", self.router.netns, "nft", "-f", "-"],
            input=ruleset,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode:
            raise TopologyError(f"multicast relay: nft: {done.stderr.strip()}")
        return MRELAY_TABLE

    def relayed(self) -> int:
        """Frames the relay has duplicated so far (0 without a relay)."""
        if self.router is None:
            return 0
        out = sh(
            ["ip", "netns", "exec", self.router.netns, "nft", "list", "table", "netdev",
             MRELAY_TABLE],
            check=False,
        )  # fmt: skip
        return sum(int(m) for m in re.findall(r"counter packets (\d+)", out))
