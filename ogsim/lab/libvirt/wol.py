"""Wake-on-LAN magic packets on the lab network only.

``magic_packet`` builds the 102-byte payload (6×0xFF, then the MAC 16 times); ``send`` broadcasts
it over UDP port 9 from the host's bridge address, bound to the lab bridge (``SO_BINDTODEVICE``),
so it never leaves the lab.  QEMU VMs do not wake on it: powering the domain on stands in for the
wake-up; the packet is sent so a capture on the bridge shows what a real console would send.
"""

from __future__ import annotations

import socket

WOL_PORT = 9


def magic_packet(mac: str) -> bytes:
    """The magic packet for ``mac`` (``aa:bb:cc:dd:ee:ff`` or with dashes)."""
    raw = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return b"\xff" * 6 + raw * 16


def send(mac: str, bridge: str, source_ip: str, broadcast: str) -> int:
    """Broadcast the magic packet for ``mac`` on ``bridge``; return the bytes sent."""
    payload = magic_packet(mac)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, bridge.encode())
        s.bind((source_ip, 0))
        return s.sendto(payload, (broadcast, WOL_PORT))
