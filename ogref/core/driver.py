"""Driving a session: the synchronous loop and the model oracle.

``drive(session, answer)`` runs a session to its end, asking ``answer`` for the event that
follows each command that expects one.  ``ModelOracle`` answers from the domain model alone
(the computer's disks and cache, the repository's images), assuming every transfer and restore
succeeds — except a copy into a cache without room for it, which only a strict (1.1.1d)
session asks for; it is what the console planner uses, and the simulator reuses its state
changes (cache contents after FORMAT, fetch…) while adding time.  No I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ogref.core.events import (
    CacheInspected,
    CheckFilesystem,
    Command,
    ConfigureOs,
    DeleteCachedCopy,
    EmptyCache,
    Event,
    EvictFromCache,
    ExtendFilesystem,
    FailureKind,
    FetchToCache,
    Finish,
    FormatCache,
    ImageInspected,
    InspectCache,
    InspectImage,
    InspectStore,
    InspectTarget,
    PostconfFinished,
    PublishImage,
    ReduceFilesystem,
    RestoreFinished,
    RestorePartition,
    Source,
    StepFinished,
    StoreInspected,
    TargetInspected,
    TransferFailed,
    TransferFinished,
    WriteImage,
)
from ogref.core.machine import Machine
from ogref.model import Cache, CachedImage, Computer, Image, Repository

Answer = Callable[[Command], Event | None]


def drive(session: Machine, answer: Answer, limit: int = 1000) -> list[Command]:
    """Run ``session`` to completion; return every command it emitted, in order."""
    emitted: list[Command] = []
    pending = session.start()
    steps = 0
    while pending:
        cmd = pending.pop(0)
        emitted.append(cmd)
        event = answer(cmd)
        if cmd.expects:
            if event is None or not isinstance(event, cmd.expects):
                raise RuntimeError(f"driver answered {event!r} to {cmd!r}")
            pending = [*session.handle(event), *pending]
        steps += 1
        if steps > limit:
            raise RuntimeError("session did not finish (driver loop limit)")
    if not session.finished:
        raise RuntimeError("session stopped without Finish")
    return emitted


@dataclass
class ModelOracle:
    """Answers a session's commands from the model; mutates its own copy of the cache.

    Attributes:
        computer: the client.
        repository: its repository.
        cache: the client's cache as it evolves (starts as ``computer.cache``).
        master_images: images a MASTER offers (partition clones, its cached images).
        clock: value stored as ``last_used`` on cached images (callers may advance it).
    """

    computer: Computer
    repository: Repository
    cache: Cache | None = None
    master_images: dict[str, Image] = field(default_factory=dict)
    clock: float = 0.0
    _image: Image | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.cache is None:
            self.cache = self.computer.cache

    def __call__(self, cmd: Command) -> Event | None:
        return self.answer(cmd)

    def answer(self, cmd: Command) -> Event | None:
        """The event that follows ``cmd`` when everything works."""
        if isinstance(cmd, InspectTarget):
            part = self.computer.disks.partition(cmd.disk, cmd.partition)
            if part is None:
                return TargetInspected(exists=False)
            return TargetInspected(True, part.size, part.filesystem, False, part.used)
        if isinstance(cmd, InspectImage):
            return self._inspect_image(cmd)
        if isinstance(cmd, InspectCache):
            return self._cache_event()
        if isinstance(cmd, FormatCache):
            assert self.cache is not None
            self.cache = Cache(self.cache.size, (), 0, self.cache.disk, self.cache.partition)
            return self._cache_event()
        if isinstance(cmd, EmptyCache):
            assert self.cache is not None
            self.cache = self.cache.emptied()
            return self._cache_event()
        if isinstance(cmd, EvictFromCache):
            assert self.cache is not None
            self.cache = self.cache.without(*cmd.names)
            return self._cache_event()
        if isinstance(cmd, DeleteCachedCopy):
            if self.cache is not None:
                self.cache = self.cache.without(cmd.name)
            return None
        if isinstance(cmd, FetchToCache) and cmd.image.chunked:
            return self._fetch_chunks(cmd)
        if isinstance(cmd, FetchToCache):
            assert self.cache is not None
            others = self.cache.without(cmd.image.name)
            if cmd.image.stored_size > others.free:
                # the copy runs out of space (1.1.1d does not re-check after FORMAT/DELETE)
                self.cache = others
                return TransferFailed(FailureKind.RECEIVE, "no space left in the CACHE")
            self.cache = others.with_image(
                CachedImage(
                    cmd.image.name,
                    cmd.image.stored_size,
                    cmd.image.checksum,
                    not cmd.keeps_bf,  # a kept .torrent.bf still marks it interrupted
                    self.clock,
                )
            )
            return TransferFinished(cmd.image.checksum, cmd.image.stored_size)
        if isinstance(cmd, RestorePartition):
            return RestoreFinished(cmd.image.data_size)
        if isinstance(cmd, ConfigureOs):
            return PostconfFinished()
        if isinstance(cmd, Finish) or not cmd.expects:
            return None
        raise NotImplementedError(f"the model oracle cannot answer {cmd!r}")

    def _cache_event(self) -> CacheInspected:
        image = self._image
        present = chunks_present(self.cache, image) if self.cache and image else 0
        return CacheInspected(self.cache, present)

    def _fetch_chunks(self, cmd: FetchToCache) -> Event:
        """A chunked image's update: only its missing chunks come; the old version of the same
        name goes once the new one is complete; chunks shared with another cached image (its
        base) become shared bytes of the cache."""
        assert self.cache is not None
        image = cmd.image
        present = chunks_present(self.cache, image)
        need = image.stored_size - present
        if max(need, cmd.size) > self.cache.free:  # (a TORRENT's pack comes whole)
            return TransferFailed(FailureKind.RECEIVE, "no space left in the CACHE")
        cache = self.cache.without(image.name)
        base = cache.get(image.base) if image.base else None
        if base is not None and present:
            moved = min(present, base.size)
            cache = replace(
                cache.with_image(replace(base, size=base.size - moved)),
                shared=cache.shared + moved,
            )
        own = need if base is not None and present else image.stored_size
        self.cache = cache.with_image(
            CachedImage(image.name, own, image.checksum, True, self.clock, chunked=True)
        )
        return TransferFinished(image.checksum, need)

    def _inspect_image(self, cmd: InspectImage) -> ImageInspected:
        found = self._inspect_image_at(cmd)
        if found.image is not None and cmd.source is Source.REPO:
            self._image = found.image
        return found

    def _inspect_image_at(self, cmd: InspectImage) -> ImageInspected:
        if cmd.source is Source.MASTER:
            img = self.master_images.get(cmd.name)
            return ImageInspected(found=img is not None, image=img)
        if cmd.source is Source.CACHE:
            cached = self.cache.get(cmd.name) if self.cache else None
            if cached is None or not cached.complete:
                return ImageInspected(found=False)
            if self.repository.has(cmd.name):
                return ImageInspected(True, image=self.repository.image(cmd.name))
            return ImageInspected(found=False)
        if not self.repository.has(cmd.name):
            return ImageInspected(found=False)
        return ImageInspected(True, image=self.repository.image(cmd.name))


def chunks_present(cache: Cache | None, image: Image) -> int:
    """The model's account of a chunked image's bytes a CACHE already holds: all of them when
    the cache holds this version, all but its ``added_size`` when it holds its base (or an older
    version of the same name), none otherwise (an ``.img``: 0)."""
    if cache is None or not image.chunked:
        return 0
    cached = cache.get(image.name)
    if cached is not None and cached.chunked and cached.checksum == image.checksum:
        return image.stored_size if cached.complete else cached.size
    base = cache.get(image.base) if image.base else None
    if (base is not None and base.chunked and base.complete) or (
        cached is not None and cached.chunked and cached.complete and image.added_size
    ):
        return image.stored_size - image.added_size
    return 0


@dataclass
class CreateOracle:
    """Answers a create session's commands from the model, every step succeeding.

    The repository is taken as writable with ``repo_free`` bytes free; a CACHE target uses the
    computer's cache.  ``ratio`` is the assumed compressed/used size.
    """

    computer: Computer
    repo_free: int = 1 << 50
    ratio: float = 0.5

    def __call__(self, cmd: Command) -> Event | None:
        return self.answer(cmd)

    def answer(self, cmd: Command) -> Event | None:
        """The event that follows ``cmd`` when everything works."""
        if isinstance(cmd, InspectTarget):
            part = self.computer.disks.partition(cmd.disk, cmd.partition)
            if part is None:
                return TargetInspected(exists=False)
            self._used = part.used or part.size // 2
            return TargetInspected(True, part.size, part.filesystem, False, self._used)
        if isinstance(cmd, InspectStore):
            if cmd.target is Source.CACHE:
                cache = self.computer.cache
                return StoreInspected(cache is not None, True, cache.free if cache else 0)
            return StoreInspected(True, True, self.repo_free)
        if isinstance(cmd, WriteImage):
            return StepFinished(int(self._used * self.ratio), "", self._used)
        if isinstance(cmd, CheckFilesystem | ReduceFilesystem | PublishImage | ExtendFilesystem):
            return StepFinished()
        return None

    _used: int = 0
