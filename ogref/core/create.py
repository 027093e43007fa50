"""The sans-I/O createImage session.

Sequence (OpenGnSys ``createImage``, with the new version staged so a failure loses nothing)::

    InspectTarget (3, 4, 20) → InspectStore (15/23, 14, 4)
    → space: used × 0.65 < free (else DropBackup if the old .ant makes room, else 16)
    → CheckFilesystem (3) → [ReduceFilesystem (17)] → WriteImage (staged)
        ├─ ok     → WriteSidecars → PublishImage (.img → .ant, staged → .img) → [Extend (18)] → 0
        └─ failed → DiscardStaged → [ExtendFilesystem] → 16 if it filled up, else 5
    (a failed PublishImage is rolled back by the driver: previous version current → 5)

OpenGnSys moves the old image to ``.ant`` *before* writing and never puts it back.  No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ogref.core.events import (
    CheckFilesystem,
    Command,
    DiscardStaged,
    DropBackup,
    Event,
    ExtendFilesystem,
    InspectStore,
    InspectTarget,
    Log,
    PublishImage,
    ReduceFilesystem,
    Source,
    StepFailed,
    StepFinished,
    StoreInspected,
    TargetInspected,
    WriteImage,
    WriteSidecars,
)
from ogref.core.machine import Machine, ProtocolViolationError
from ogref.errors import FormatError, OgErr
from ogref.model.image import ImageInfo, validate_image_name
from ogref.model.policy import EngineConfig
from ogref.model.storage import Filesystem
from ogref.units import format_size

# OpenGnSys estimates the compressed image at 65 % of the used data (ogGetSizeParameters)
SPACE_FACTOR = 0.65


@dataclass(frozen=True)
class CreateRequest:
    """createImage ``disk part REPO|CACHE /name`` on the host ``hostname``.

    ``reduce`` overrides engine.cfg's IMGREDUCE when given.
    """

    disk: int
    partition: int
    target: Source
    name: str
    hostname: str = "pc"
    reduce: bool | None = None

    def __post_init__(self) -> None:
        validate_image_name(self.name)
        if self.target not in (Source.REPO, Source.CACHE):
            raise FormatError("an image is created in REPO or CACHE")


class CreateState(StrEnum):
    """Where the create session is."""

    IDLE = "idle"
    TARGET = "target"
    STORE = "store"
    FSCK = "fsck"
    REDUCE = "reduce"
    WRITE = "write"
    PUBLISH = "publish"
    EXTEND = "extend"
    DONE = "done"


class CreateSession(Machine):
    """Drives one createImage."""

    done_state = CreateState.DONE

    def __init__(self, request: CreateRequest, policy: EngineConfig) -> None:
        super().__init__()
        self.request = request
        self.policy = policy
        self.state = CreateState.IDLE
        self.fs = Filesystem.EMPTY
        self.used = 0
        self.reduced = False
        self.written: StepFinished | None = None
        self._failure: tuple[OgErr, str] | None = None
        self._handlers = {
            (CreateState.TARGET, TargetInspected): self._on_target,
            (CreateState.STORE, StoreInspected): self._on_store,
            (CreateState.FSCK, StepFinished): self._on_fsck_ok,
            (CreateState.FSCK, StepFailed): self._on_fsck_failed,
            (CreateState.REDUCE, StepFinished): self._on_reduced,
            (CreateState.REDUCE, StepFailed): self._on_reduce_failed,
            (CreateState.WRITE, StepFinished): self._on_written,
            (CreateState.WRITE, StepFailed): self._on_write_failed,
            (CreateState.PUBLISH, StepFinished): self._on_published,
            (CreateState.PUBLISH, StepFailed): self._on_publish_failed,
            (CreateState.EXTEND, StepFinished): self._on_extended,
            (CreateState.EXTEND, StepFailed): self._on_extend_failed,
        }

    def start(self) -> list[Command]:
        """The first commands."""
        if self.state is not CreateState.IDLE:
            raise ProtocolViolationError("session already started")
        r = self.request
        self.state = CreateState.TARGET
        return [
            Log(f"[createImage] {r.disk} {r.partition} {r.target} /{r.name}"),
            InspectTarget(r.disk, r.partition),
        ]

    @property
    def info(self) -> ImageInfo | None:
        """The metadata string of the written image (after WriteImage succeeded)."""
        if self.written is None:
            return None
        size = self.written.data_size or self.used
        return ImageInfo(
            self.policy.img_prog,
            self.policy.img_comp,
            self.fs,
            -(-size // 1024),
            self.request.hostname,
        )

    def _on_target(self, ev: Event) -> list[Command]:
        assert isinstance(ev, TargetInspected)
        r = self.request
        where = f"partition {r.disk}:{r.partition}"
        if not ev.exists:
            return self._finish(OgErr.PARTITION, f"{where} does not exist")
        if ev.locked:
            return self._finish(OgErr.LOCKED, f"{where} is locked")
        if ev.filesystem in (Filesystem.EMPTY, Filesystem.CACHE, Filesystem.SWAP):
            return self._finish(OgErr.FILESYS, f"{where} holds no filesystem that can be imaged")
        self.fs, self.used = ev.filesystem, ev.used
        self.state = CreateState.STORE
        return [InspectStore(r.target, r.name)]

    def _on_store(self, ev: Event) -> list[Command]:
        assert isinstance(ev, StoreInspected)
        r = self.request
        if not ev.present:
            code = OgErr.NOTCACHE if r.target is Source.CACHE else OgErr.REPO
            return self._finish(code, f"no {r.target} to write the image to")
        if not ev.writable:
            return self._finish(OgErr.NOTWRITE, f"{r.target} is not writable")
        if ev.image_locked:
            return self._finish(OgErr.LOCKED, f"image {r.name} is locked")
        required = int(self.used * SPACE_FACTOR)
        cmds: list[Command] = []
        if required >= ev.free + ev.backup_size:
            return self._finish(
                OgErr.CACHESIZE,
                f"not enough space in {r.target} for {r.name}: needs about "
                f"{format_size(required)}, {format_size(ev.free + ev.backup_size)} available",
            )
        if required >= ev.free:
            cmds += [
                Log("the previous backup (.ant) is dropped to make room"),
                DropBackup(r.target, r.name),
            ]
        self.state = CreateState.FSCK
        return [*cmds, CheckFilesystem(r.disk, r.partition)]

    def _on_fsck_ok(self, ev: Event) -> list[Command]:
        r = self.request
        reduce = self.policy.img_reduce if r.reduce is None else r.reduce
        if reduce and self.fs.shrinkable:
            self.state = CreateState.REDUCE
            return [ReduceFilesystem(r.disk, r.partition)]
        return self._write()

    def _on_fsck_failed(self, ev: Event) -> list[Command]:
        assert isinstance(ev, StepFailed)
        return self._finish(OgErr.PARTITION, f"filesystem check failed: {ev.detail}")

    def _on_reduced(self, ev: Event) -> list[Command]:
        self.reduced = True
        return self._write()

    def _on_reduce_failed(self, ev: Event) -> list[Command]:
        assert isinstance(ev, StepFailed)
        return self._finish(OgErr.REDUCEFS, f"could not shrink the filesystem: {ev.detail}")

    def _write(self) -> list[Command]:
        r = self.request
        self.state = CreateState.WRITE
        return [
            WriteImage(
                r.target,
                r.name,
                r.disk,
                r.partition,
                self.policy.img_prog,
                self.policy.img_comp,
                self.fs,
            ),
        ]

    def _on_written(self, ev: Event) -> list[Command]:
        assert isinstance(ev, StepFinished)
        r = self.request
        self.written = ev
        info = self.info
        assert info is not None
        self.state = CreateState.PUBLISH
        return [WriteSidecars(r.target, r.name, str(info)), PublishImage(r.target, r.name)]

    def _on_write_failed(self, ev: Event) -> list[Command]:
        assert isinstance(ev, StepFailed)
        r = self.request
        if ev.no_space:
            self._failure = (
                OgErr.CACHESIZE,
                f"{r.target} filled up while writing {r.name}; previous version kept",
            )
        else:
            self._failure = (
                OgErr.IMAGE,
                f"creating {r.name} failed ({ev.detail}); previous version kept",
            )
        return [DiscardStaged(r.target, r.name), *self._extend_or_finish()]

    def _on_published(self, ev: Event) -> list[Command]:
        return self._extend_or_finish()

    def _on_publish_failed(self, ev: Event) -> list[Command]:
        assert isinstance(ev, StepFailed)
        r = self.request
        self._failure = (
            OgErr.IMAGE,
            f"could not make {r.name} current ({ev.detail}); previous version kept",
        )
        return [DiscardStaged(r.target, r.name), *self._extend_or_finish()]

    def _extend_or_finish(self) -> list[Command]:
        r = self.request
        if self.reduced:
            self.state = CreateState.EXTEND
            return [ExtendFilesystem(r.disk, r.partition)]
        return self._done()

    def _done(self) -> list[Command]:
        if self._failure:
            return self._finish(*self._failure)
        return self._finish(OgErr.OK, f"image {self.request.name} created")

    def _on_extended(self, ev: Event) -> list[Command]:
        return self._done()

    def _on_extend_failed(self, ev: Event) -> list[Command]:
        assert isinstance(ev, StepFailed)
        if self._failure:
            return self._done()
        return self._finish(
            OgErr.EXTENDFS,
            f"image created, but growing the filesystem back failed: {ev.detail}",
        )
