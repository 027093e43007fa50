"""Restore methods: a transport (UNICAST, MULTICAST, TORRENT) crossed with a staging (CACHE, DIRECT).

Parsed from and printed as OpenGnSys's spellings: ``UNICAST`` means ``UNICAST-CACHE`` and
``TORRENT-DIRECT`` is refused (P2P needs a CACHE).  No decision about *which* method to use is
taken here; that belongs to :mod:`ogref.core`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ogref.errors import FormatError


class Transport(StrEnum):
    """How image bytes travel: SMB unicast, multicast from the repository, or BitTorrent P2P."""

    UNICAST = "UNICAST"
    MULTICAST = "MULTICAST"
    TORRENT = "TORRENT"


class Staging(StrEnum):
    """Where the image is restored from: the client's CACHE (deploy) or straight from REPO."""

    CACHE = "CACHE"
    DIRECT = "DIRECT"


@dataclass(frozen=True, order=True)
class Method:
    """One of the five Restore methods of the console."""

    transport: Transport
    staging: Staging

    def __post_init__(self) -> None:
        if self.transport is Transport.TORRENT and self.staging is Staging.DIRECT:
            raise FormatError("TORRENT-DIRECT does not exist: P2P transfers need a CACHE partition")

    @classmethod
    def parse(cls, text: str) -> Method:
        """Parse an OpenGnSys spelling, case-insensitively (``UNICAST`` → UNICAST-CACHE)."""
        raw = text.strip().upper()
        head, sep, tail = raw.partition("-")
        try:
            transport = Transport(head)
        except ValueError:
            raise FormatError(
                f"unknown method {text!r}: expected one of {', '.join(str(m) for m in ALL_METHODS)}"
            ) from None
        if not sep:
            return cls(transport, Staging.CACHE)
        try:
            staging = Staging(tail)
        except ValueError:
            raise FormatError(
                f"unknown method {text!r}: suffix must be -CACHE or -DIRECT"
            ) from None
        return cls(transport, staging)

    @property
    def uses_cache(self) -> bool:
        """True for the deploy methods (updateCache then restore from CACHE)."""
        return self.staging is Staging.CACHE

    def direct(self) -> Method:
        """The same transport restoring straight from the repository."""
        return Method(self.transport, Staging.DIRECT)

    def __str__(self) -> str:
        return f"{self.transport}-{self.staging}"


UNICAST_CACHE = Method(Transport.UNICAST, Staging.CACHE)
UNICAST_DIRECT = Method(Transport.UNICAST, Staging.DIRECT)
MULTICAST_CACHE = Method(Transport.MULTICAST, Staging.CACHE)
MULTICAST_DIRECT = Method(Transport.MULTICAST, Staging.DIRECT)
TORRENT_CACHE = Method(Transport.TORRENT, Staging.CACHE)
ALL_METHODS: tuple[Method, ...] = (
    UNICAST_CACHE,
    UNICAST_DIRECT,
    MULTICAST_CACHE,
    MULTICAST_DIRECT,
    TORRENT_CACHE,
)
