"""The sans-I/O createImage session.

Sequence (OpenGnSys ``createImage``, with the rollback it lacks)::

    InspectTarget → InspectStore → space check (used × 0.65 < free + old backup, else 16)
    → CheckFilesystem (3) → [ReduceFilesystem (17)] → RotateBackup → WriteImage
        ├─ ok     → WriteSidecars → [ExtendFilesystem (18)] → Finish 0
        └─ failed → RestoreBackup → [ExtendFilesystem] → Finish 5 (previous image kept)

No I/O: the runtime executes the commands.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ogref.core.events import (
    CheckFilesystem,
    Command,
    Event,
    ExtendFilesystem,
    InspectStore,
    InspectTarget,
    Log,
    ReduceFilesystem,
    RestoreBackup,
    RotateBackup,
    Source,
    StepFailed,
    StepFinished,
    StoreInspected,
    TargetInspected,
    WriteImage,
    WriteSidecars,
)
from ogref.core.machine import Machine
from ogref.errors import FormatError, OgErr
from ogref.model.image import ImageInfo, validate_image_name
from ogref.model.policy import EngineConfig
from ogref.model.storage import Filesystem
from ogref.units import format_size

# OpenGnSys estimates the compressed image at 65 % of the used data (ogGetSizeParameters)
SPACE_FACTOR = 0.65


@dataclass(frozen=True)
class CreateRequest:
    """createImage ``disk part REPO|CACHE /name`` on the host ``hostname``."""

    disk: int
    partition: int
    target: Source
    name: str
    hostname: str = "pc"

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
        self._fs = Filesystem.EMPTY
        self._used = 0
        self._reduced = False
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
            (CreateState.EXTEND, StepFinished): self._on_extended,
            (CreateState.EXTEND, StepFailed): self._on_extend_failed,
        }

    def start(self) -> list[Command]:
        """The first commands."""
        r = self.request
        self.state = CreateState.TARGET
        return [
            Log(f"[createImage] {r.disk} {r.partition} {r.target} /{r.name}"),
            InspectTarget(r.disk, r.partition),
        ]

    def _on_target(self, ev: Event) -> list[Command]:
        assert isinstance(ev, TargetInspected)
        r = self.request
        if not ev.exists:
            return self._finish(OgErr.PARTITION, f"partition {r.disk}:{r.partition} does not exist")
        if ev.locked:
            return self._finish(OgErr.LOCKED, f"partition {r.disk}:{r.partition} is locked")
        if ev.filesystem in (Filesystem.EMPTY, Filesystem.CACHE, Filesystem.SWAP):
            return self._finish(
                OgErr.FILESYS, f"partition {r.disk}:{r.partition} holds no filesystem to image"
            )
        self._fs, self._used = ev.filesystem, ev.used
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
        required = int(self._used * SPACE_FACTOR)
        available = ev.free + ev.backup_size
        if required >= available:
            return self._finish(
                OgErr.CACHESIZE,
                f"not enough space in {r.target}: need about {format_size(required)}, "
                f"{format_size(available)} available",
            )
        self.state = CreateState.FSCK
        return [CheckFilesystem(r.disk, r.partition)]

    def _on_fsck_ok(self, ev: Event) -> list[Command]:
        r = self.request
        if self.policy.img_reduce and self._fs.shrinkable:
            self.state = CreateState.REDUCE
            return [ReduceFilesystem(r.disk, r.partition)]
        return self._write()

    def _on_fsck_failed(self, ev: Event) -> list[Command]:
        assert isinstance(ev, StepFailed)
        return self._finish(OgErr.PARTITION, f"filesystem check failed: {ev.detail}")

    def _on_reduced(self, ev: Event) -> list[Command]:
        self._reduced = True
        return self._write()

    def _on_reduce_failed(self, ev: Event) -> list[Command]:
        assert isinstance(ev, StepFailed)
        return self._finish(OgErr.REDUCEFS, f"could not shrink the filesystem: {ev.detail}")

    def _write(self) -> list[Command]:
        r = self.request
        self.state = CreateState.WRITE
        return [
            RotateBackup(r.target, r.name),
            WriteImage(
                r.target,
                r.name,
                r.disk,
                r.partition,
                self.policy.img_prog,
                self.policy.img_comp,
                self._fs,
            ),
        ]

    def _on_written(self, ev: Event) -> list[Command]:
        r = self.request
        info = ImageInfo(
            self.policy.img_prog, self.policy.img_comp, self._fs, -(-self._used // 1024), r.hostname
        )
        cmds: list[Command] = [WriteSidecars(r.target, r.name, str(info))]
        return cmds + self._extend_or_finish()

    def _on_write_failed(self, ev: Event) -> list[Command]:
        assert isinstance(ev, StepFailed)
        r = self.request
        self._failure = (
            OgErr.IMAGE,
            f"creating {r.name} failed ({ev.detail}); previous version kept",
        )
        return [RestoreBackup(r.target, r.name), *self._extend_or_finish()]

    def _extend_or_finish(self) -> list[Command]:
        r = self.request
        if self._reduced:
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
            OgErr.EXTENDFS, f"image created, but growing the filesystem back failed: {ev.detail}"
        )
