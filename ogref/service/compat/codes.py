"""OpenGnSys's numbers and spellings, and ours.

Sources (facts read, no code taken): ogServer ``src/rest.c`` (client states, the JSON of
``GET /clients``), ``cfg/ogAdmBD.sql`` (``sistemasficheros`` ids, ``tipospar`` codes), ogClient
``src/live/ogOperations.py`` (restore ``type`` handling: ``UNICAST*``, ``TIPTORRENT``), the
OpenGnSys web console (``MULTICAST <session>``, ``TORRENT <mode:time>`` strings).
"""

from __future__ import annotations

from dataclasses import dataclass

from ogref.errors import FormatError
from ogref.model import ClientStatus
from ogref.model.method import Method

# ogServer's client states (GET /clients "state"); WOL_SENT: woken, not yet connected
WOL_SENT = "WOL_SENT"
STATES = ("OFF", "OPG", "BSY", "VDI", "LNX", "LNXS", "WIN", "WINS", WOL_SENT)


def state_of(status: ClientStatus, busy: bool) -> str:
    """ogServer's state for one of our statuses: any command in flight is BSY (as ogServer);
    statuses ogServer does not know (INI, OSX, MNT) read as the nearest it does."""
    if busy:
        return "BSY"
    return {
        ClientStatus.INI: "OFF",
        ClientStatus.OSX: "OFF",
        ClientStatus.MNT: "OFF",
    }.get(status, str(status))


# ``sistemasficheros``: idsistemafichero by name (ogServer's GET /client/setup "filesystem")
FILESYSTEM_IDS: dict[str, int] = {
    "EMPTY": 1, "CACHE": 2, "BTRFS": 3, "EXT2": 4, "EXT3": 5, "EXT4": 6, "FAT12": 7,
    "FAT16": 8, "FAT32": 9, "HFS": 10, "HFSPLUS": 11, "JFS": 12, "NTFS": 13, "REISERFS": 14,
    "REISER4": 15, "UFS": 16, "XFS": 17, "EXFAT": 18, "LINUX-SWAP": 19, "F2FS": 20,
    "NILFS2": 21,
}  # fmt: skip

# ``tipospar``: the MBR partition type code a filesystem is given (GET /client/setup "code")
PARTITION_CODES: dict[str, int] = {
    "EMPTY": 0x00, "FAT12": 0x01, "FAT16": 0x06, "NTFS": 0x07, "EXFAT": 0x07, "FAT32": 0x0B,
    "LINUX-SWAP": 0x82, "EXT2": 0x83, "EXT3": 0x83, "EXT4": 0x83, "BTRFS": 0x83, "XFS": 0x83,
    "F2FS": 0x83, "HFSPLUS": 0xAF, "CACHE": 0xCA,
}  # fmt: skip

# on a GPT disk, the gdisk-style code of the partition's type GUID (ogClient's GUID_MAP)
GPT_PARTITION_CODES: dict[str, int] = {
    "EMPTY": 0x0000, "NTFS": 0x0700, "EXFAT": 0x0700, "FAT32": 0x0700, "FAT16": 0x0700,
    "LINUX-SWAP": 0x8200, "EXT2": 0x8300, "EXT3": 0x8300, "EXT4": 0x8300, "BTRFS": 0x8300,
    "XFS": 0x8300, "F2FS": 0x8300, "HFSPLUS": 0xAF00, "CACHE": 0xCA00,
}  # fmt: skip

# a whole disk's "code" in GET /client/setup (partition 0): its table
TABLE_CODES = {"MSDOS": 1, "GPT": 2}

# ``imagenes.tipo``: 1 monolithic, 2 basic (synchronised), 3 incremental
IMAGE_TYPES = {"monolithic": 1, "diff": 3}


@dataclass(frozen=True)
class RestoreType:
    """A restore ``type`` string read as one of the five methods and, when it carried them,
    the session parameters OpenGnSys's console appends (``MULTICAST 9000:full-duplex:…``,
    ``TORRENT peer:60``); without them the classroom's settings apply (as ogLab's own API)."""

    method: Method
    multicast: str | None = None
    torrent: str | None = None


def restore_type(text: str) -> RestoreType:
    """Read ogServer's free-text restore ``type``.

    ``UNICAST`` is UNICAST-CACHE (OpenGnSys's console spelling); ``UNICAST-DIRECT``;
    ``MULTICAST[-CACHE|-DIRECT] [session]``; ``TORRENT[-CACHE] [mode:time]`` and Soleta's
    ``TIPTORRENT`` are TORRENT-CACHE (a P2P transfer into the cache: ogLab's BitTorrent stands
    in for tiptorrent).  Anything else: :class:`FormatError`."""
    head, _, params = text.strip().partition(" ")
    head = head.upper()
    params = params.strip()
    if head == "TIPTORRENT":
        head = "TORRENT-CACHE"
    method = Method.parse(head)
    if params and head.startswith("UNICAST"):
        raise FormatError(f"restore type {text!r}: UNICAST takes no parameters")
    if head.startswith("MULTICAST"):
        return RestoreType(method, multicast=params or None)
    if head.startswith("TORRENT"):
        return RestoreType(method, torrent=params or None)
    return RestoreType(method)
