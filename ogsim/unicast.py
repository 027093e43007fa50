"""Unicast transfers: SMB/TCP flows from a repository (or a MASTER) sharing links max-min fairly.

A unicast flow crosses the repository model (:meth:`ogsim.node.Source.smb_path`): the uplink
(NIC), the server's SMB cores when ``hw.smb_stream`` is set, the disk unless the image fits the
page cache (``hw.page_cache``), and the router when the client sits in another subnet; its own
cap is the receiving pipeline, the client's link, one SMB stream's CPU share and TCP's loss limit
(Mathis: ``MSS·1.22 / (RTT·√p)``).  SMB overhead inflates the bytes on the wire.  Link-down
and repository outages stall the flow; it resumes when they end (a hard SMB mount waits).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from ogsim.network import Flow

if TYPE_CHECKING:
    from ogsim.client import SimClient
    from ogsim.node import Source

MSS = 1460.0


def tcp_loss_cap(rtt_s: float, loss: float) -> float:
    """TCP throughput bound under random loss (bytes/s); infinite without loss."""
    if loss <= 0:
        return math.inf
    return MSS * 1.22 / (max(rtt_s, 1e-4) * math.sqrt(loss))


class UnicastJob:
    """One unicast transfer of ``payload`` stored bytes to a client."""

    def __init__(
        self,
        client: SimClient,
        source: Source,
        payload: float,
        pipeline_cap: Callable[[], float],
        on_ok: Callable[[float], None],
        label: str,
    ) -> None:
        self.client = client
        self.source = source
        self.payload = payload
        self.pipeline_cap = pipeline_cap
        self.on_ok = on_ok
        self.overhead = 1.0 + source.smb_overhead
        sim = client.sim
        links = source.smb_path(client, payload)
        self.flow = Flow(payload, links, self._cap(), self._done, label=label, wire=self.overhead)
        sim.net.start(self.flow)

    def _cap(self) -> float:
        c = self.client
        if not c.link_up or not c.alive:
            return 0.0
        rtt = 2 * (c.hw.delay_s + self.source.delay_to(c))
        wire = min(c.hw.link_rate, tcp_loss_cap(rtt, c.loss + self.source.loss))
        return min(min(wire, self.source.smb_stream) / self.overhead, self.pipeline_cap())

    def _done(self, flow: Flow) -> None:
        self.on_ok(self.payload)

    def refresh(self) -> None:
        """Re-evaluate the cap after a fault changed the client."""
        self.client.sim.net.set_cap(self.flow, self._cap())

    def cancel(self) -> None:
        """Abort the transfer."""
        self.client.sim.net.stop(self.flow)

    @property
    def moved(self) -> float:
        return self.flow.moved
