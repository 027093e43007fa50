"""Client status codes as the console shows them, with their icon colours.

From the seed: live client waiting = yellow, busy = red, Windows = blue, Linux = maroon ("grana"),
off = grey.  Pure data; who reports a status is the agent's business.
"""

from __future__ import annotations

from enum import StrEnum


class ClientStatus(StrEnum):
    """OpenGnSys status codes."""

    OFF = "OFF"
    INI = "INI"
    OPG = "OPG"  # ogLive running, waiting for commands
    BSY = "BSY"  # busy: a command is running
    WIN = "WIN"
    WINS = "WINS"
    LNX = "LNX"
    LNXS = "LNXS"
    OSX = "OSX"
    MNT = "MNT"

    @property
    def colour(self) -> str:
        """Console icon colour."""
        return _COLOURS[self]

    @property
    def meaning(self) -> str:
        """What the status means, in English."""
        return _MEANINGS[self]


_COLOURS = {
    ClientStatus.OFF: "grey",
    ClientStatus.INI: "pale blue",
    ClientStatus.OPG: "yellow",
    ClientStatus.BSY: "red",
    ClientStatus.WIN: "blue",
    ClientStatus.WINS: "blue",
    ClientStatus.LNX: "maroon",
    ClientStatus.LNXS: "maroon",
    ClientStatus.OSX: "orange",
    ClientStatus.MNT: "grey (50%)",
}
_MEANINGS = {
    ClientStatus.OFF: "off",
    ClientStatus.INI: "joining",
    ClientStatus.OPG: "live client waiting",
    ClientStatus.BSY: "busy",
    ClientStatus.WIN: "Windows",
    ClientStatus.WINS: "Windows, user session",
    ClientStatus.LNX: "Linux",
    ClientStatus.LNXS: "Linux, user session",
    ClientStatus.OSX: "macOS",
    ClientStatus.MNT: "maintenance",
}
