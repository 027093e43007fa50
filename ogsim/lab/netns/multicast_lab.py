"""A small multicast lab for side-by-side transfer runs: a repository and receivers on one subnet,
optionally more receivers on a second subnet behind the lab's router (multicast crossing it by
``smcrouted`` or the nftables relay, as the host allows), shaped links, nftables loss; and the
command lines that run chunkcast, udpcast and UFTP in it, each process recorded in the run's
manifest (and cgroup) before anything else happens.

Used by the chunkcast root tests and ``make bench-lab``'s multicast section.  It builds and
starts; it measures nothing (the callers time the processes and read their statistics).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path

from ogsim.lab import cgroup
from ogsim.lab.capabilities import probe
from ogsim.lab.manifest import Manifest
from ogsim.lab.netns.shaping import LossTable, shape
from ogsim.lab.netns.topology import Host, Topology

NET_A = IPv4Network("10.0.8.0/24")
NET_B = IPv4Network("10.0.9.0/24")
GROUP = "239.194.8.1"
CHUNKCAST = [sys.executable, "-m", "ogref.transports.chunkcast"]


class LabUnavailableError(RuntimeError):
    """The host cannot build what was asked (the reason is the message)."""


@dataclass
class MulticastLab:
    """Built by :meth:`build`; everything it makes is in ``manifest``."""

    manifest: Manifest
    run_dir: Path
    topo: Topology
    repo: Host
    clients: list[Host]
    far: list[Host] = field(default_factory=list)
    loss: LossTable | None = None
    how_across: str = ""  # "smcroute", "relay" or "" (no second subnet)

    @classmethod
    def build(
        cls, manifest: Manifest, run_dir: Path, n: int, *, far: int = 0, rate_bps: float = 100e6
    ) -> MulticastLab:
        """``n`` receivers beside the repository, ``far`` more on the second subnet."""
        run_dir.mkdir(parents=True, exist_ok=True)
        if manifest.cgroup is None:
            cgroup.create(manifest, f"oglab-mcast-{os.getpid()}-{id(manifest) % 10000}")
        topo = Topology(manifest)
        topo.build_switch()
        repo = topo.add_host("repo", f"{NET_A[1]}/24", mcast_router=True)
        clients = [topo.add_host(f"c{i}", f"{NET_A[11 + i]}/24") for i in range(n)]
        lab = cls(manifest, run_dir, topo, repo, clients)
        if far:
            caps = probe()
            if caps.has("multicast_routing"):
                lab.how_across = "smcroute"
            elif caps.has("multicast_relay"):
                lab.how_across = "relay"
            else:
                raise LabUnavailableError(
                    "no multicast across subnets on this host: neither CONFIG_IP_MROUTE "
                    "(smcroute) nor CONFIG_NFT_DUP_NETDEV (the lab's relay)"
                )
            topo.add_router([NET_A, NET_B], run_dir)
            lab.far = [topo.add_host(f"f{i}", f"{NET_B[11 + i]}/24") for i in range(far)]
            for h in (repo, *clients, *lab.far):
                topo.route_between(h, [NET_A, NET_B])
            if lab.how_across == "smcroute":
                topo.start_mrouting([GROUP], run_dir)
            else:
                topo.start_mrelay([GROUP])
        for h in (repo, *clients, *lab.far):
            shape(topo, h, rate_bps)
        lab.loss = LossTable(topo, manifest)
        return lab

    def start(
        self, host: Host, name: str, argv: Sequence[str], *, out: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """Run ``argv`` in ``host``'s namespace, in the run's cgroup, recorded; PYTHONPATH and
        the rest of the environment are inherited."""
        log = open(out or self.run_dir / f"{name}.out", "wb")  # noqa: SIM115 - the child's
        proc = subprocess.Popen(
            cgroup.joined(host.exec_argv(list(argv)), self.manifest.cgroup),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
            start_new_session=True,
        )
        log.close()
        self.manifest.record_process(name, proc, netns=host.netns)
        return proc

    # ------------------------------------------------------------------ command lines

    def session(self, port: int, rate_mbit: int, nclients: int = 1, wait: int = 1) -> str:
        return f"{port}:full-duplex:{GROUP}:{rate_mbit}M:{nclients}:{wait}"

    def chunkcast_send(self, directory: Path, name: str, session: str, key: Path,
                       stats: Path, *extra: str) -> list[str]:  # fmt: skip
        return [*CHUNKCAST, "send", str(directory), name, "--session", session, "--key-file",
                str(key), "--interface-ip", self.repo.address, "--stats", str(stats), *extra]  # fmt: skip

    def chunkcast_receive(self, host: Host, target: Path, session: str, key: Path,
                          stats: Path, *extra: str) -> list[str]:  # fmt: skip
        return [*CHUNKCAST, "receive", str(target), "--session", session, "--key-file", str(key),
                "--interface-ip", host.address, "--stats", str(stats), *extra]  # fmt: skip
