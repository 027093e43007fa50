"""Events into and commands out of the sans-I/O decision core.

Events are past tense (``CacheInspected``, ``TransferFailed``) and report what a driver observed;
commands are imperative (``FetchToCache``, ``RestorePartition``) and say what a driver must do
next.  Drivers (the real runtime, the simulator, the labs, the planner) execute commands in list
order and feed back one event for each command that ``expects`` an answer.  Records only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from ogref.errors import OgErr
from ogref.model.image import CloneTool, Compressor, Image
from ogref.model.method import Method, Transport
from ogref.model.protocol import MulticastSession, TorrentSession
from ogref.model.storage import Cache, Filesystem


class Source(StrEnum):
    """Where a restore reads the image from."""

    REPO = "REPO"
    CACHE = "CACHE"
    MASTER = "MASTER"


class FailureKind(StrEnum):
    """What went wrong in a transfer or restore, as a driver observed it.

    The core maps (transport, destination, kind) to the OpenGnSys error number in one table.
    """

    JOIN = "join"  # could not join or start the session (multicast rendezvous, tracker)
    RECEIVE = "receive"  # data stopped, connection broke, download incomplete
    NOT_FOUND = "not_found"  # the file is not where it should be
    CHECKSUM = "checksum"  # content does not match
    CORRUPT = "corrupt"  # stream unreadable (bad header, decompression error)
    IO = "io"  # local disk or tool failure
    LOCKED = "locked"


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Event:
    """Base of every event."""


@dataclass(frozen=True)
class TargetInspected(Event):
    """The target partition as found: present, size, filesystem, lock, bytes in use."""

    exists: bool
    size: int = 0
    filesystem: Filesystem = Filesystem.EMPTY
    locked: bool = False
    used: int = 0


@dataclass(frozen=True)
class ImageInspected(Event):
    """The image as found at its source (REPO or CACHE), as deployImage's ``ogGetImageInfo``.

    ``found`` False: the file is missing (2).  ``readable`` False: its header is not an image or
    cannot be read (ogGetImageInfo's "corrupt image", 33).  Found and readable but ``image``
    None: its information failed otherwise — not a regular file, say (ogGetImageInfo's other
    failures, 40).  ``detail`` says what the driver saw.
    """

    found: bool
    readable: bool = True
    image: Image | None = None
    locked: bool = False
    detail: str = ""


@dataclass(frozen=True)
class CacheInspected(Event):
    """The client's cache as found (None: no CACHE partition).

    ``present``: of a chunked image, the compressed bytes of its chunks that the CACHE's chunk
    store already holds, whichever cached image (or interrupted update) brought them; 0 for an
    OpenGnSys ``.img``.  The core counts only the rest as bytes to add.
    """

    cache: Cache | None
    present: int = 0


@dataclass(frozen=True)
class TransferFinished(Event):
    """A transfer into the cache completed; ``checksum`` is the whole-file MD5 of the copy."""

    checksum: str
    bytes_moved: int = 0


@dataclass(frozen=True)
class TransferFailed(Event):
    """A transfer failed."""

    kind: FailureKind
    detail: str = ""
    bytes_moved: int = 0


@dataclass(frozen=True)
class RestoreFinished(Event):
    """The partition was written and the stream ended cleanly."""

    bytes_written: int = 0


@dataclass(frozen=True)
class RestoreFailed(Event):
    """The restore pipeline failed."""

    kind: FailureKind
    detail: str = ""


@dataclass(frozen=True)
class PostconfFinished(Event):
    """configureOs completed."""


@dataclass(frozen=True)
class PostconfFailed(Event):
    """configureOs failed with an OpenGnSys code."""

    code: OgErr
    detail: str = ""


@dataclass(frozen=True)
class StoreInspected(Event):
    """The destination store of a new image (REPO share or CACHE)."""

    present: bool
    writable: bool = True
    free: int = 0
    backup_size: int = 0
    image_locked: bool = False


@dataclass(frozen=True)
class StepFinished(Event):
    """A create-image step (fsck, reduce, write, publish, extend) succeeded.

    After WriteImage: the stored size, whole-file MD5 and the data size from the image header.
    """

    stored_size: int = 0
    checksum: str = ""
    data_size: int = 0


@dataclass(frozen=True)
class StepFailed(Event):
    """A create-image step failed (``no_space``: the destination filled up)."""

    detail: str = ""
    no_space: bool = False


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class Command:
    """Base of every command; ``expects`` names the event types a driver must answer with."""

    @property
    def expects(self) -> tuple[type[Event], ...]:
        return ()


@dataclass(frozen=True)
class Log(Command):
    """A line for the tracking log (what the client's screen shows)."""

    text: str


@dataclass(frozen=True)
class Defect(Log):
    """A tracking-log line saying that a *strict* session reproduced a 1.1.1d defect here.

    ``row`` is the row of ``docs/deviations.md`` whose OpenGnSys column decided instead of
    ogLab's.  Emitted (only under ``STRICT``) *before* the commands that carry the decision
    out, so that a driver that must not reproduce it (the real runtime, for decisions that
    would destroy data) can refuse in time.  Drivers that only log may treat it as a ``Log``.
    """

    row: int = 0


@dataclass(frozen=True)
class MethodSwitched(Command):
    """The method was switched automatically; drivers log it and record it in results."""

    requested: Method
    used: Method
    code: OgErr
    reason: str


@dataclass(frozen=True)
class InspectTarget(Command):
    """Look at the target partition."""

    disk: int
    partition: int

    @property
    def expects(self) -> tuple[type[Event], ...]:
        return (TargetInspected,)


@dataclass(frozen=True)
class InspectImage(Command):
    """Look up the image and read its header at ``source``."""

    name: str
    source: Source

    @property
    def expects(self) -> tuple[type[Event], ...]:
        return (ImageInspected,)


@dataclass(frozen=True)
class InspectCache(Command):
    """Find and mount the CACHE partition and list what it holds."""

    @property
    def expects(self) -> tuple[type[Event], ...]:
        return (CacheInspected,)


@dataclass(frozen=True)
class FormatCache(Command):
    """Reformat the whole CACHE (ACTIONCACHEFULL=FORMAT); answer with the cache afterwards."""

    @property
    def expects(self) -> tuple[type[Event], ...]:
        return (CacheInspected,)


@dataclass(frozen=True)
class EmptyCache(Command):
    """Delete every image in the CACHE (ACTIONCACHEFULL=DELETE); answer with the cache after."""

    @property
    def expects(self) -> tuple[type[Event], ...]:
        return (CacheInspected,)


@dataclass(frozen=True)
class EvictFromCache(Command):
    """Delete these cached images, least recently used first (ACTIONCACHEFULL=EVICT)."""

    names: tuple[str, ...]

    @property
    def expects(self) -> tuple[type[Event], ...]:
        return (CacheInspected,)


@dataclass(frozen=True)
class DeleteCachedCopy(Command):
    """Delete a cached image file with its sidecars (``.sum``, ``.full.sum``, ``.torrent``…)."""

    name: str
    reason: str


@dataclass(frozen=True)
class FetchToCache(Command):
    """Bring the image from the repository into the cache with ``transport``.

    ``resume`` means a partial copy of the same version is present and may be continued.
    ``keeps_bf`` (strict only, deviation row 2): a leftover ``<img>.torrent.bf`` stays beside
    the new copy, which therefore still counts as an interrupted download afterwards.
    ``size``: the bytes the transfer must add to the cache as the core counted them (the whole
    image, less a resumable copy's bytes, less the chunks of a chunked image the cache holds);
    a chunked image's transfer moves only the chunks the cache lacks, whatever it is told.
    """

    image: Image
    transport: Transport
    multicast: MulticastSession | None = None
    torrent: TorrentSession | None = None
    resume: bool = False
    keeps_bf: bool = False
    size: int = 0

    @property
    def expects(self) -> tuple[type[Event], ...]:
        return (TransferFinished, TransferFailed)


@dataclass(frozen=True)
class RestorePartition(Command):
    """Decompress the image into ``disk:partition`` reading from ``source`` via ``transport``."""

    image: Image
    source: Source
    transport: Transport
    disk: int
    partition: int
    multicast: MulticastSession | None = None
    change_filesystem: bool = False

    @property
    def expects(self) -> tuple[type[Event], ...]:
        return (RestoreFinished, RestoreFailed)


@dataclass(frozen=True)
class ConfigureOs(Command):
    """Post-configure the restored system (hostname, fstab, boot loader…)."""

    disk: int
    partition: int
    image: Image

    @property
    def expects(self) -> tuple[type[Event], ...]:
        return (PostconfFinished, PostconfFailed)


@dataclass(frozen=True)
class Finish(Command):
    """The operation is over; ``code`` 0 means success.  Always the last command."""

    code: OgErr
    message: str
    method_used: Method | None = None
    reasons: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.code == OgErr.OK


RESTORE_STAGES = ("inspect", "cache", "fetch", "restore", "postconf")
"""The stages of a restore as the console's tracking log and the live views show them, in the
order they happen."""

STAGE_OF: dict[type[Command], str] = {
    InspectTarget: "inspect",
    InspectImage: "inspect",
    InspectCache: "inspect",
    FormatCache: "cache",
    EmptyCache: "cache",
    EvictFromCache: "cache",
    FetchToCache: "fetch",
    RestorePartition: "restore",
    ConfigureOs: "postconf",
}
"""The stage each restore command belongs to (commands not listed keep the current stage)."""


@dataclass(frozen=True)
class InspectStore(Command):
    """Look at where a new image goes (REPO share or CACHE): writable, free space, old backup."""

    target: Source
    name: str

    @property
    def expects(self) -> tuple[type[Event], ...]:
        return (StoreInspected,)


@dataclass(frozen=True)
class CheckFilesystem(Command):
    """fsck the source partition (unmounted)."""

    disk: int
    partition: int

    @property
    def expects(self) -> tuple[type[Event], ...]:
        return (StepFinished, StepFailed)


@dataclass(frozen=True)
class ReduceFilesystem(Command):
    """Shrink the source filesystem to its minimum before imaging (IMGREDUCE)."""

    disk: int
    partition: int

    @property
    def expects(self) -> tuple[type[Event], ...]:
        return (StepFinished, StepFailed)


@dataclass(frozen=True)
class ExtendFilesystem(Command):
    """Grow the filesystem back to fill its partition."""

    disk: int
    partition: int

    @property
    def expects(self) -> tuple[type[Event], ...]:
        return (StepFinished, StepFailed)


@dataclass(frozen=True)
class DropBackup(Command):
    """Delete the previous version's ``.ant`` files to make room (they count as free space)."""

    target: Source
    name: str


@dataclass(frozen=True)
class PublishImage(Command):
    """Make the staged image current: the old version becomes ``.ant``, rolled back on failure."""

    target: Source
    name: str

    @property
    def expects(self) -> tuple[type[Event], ...]:
        return (StepFinished, StepFailed)


@dataclass(frozen=True)
class DiscardStaged(Command):
    """Delete a staged (unpublished) image; the current version is untouched."""

    target: Source
    name: str


@dataclass(frozen=True)
class WriteImage(Command):
    """Clone the partition into a *staged* ``<name>.img`` (beside the current one, under ``.lock``)."""

    target: Source
    name: str
    disk: int
    partition: int
    tool: CloneTool
    compressor: Compressor
    filesystem: Filesystem

    @property
    def expects(self) -> tuple[type[Event], ...]:
        return (StepFinished, StepFailed)


@dataclass(frozen=True)
class WriteSidecars(Command):
    """Write the staged ``.info`` (``TOOL:COMP:FS:SIZEKB:host``), ``.sum`` and ``.full.sum``."""

    target: Source
    name: str
    info: str
