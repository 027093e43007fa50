"""Link shaping of the lab: rate with ``tc tbf`` on both ends of a host's veth, loss with an
nftables bridge-family table in the switch namespace, delay with ``netem`` where the kernel has it.

Some kernels have no netem (and no modules can be loaded): the host's capabilities
(:mod:`ogsim.lab.capabilities`) say so, and then delay is not emulated (the run records that, or
refuses a scenario whose delays are not a LAN's); loss always comes from nft ``numgen random``,
which was measured exact to 0.01 %.  The nft table is recorded in the manifest
before it is made.  What to shape comes from the scenario; this module only applies it.
"""

from __future__ import annotations

from ogsim.lab.manifest import Manifest
from ogsim.lab.netns.topology import Host, Topology, sh

NFT_TABLE = "oglab"
NFT_CHAIN = "lossfw"


def _burst(rate_bps: float) -> str:
    # at least 10 ms of traffic and 64 KiB, so TSO-sized packets pass at low rates
    return f"{max(64 * 1024, int(rate_bps / 8 * 0.01))}b"


def shape(
    topo: Topology, host: Host, rate_bps: float | None, delay_s: float = 0.0, *, netem: bool = False
) -> str:
    """Rate-limit both directions of ``host``'s link, and delay it where ``netem`` (the host's
    capability, :mod:`ogsim.lab.capabilities`) allows; returns a note on what was applied."""
    notes = []
    for ns, dev in ((topo.switch, host.port), (host.netns, "eth0")):
        sh(["tc", "-n", ns, "qdisc", "del", "dev", dev, "root"], check=False)
        if delay_s > 0 and netem:
            argv = [
                "tc",
                "-n",
                ns,
                "qdisc",
                "add",
                "dev",
                dev,
                "root",
                "netem",
                "delay",
                f"{delay_s * 1000:.3f}ms",
            ]
            if rate_bps:
                argv += ["rate", f"{int(rate_bps)}bit"]
            sh(argv)
        elif rate_bps:
            sh(
                [
                    "tc",
                    "-n",
                    ns,
                    "qdisc",
                    "add",
                    "dev",
                    dev,
                    "root",
                    "tbf",
                    "rate",
                    f"{int(rate_bps)}bit",
                    "burst",
                    _burst(rate_bps),
                    "latency",
                    "50ms",
                ]
            )
    if rate_bps:
        notes.append(f"{host.name}: {rate_bps / 1e6:g} Mbit/s each way")
    return "; ".join(notes)


class LossTable:
    """The switch's nft bridge table dropping a fraction of frames to and from chosen ports."""

    def __init__(self, topo: Topology, manifest: Manifest) -> None:
        self.topo = topo
        self.manifest = manifest
        self.made = False

    def _nft(self, *args: str) -> str:
        return sh(["ip", "netns", "exec", self.topo.switch, "nft", *args])

    def _ensure(self) -> None:
        if self.made:
            return
        self.manifest.record(
            "nft_table", NFT_TABLE, netns=self.topo.switch, extra={"family": "bridge"}
        )
        self._nft("add", "table", "bridge", NFT_TABLE)
        self._nft(
            "add",
            "chain",
            "bridge",
            NFT_TABLE,
            NFT_CHAIN,
            "{ type filter hook forward priority 0 ; policy accept ; }",
        )
        self.made = True

    def set_loss(self, host: Host, loss: float) -> None:
        """Drop ``loss`` (0–1) of the frames each way on ``host``'s port (0 removes the rules)."""
        self._ensure()
        listing = self._nft("-a", "list", "chain", "bridge", NFT_TABLE, NFT_CHAIN)
        for line in listing.splitlines():
            if f'"{host.port}"' in line and "# handle" in line:
                handle = line.rsplit("# handle", 1)[1].strip()
                self._nft("delete", "rule", "bridge", NFT_TABLE, NFT_CHAIN, "handle", handle)
        if loss <= 0:
            return
        per_million = max(1, round(loss * 1_000_000))
        for direction in ("oifname", "iifname"):
            self._nft(
                "add",
                "rule",
                "bridge",
                NFT_TABLE,
                NFT_CHAIN,
                direction,
                host.port,
                "numgen",
                "random",
                "mod",
                "1000000",
                "<",
                str(per_million),
                "counter",
                "drop",
            )

    def set_down(self, host: Host, down: bool) -> None:
        """Take ``host``'s switch port down (a pulled cable) or up again."""
        sh(["ip", "-n", self.topo.switch, "link", "set", host.port, "down" if down else "up"])
