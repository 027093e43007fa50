"""Hand-built cache situations for the decision-table tests (independent of ogref.core.table)."""

from __future__ import annotations

from ogref.core.deploy import DeployRequest, DeploySession, Operation
from ogref.core.driver import ModelOracle, drive
from ogref.core.events import Command, Event
from ogref.core.table import CopyState, Room
from ogref.model import (
    Cache,
    CachedImage,
    Computer,
    Disk,
    DiskLayout,
    EngineConfig,
    Filesystem,
    Image,
    Method,
    MulticastSession,
    Partition,
    Repository,
    TorrentSession,
)
from ogref.units import GIB

STORED = 10 * GIB
IMAGE = Image("img", Filesystem.NTFS, 5 * GIB, STORED, "repo", checksum="A" * 32)
REPO = Repository("repo", "10.0.0.1", (IMAGE,))
MCAST = MulticastSession()


def cache_for(copy: CopyState, room: Room, strict: bool = False) -> Cache:
    """A cache where the copy of IMAGE is in state ``copy`` and the room is ``room``.

    OpenGnSys compares with >=, so GE_FREE / GE_SIZE witnesses sit exactly on equality.
    ``strict``: 1.1.1d's arithmetic, which needs the whole image free beside a partial copy.
    """
    cached = {
        CopyState.ABSENT: None,
        CopyState.CURRENT: CachedImage("img", STORED, IMAGE.checksum),
        CopyState.STALE: CachedImage("img", STORED, "B" * 32),
        CopyState.STALE_HEAD: CachedImage("img", STORED, "B" * 32, same_tail=True),
        CopyState.PARTIAL: CachedImage("img", 4 * GIB, IMAGE.checksum, complete=False),
    }[copy]
    images = (cached,) if cached else ()
    held = cached.size if cached else 0
    required = STORED - (held if copy is CopyState.PARTIAL and not strict else 0)
    reclaim = held if copy in (CopyState.STALE, CopyState.STALE_HEAD) else 0
    size = STORED if room is Room.GE_SIZE else 100 * GIB
    if room is Room.GE_SIZE:
        free = size - held
    elif room is Room.GE_FREE:
        free = max(0, required - reclaim)
    else:
        free = required - reclaim + GIB if required > reclaim else GIB
    return Cache(size=size, images=images, overhead=size - held - free)


def computer(
    cache: Cache | None, part_size: int = 40 * GIB, fs: Filesystem = Filesystem.NTFS
) -> Computer:
    disk = Disk(1, 200 * GIB, partitions=(Partition(1, part_size, fs),))
    return Computer(
        "pc01", "10.0.1.11/24", disks=DiskLayout((disk,)), cache=cache, classroom="aula"
    )


def run(
    cache: Cache | None,
    method: str,
    policy: EngineConfig | None = None,
    operation: Operation = Operation.RESTORE_COMMAND,
    oracle: ModelOracle | None = None,
    **req: object,
) -> tuple[DeploySession, list[Command]]:
    m = Method.parse(method)
    req.setdefault("torrent", TorrentSession())  # as the console sends (the classroom's)
    request = DeployRequest(operation, "img", m, multicast=MCAST, **req)  # type: ignore[arg-type]
    session = DeploySession(request, policy or EngineConfig())
    pc = computer(cache)
    cmds = drive(session, oracle or ModelOracle(pc, REPO))
    return session, cmds


def kinds(cmds: list[Command]) -> list[str]:
    return [type(c).__name__ for c in cmds if type(c).__name__ not in ("Log",)]


class Answering(ModelOracle):
    """The model oracle, but commands of one type answer with a given event."""

    def __init__(self, *a: object, on: type, event: Event, **k: object) -> None:
        super().__init__(*a, **k)  # type: ignore[arg-type]
        self.on, self.event = on, event

    def answer(self, cmd: Command) -> Event | None:
        if isinstance(cmd, self.on):
            return self.event
        return super().answer(cmd)
