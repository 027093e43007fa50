"""The console's organisation: organisational units → classrooms → computer groups → computers.

Each computer is bound to one repository (re-read only at boot, as in OpenGnSys) and one hardware
profile.  Classrooms carry the multicast and P2P network parameters used to build session strings.
Deterministic names: ``pc01…pcNN`` inside a classroom.  No I/O and no decision logic here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from ogref.errors import FormatError
from ogref.model.protocol import MulticastSession, TorrentSession
from ogref.model.storage import Cache, DiskLayout


@dataclass(frozen=True)
class HardwareProfile:
    """A hardware profile: whether Windows boots directly or needs a reboot first."""

    name: str = "default"
    windows_needs_reboot: bool = True


@dataclass(frozen=True)
class Computer:
    """A client computer.

    Attributes:
        name: host name (also the post-configured hostname).
        ip: IPv4 address with prefix (``10.0.1.11/24``) — the subnet matters for multicast.
        mac: MAC address (Wake-on-LAN).
        repository: name of the repository it is bound to.
        disks: its disks and partitions.
        cache: its CACHE partition, or None when it has none.
        group, classroom, org_unit: where it sits in the console tree.
        profile: its hardware profile.
    """

    name: str
    ip: str
    mac: str = ""
    repository: str = "repo"
    disks: DiskLayout = field(default_factory=DiskLayout)
    cache: Cache | None = None
    group: str = ""
    classroom: str = ""
    org_unit: str = ""
    profile: HardwareProfile = field(default_factory=HardwareProfile)

    def __post_init__(self) -> None:
        try:
            IPv4Interface(self.ip)
        except ValueError as exc:
            raise FormatError(f"computer {self.name}: bad IP {self.ip!r}: {exc}") from None

    @property
    def address(self) -> IPv4Address:
        """The computer's IPv4 address."""
        return IPv4Interface(self.ip).ip

    @property
    def subnet(self) -> IPv4Network:
        """The computer's IPv4 subnet."""
        return IPv4Interface(self.ip).network


@dataclass(frozen=True)
class Group:
    """A group of computers inside a classroom."""

    name: str
    computers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Classroom:
    """A classroom with its computers, groups, and multicast/P2P parameters."""

    name: str
    computers: tuple[Computer, ...] = ()
    groups: tuple[Group, ...] = ()
    multicast: MulticastSession = field(default_factory=MulticastSession)
    torrent: TorrentSession = field(default_factory=TorrentSession)
    org_unit: str = ""

    def __post_init__(self) -> None:
        names = [c.name for c in self.computers]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise FormatError(f"classroom {self.name}: duplicate computers {sorted(dupes)}")
        known = set(names)
        for group in self.groups:
            unknown = [n for n in group.computers if n not in known]
            if unknown:
                raise FormatError(f"group {group.name}: unknown computers {unknown}")

    def computer(self, name: str) -> Computer:
        """The computer called ``name``."""
        for c in self.computers:
            if c.name == name:
                return c
        raise FormatError(f"classroom {self.name} has no computer {name!r}")

    def group(self, name: str) -> tuple[Computer, ...]:
        """The computers of a group, in classroom order."""
        for g in self.groups:
            if g.name == name:
                members = set(g.computers)
                return tuple(c for c in self.computers if c.name in members)
        raise FormatError(f"classroom {self.name} has no group {name!r}")


@dataclass(frozen=True)
class OrgUnit:
    """An organisational unit holding classrooms."""

    name: str
    classrooms: tuple[Classroom, ...] = ()
    image_directory: str = ""
