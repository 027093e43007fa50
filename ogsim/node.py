"""Sources of image bytes on the simulated network: repositories and MASTER computers.

A source owns its uplink (and, for a repository, its disk-read capacity) as shared links and
knows the path to a client: its own links plus the router when the client is in another subnet.
It keeps the state faults change (up/down, loss, seeder alive).  Transfers live elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import TYPE_CHECKING

from ogsim.network import Link

if TYPE_CHECKING:
    from ogsim.client import SimClient


@dataclass(eq=False)
class Router:
    """The routed core between subnets."""

    link: Link
    delay_s: float
    multicast: bool


@dataclass(eq=False)
class Source:
    """Something clients pull image bytes from."""

    name: str
    address: IPv4Address
    subnet: IPv4Network | None
    uplink: Link
    router: Router
    read: Link | None = None
    smb_overhead: float = 0.08
    smb_cpu: Link | None = None  # the server's cores serving SMB streams (None: unlimited)
    smb_stream: float = float("inf")  # bytes/s one SMB stream can carry on one core
    page_cache: float = 0.0  # bytes of images the server keeps in memory
    loss: float = 0.0
    up: bool = True
    seeder_alive: bool = True
    restart_s: float = 60.0
    seeder_slots: int = 8
    mcast_start_s: float = 0.0
    fec: str = "8x8/128"
    torrent_start_s: float = 0.0
    listeners: list[object] = field(default_factory=list)

    def crosses_router(self, client: SimClient) -> bool:
        """Whether traffic to ``client`` is routed (client outside the source's subnet)."""
        subnet = client.computer.subnet
        return self.address not in subnet

    def path_to(self, client: SimClient) -> tuple[Link, ...]:
        """Shared links a flow to ``client`` crosses."""
        links = [self.uplink]
        if self.read is not None:
            links.append(self.read)
        if self.crosses_router(client):
            links.append(self.router.link)
        return tuple(links)

    def smb_path(self, client: SimClient, size: float) -> tuple[Link, ...]:
        """Shared links a unicast (SMB) stream of a ``size``-byte image crosses: the uplink (the
        NIC), the server's SMB cores, the disk unless the image sits in the page cache, and the
        router when the client is in another subnet."""
        links = [self.uplink]
        if self.smb_cpu is not None:
            links.append(self.smb_cpu)
        if self.read is not None and size > self.page_cache:
            links.append(self.read)
        if self.crosses_router(client):
            links.append(self.router.link)
        return tuple(links)

    def delay_to(self, client: SimClient) -> float:
        """One-way delay from the source to the client's access link."""
        return self.router.delay_s if self.crosses_router(client) else 0.0001
