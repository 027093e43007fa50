"""Transfer session strings: multicast (``port:duplex:address:rateM:nclients:maxwait``), the client
multicast form (``port[:serverip[:start_timeout[:receive_timeout]]]``) and torrent (``mode:time``).

Built and validated exactly as OpenGnSys's ``ogMcastSyntax`` does (even port 9000–9098, bitrate of
1–3 digits plus ``M``…).  Parsing only; starting senders or peers is the runtime's job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address, ip_address

from ogref.errors import FormatError, MulticastSyntaxError

MCAST_PORT_MIN = 9000
MCAST_PORT_MAX = 9098


class Duplex(StrEnum):
    """udpcast sender mode."""

    FULL = "full-duplex"
    HALF = "half-duplex"
    BROADCAST = "broadcast"


def _digits(text: str, what: str, session: str) -> int:
    if not re.fullmatch(r"[0-9]{1,10}", text) or int(text) < 1:
        raise MulticastSyntaxError(f"{what} must be 1 to 10 digits (>= 1) in session {session!r}")
    return int(text)


def _check_port(port: int, session: str) -> None:
    if port % 2 or not MCAST_PORT_MIN <= port <= MCAST_PORT_MAX:
        raise MulticastSyntaxError(
            f"multicast port {port} out of range: must be even, {MCAST_PORT_MIN}–{MCAST_PORT_MAX} "
            f"(session {session!r})"
        )


@dataclass(frozen=True)
class MulticastSession:
    """The server-side multicast session of a classroom (udp-sender parameters)."""

    port: int = 9000
    duplex: Duplex = Duplex.FULL
    address: str = "239.194.1.1"
    rate_mbit: int = 70
    nclients: int = 50
    max_wait: int = 60

    def __post_init__(self) -> None:
        text = str(self)
        _check_port(self.port, text)
        try:
            addr = ip_address(self.address)
        except ValueError:
            raise MulticastSyntaxError(f"bad multicast address {self.address!r}") from None
        if self.duplex is not Duplex.BROADCAST and not (
            isinstance(addr, IPv4Address) and addr.is_multicast
        ):
            raise MulticastSyntaxError(f"{self.address} is not an IPv4 multicast address")
        if not 1 <= self.rate_mbit <= 999:
            raise MulticastSyntaxError(f"bitrate must be 1–999 M, got {self.rate_mbit}")
        if not 1 <= self.nclients < 10**10 or not 1 <= self.max_wait < 10**10:
            raise MulticastSyntaxError("nclients and maxwait must be 1 to 10 digits")

    @classmethod
    def parse(cls, text: str) -> MulticastSession:
        """Parse ``9000:full-duplex:239.194.17.36:70M:50:60``."""
        fields = text.strip().split(":")
        if len(fields) != 6:
            raise MulticastSyntaxError(
                f"multicast session must be port:duplex:address:rateM:nclients:maxwait, got {text!r}"
            )
        port_s, duplex_s, addr, rate_s, n_s, wait_s = fields
        if not port_s.isdigit():
            raise MulticastSyntaxError(f"multicast port must be a number in {text!r}")
        try:
            duplex = Duplex(duplex_s.lower())
        except ValueError:
            raise MulticastSyntaxError(
                f"duplex must be full-duplex, half-duplex or broadcast in {text!r}"
            ) from None
        m = re.fullmatch(r"([0-9]{1,3})M", rate_s)
        if not m:
            raise MulticastSyntaxError(f"bitrate must be 1–3 digits followed by M in {text!r}")
        return cls(
            port=int(port_s),
            duplex=duplex,
            address=addr,
            rate_mbit=int(m.group(1)),
            nclients=_digits(n_s, "nclients", text),
            max_wait=_digits(wait_s, "maxwait", text),
        )

    def __str__(self) -> str:
        return (
            f"{self.port}:{self.duplex}:{self.address}:{self.rate_mbit}M:"
            f"{self.nclients}:{self.max_wait}"
        )

    def for_clients(self, nclients: int) -> MulticastSession:
        """The same session expecting ``nclients`` receivers (the console uses the scope size)."""
        return MulticastSession(
            self.port, self.duplex, self.address, self.rate_mbit, max(1, nclients), self.max_wait
        )


@dataclass(frozen=True)
class MulticastClientSession:
    """The client-side session: ``port[:serverip[:start_timeout[:receive_timeout]]]``.

    ``None`` timeouts mean "take engine.cfg's MCASTERRORSESSION / MCASTWAIT"; 0 means the
    udpcast default.
    """

    port: int
    server: str = ""
    start_timeout: int | None = None
    receive_timeout: int | None = None

    @classmethod
    def parse(cls, text: str) -> MulticastClientSession:
        """Parse ``9000:172.17.88.161:40:120`` (trailing fields optional)."""
        fields = text.strip().split(":")
        if not 1 <= len(fields) <= 4 or not fields[0].isdigit():
            raise MulticastSyntaxError(
                f"client session must be port[:ip[:start[:recv]]], got {text!r}"
            )
        port = int(fields[0])
        _check_port(port, text)
        server = fields[1] if len(fields) > 1 else ""
        if server:
            try:
                ip_address(server)
            except ValueError:
                raise MulticastSyntaxError(f"bad server address {server!r} in {text!r}") from None
        timeouts: list[int | None] = []
        for f in fields[2:]:
            if not f.isdigit():
                raise MulticastSyntaxError(f"timeouts must be numbers in {text!r}")
            timeouts.append(int(f))
        timeouts += [None] * (2 - len(timeouts))
        return cls(port, server, timeouts[0], timeouts[1])


class TorrentMode(StrEnum):
    """OpenGnSys P2P modes: peer (seed while and after), seeder, leecher (no seeding)."""

    PEER = "peer"
    SEEDER = "seeder"
    LEECHER = "leecher"


@dataclass(frozen=True)
class TorrentSession:
    """The torrent session ``mode:time`` (seconds of seeding after completion)."""

    mode: TorrentMode = TorrentMode.PEER
    seed_time: int = 60

    def __post_init__(self) -> None:
        if self.seed_time < 0:
            raise FormatError("torrent seeding time must be >= 0")

    @classmethod
    def parse(cls, text: str) -> TorrentSession:
        """Parse ``peer:60``."""
        fields = text.strip().split(":")
        if len(fields) != 2:
            raise FormatError(f"torrent session must be mode:time, got {text!r}")
        try:
            mode = TorrentMode(fields[0].lower())
        except ValueError:
            raise FormatError(f"torrent mode must be peer, seeder or leecher in {text!r}") from None
        if not fields[1].isdigit():
            raise FormatError(f"torrent time must be a number of seconds in {text!r}")
        return cls(mode, int(fields[1]))

    def __str__(self) -> str:
        return f"{self.mode}:{self.seed_time}"
