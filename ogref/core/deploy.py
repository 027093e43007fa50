"""The sans-I/O deploy session: deployImage, the Deploy wizard, updateCache and restoreImage.

One state machine serves the four operations.  It receives events (``TargetInspected``,
``CacheInspected``, ``TransferFinished``…) and returns commands (``FetchToCache``,
``RestorePartition``, ``Finish``…).  Every rule comes from the tables in :mod:`ogref.core.table`;
this module only sequences them.  It performs no I/O and never sleeps.

Under ``STRICT`` (``policy.strict``) the same session reproduces OpenGnSys 1.1.1d's decisions bug
for bug (``docs/deviations.md``): the tables' strict rows apply, and the few checks that 1.1.1d
makes elsewhere or not at all (size at restore time, filesystem never, configureOs ignored)
follow it.  Each such decision is announced by a :class:`Defect` before it is carried out.

Flow (Restore command, CACHE method)::

    InspectTarget → InspectImage(REPO) → InspectCache ─┬─ admission row ─→ FetchToCache → verify ─┐
                                                       └─ 15/16 → fallback row → DIRECT ──────────┤
                                                                        RestorePartition ←────────┘
                                                                        → ConfigureOs → Finish
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ogref.core import table
from ogref.core.events import (
    CacheInspected,
    Command,
    ConfigureOs,
    Defect,
    DeleteCachedCopy,
    EmptyCache,
    Event,
    EvictFromCache,
    FetchToCache,
    FormatCache,
    ImageInspected,
    InspectCache,
    InspectImage,
    InspectTarget,
    Log,
    MethodSwitched,
    PostconfFailed,
    PostconfFinished,
    RestoreFailed,
    RestoreFinished,
    RestorePartition,
    Source,
    TargetInspected,
    TransferFailed,
    TransferFinished,
)
from ogref.core.machine import Machine, ProtocolViolationError
from ogref.errors import FormatError, OgErr
from ogref.model.image import Image, validate_image_name
from ogref.model.method import Method, Staging, Transport
from ogref.model.policy import EngineConfig
from ogref.model.protocol import MulticastSession, TorrentSession
from ogref.model.storage import Cache, Filesystem
from ogref.units import format_size


class Operation(StrEnum):
    """What was asked.  Only the console's Restore command switches methods automatically."""

    RESTORE_COMMAND = "restore"  # console "Restaurar" = deployImage
    DEPLOY_WIZARD = "deploy-wizard"  # Asistente Deploy: updateCache + restore, no switch
    UPDATE_CACHE = "update-cache"  # updateCache only (wizard phase 1), no switch
    RESTORE_IMAGE = "restore-image"  # restoreImage REPO|CACHE: no cache logic at all

    @property
    def restores(self) -> bool:
        return self is not Operation.UPDATE_CACHE

    @property
    def may_switch(self) -> bool:
        return self is Operation.RESTORE_COMMAND

    @property
    def runs_deploy_image(self) -> bool:
        """deployImage runs (the console's Restore, the Deploy wizard): in 1.1.1d it reports any
        restoreImage failure as 5."""
        return self in (Operation.RESTORE_COMMAND, Operation.DEPLOY_WIZARD)


@dataclass(frozen=True)
class DeployRequest:
    """One client's operation.

    Attributes:
        operation: which of the four operations.
        image: image name (repository-relative, without ``.img``).
        method: the requested method (for RESTORE_IMAGE only its transport matters).
        disk, partition: the target (ignored by UPDATE_CACHE).
        source: REPO, or CACHE for ``restoreImage CACHE …`` and ``deployImage CACHE …`` (which
            restores from the cache whatever the protocol, then runs configureOs).
        multicast: server session (required for MULTICAST methods read from REPO).
        torrent: ``mode:time`` session; None when none was given (``deployImage … TORRENT``
            alone): ogLab then uses the console's ``peer:60``, 1.1.1d fails (deviation 24).
        allow_fs_change: restore over a partition of another filesystem.
        postconf: run configureOs after a restore.
    """

    operation: Operation
    image: str
    method: Method
    disk: int = 1
    partition: int = 1
    source: Source = Source.REPO
    multicast: MulticastSession | None = None
    torrent: TorrentSession | None = None
    allow_fs_change: bool = False
    postconf: bool = True

    def __post_init__(self) -> None:
        validate_image_name(self.image)
        deploy_from_cache = (
            self.source is Source.CACHE and self.operation is Operation.RESTORE_COMMAND
        )
        if (
            self.method.transport is Transport.MULTICAST
            and self.multicast is None
            and not deploy_from_cache  # deployImage CACHE ignores the protocol and its options
        ):
            raise FormatError(f"{self.method} needs a multicast session string")
        wizard = self.operation in (Operation.DEPLOY_WIZARD, Operation.UPDATE_CACHE)
        if wizard and self.method.staging is Staging.DIRECT:
            raise FormatError(f"{self.operation} always goes through the CACHE, not {self.method}")
        if self.operation is Operation.RESTORE_IMAGE and self.method.transport is Transport.TORRENT:
            raise FormatError(
                "restore-image accepts UNICAST or MULTICAST only (torrent needs updateCache)"
            )
        if self.source is Source.CACHE and self.operation not in (
            Operation.RESTORE_IMAGE,
            Operation.RESTORE_COMMAND,
        ):
            raise FormatError("only restoreImage and deployImage read from CACHE directly")
        if self.operation.restores and (self.disk < 1 or self.partition < 1):
            raise FormatError(f"bad target disk {self.disk} partition {self.partition}")


class State(StrEnum):
    """Where the session is."""

    IDLE = "idle"
    TARGET = "target"
    IMAGE = "image"
    CACHE = "cache"
    FREEING = "freeing"
    TRANSFER = "transfer"
    RESTORE = "restore"
    POSTCONF = "postconf"
    DONE = "done"


class DeploySession(Machine):
    """Drives one client's deploy/restore/updateCache through the decision tables."""

    done_state = State.DONE

    def __init__(self, request: DeployRequest, policy: EngineConfig) -> None:
        super().__init__()
        self.request = request
        self.policy = policy
        self.state = State.IDLE
        self.method_used: Method = request.method
        self.image: Image | None = None
        self.switches: list[MethodSwitched] = []
        self.trace: list[str] = []  # ids of the table rows that decided, in order
        self._target_fs = Filesystem.EMPTY
        self._target = TargetInspected(exists=False)
        self._restore_transport = request.method.transport
        self._freed = False
        self.strict = policy.strict
        self._fit_deferred = ""  # strict: the size check 1.1.1d makes only when restoring
        self._bf_kept = False  # strict: a leftover .torrent.bf stays beside the new copy
        self._present = 0  # of a chunked image: bytes of its chunks the CACHE already holds
        self._handlers = {
            (State.TARGET, TargetInspected): self._on_target,
            (State.IMAGE, ImageInspected): self._on_image,
            (State.CACHE, CacheInspected): self._on_cache,
            (State.FREEING, CacheInspected): self._on_cache,
            (State.TRANSFER, TransferFinished): self._on_transfer_finished,
            (State.TRANSFER, TransferFailed): self._on_transfer_failed,
            (State.RESTORE, RestoreFinished): self._on_restore_finished,
            (State.RESTORE, RestoreFailed): self._on_restore_failed,
            (State.POSTCONF, PostconfFinished): self._on_postconf_finished,
            (State.POSTCONF, PostconfFailed): self._on_postconf_failed,
        }

    # ------------------------------------------------------------------ public

    def start(self) -> list[Command]:
        """The first commands."""
        if self.state is not State.IDLE:
            raise ProtocolViolationError("session already started")
        r = self.request
        head = Log(
            f"[{r.operation}] {r.source if r.source is Source.CACHE else 'REPO'} "
            f"/{r.image} {r.disk} {r.partition} {r.method}"
        )
        if r.operation.restores:
            self.state = State.TARGET
            return [head, InspectTarget(r.disk, r.partition)]
        self.state = State.IMAGE
        return [head, InspectImage(r.image, Source.REPO)]

    # ------------------------------------------------------------------ steps

    def _method_used(self) -> Method | None:
        return self.method_used

    def _on_target(self, ev: Event) -> list[Command]:
        assert isinstance(ev, TargetInspected)
        r = self.request
        if not ev.exists:
            return self._finish(OgErr.PARTITION, f"partition {r.disk}:{r.partition} does not exist")
        if ev.locked:
            return self._finish(OgErr.LOCKED, f"partition {r.disk}:{r.partition} is locked")
        self._target = ev
        self.state = State.IMAGE
        return [InspectImage(r.image, r.source)]

    def _defect(self, row: int, what: str) -> Defect:
        return Defect(f"OpenGnSys 1.1.1d (deviation {row}): {what}", row=row)

    def _on_image(self, ev: Event) -> list[Command]:
        assert isinstance(ev, ImageInspected)
        r = self.request
        where = "CACHE" if r.source is Source.CACHE else "the repository"
        detail = f" ({ev.detail})" if ev.detail else ""
        if not ev.found:
            return self._finish(OgErr.NOTFOUND, f"image {r.image} not found in {where}")
        if not ev.readable:
            return self._finish(
                OgErr.IMAGEFILE, f"image {r.image}: header unreadable or corrupt{detail}"
            )
        if ev.image is None:
            return self._finish(
                OgErr.GENERIC, f"image {r.image}: its information cannot be read{detail}"
            )
        if ev.image.chunked:
            self.strict = False  # 1.1.1d has no chunked images: nothing of its to reproduce
        if ev.locked:
            return self._locked_image()
        self.image = ev.image
        pre: list[Command] = []
        if r.operation.restores:
            pre, stopped = self._check_fit(ev.image)
            if stopped:
                return pre
        if r.source is Source.CACHE:
            return [*pre, *self._restore(Source.CACHE, Transport.UNICAST)]
        if r.operation is Operation.RESTORE_IMAGE:
            return [*pre, *self._restore(r.source, r.method.transport)]
        if r.method.staging is Staging.DIRECT:
            return [*pre, *self._restore(Source.REPO, r.method.transport)]
        self.state = State.CACHE
        return [*pre, InspectCache()]

    def _locked_image(self) -> list[Command]:
        r = self.request
        msg = f"image {r.image} is locked (being created)"
        read_by_restore = r.source is Source.CACHE or r.method.staging is Staging.DIRECT
        if self.strict and r.operation.runs_deploy_image and read_by_restore:
            # 1.1.1d: restoreImage refuses it (4) and deployImage reports any failure as 5
            return [
                self._defect(23, "restoreImage refuses the locked image (4), deployImage says 5"),
                *self._finish(OgErr.IMAGE, f"{msg}: restoreImage failed (4)"),
            ]
        return self._finish(OgErr.LOCKED, msg)

    def _check_fit(self, image: Image) -> tuple[list[Command], bool]:
        """The size and filesystem checks: (commands, whether the session stopped)."""
        r, target = self.request, self._target
        out: list[Command] = []
        if image.data_size > target.size:
            msg = (
                f"image data ({format_size(image.data_size)}) does not fit partition "
                f"{r.disk}:{r.partition} ({format_size(target.size)})"
            )
            if not (self.strict and r.operation.runs_deploy_image):
                return self._finish(OgErr.IMGSIZEPARTITION, msg), True
            # 1.1.1d checks the size only in restoreImage, after any updateCache
            self._fit_deferred = msg
            if r.source is Source.REPO and r.method.staging is Staging.CACHE:
                out.append(
                    self._defect(
                        10,
                        f"{msg}, but the size is checked only when restoring: the cache is "
                        "updated first",
                    )
                )
        fs_differs = target.filesystem not in (Filesystem.EMPTY, image.filesystem)
        if fs_differs and not r.allow_fs_change:
            msg = (
                f"partition {r.disk}:{r.partition} holds {target.filesystem}, image {image.name} "
                f"is {image.filesystem}"
            )
            if not self.strict:
                return self._finish(
                    OgErr.FILESYS, f"{msg}: change the partition type first or allow it"
                ), True
            out.append(self._defect(11, f"{msg}: the filesystem is never compared, it is replaced"))
        self._target_fs = target.filesystem
        return out, False

    def _on_cache(self, ev: Event) -> list[Command]:
        assert isinstance(ev, CacheInspected) and self.image is not None
        image, cache = self.image, ev.cache
        # 1.1.1d has no chunked images: its defects are never reproduced for one
        strict = self.strict and not image.chunked
        transport = self.method_used.transport
        acf = self.policy.action_cache_full
        self._present = ev.present if image.chunked else 0
        if cache is None:
            copy, room = table.CopyState.ABSENT, table.Room.FITS
        else:
            copy = table.copy_state(cache, image, strict=strict)
            room = table.room_for(
                cache, image, copy, strict=strict, present=self._present, transport=transport
            )
        row = table.admission(
            cache is not None,
            copy,
            room,
            acf,
            self._freed,
            strict=strict,
            transport=transport,
            chunked=image.chunked,
        )
        cmds = self._admit(row, image, cache, copy)
        if strict and cache is not None and copy is table.CopyState.PARTIAL and row.defect != 2:
            ours = table.copy_state(cache, image)
            if ours is not copy or table.room_for(cache, image, ours) is not room:
                # 1.1.1d keeps any interrupted download (its .bf) and needs the whole image free
                # beside it; ogLab resumes only this version's copy and counts its bytes
                note = (
                    "an interrupted download (.torrent.bf) is kept whatever its version, and "
                    "the whole image must fit the free space beside it"
                )
                cmds.insert(0, self._defect(2, note))
        return cmds

    def _admit(
        self, row: table.AdmissionRow, image: Image, cache: Cache | None, copy: table.CopyState
    ) -> list[Command]:
        d = table.Admission
        self.trace.append(row.id)
        size_note = ""
        if cache is not None:
            to_add = ""
            if image.chunked:
                need = table.required_bytes(
                    cache,
                    image,
                    copy,
                    present=self._present,
                    transport=self.method_used.transport,
                )
                to_add = f", chunks to add {format_size(need)}"
            size_note = (
                f" (image {format_size(image.stored_size)}{to_add}, cache "
                f"{format_size(cache.size)}, free {format_size(cache.free)})"
            )
        if row.decision is d.DROP:
            # 1.1.1d deletes the stale copy first, then decides with the cache without it
            assert cache is not None
            rest = self._on_cache(CacheInspected(cache.without(image.name)))
            drop: list[Command] = [DeleteCachedCopy(image.name, row.reason)]
            refilled = (FetchToCache, FormatCache, EmptyCache, EvictFromCache)
            if not any(isinstance(c, refilled) for c in rest):
                drop.insert(0, self._defect(row.defect, f"{row.reason}, and nothing replaces it"))
            return [*drop, *rest]
        pre: list[Command] = (
            [self._defect(row.defect, row.reason)] if self.strict and row.defect else []
        )
        if row.decision is d.FAIL_NOTCACHE:
            return [*pre, *self._cannot_cache(OgErr.NOTCACHE, row.reason)]
        if row.decision is d.FAIL_CACHESIZE:
            return [*pre, *self._cannot_cache(OgErr.CACHESIZE, row.reason + size_note)]
        if row.decision is d.USE_CACHED:
            self.reasons.append(row.reason)
            return [
                *pre,
                Log(row.reason + ": no transfer"),
                *self._restore(Source.CACHE, Transport.UNICAST),
            ]
        if row.decision in (d.FORMAT, d.DELETE, d.EVICT):
            self._freed = True
            self.state = State.FREEING
            self.reasons.append(row.reason)
            assert cache is not None
            free_cmd: Command
            if row.decision is d.FORMAT:
                free_cmd = FormatCache()
            elif row.decision is d.DELETE:
                free_cmd = EmptyCache()
            else:
                free_cmd = EvictFromCache(
                    table.eviction_order(cache, image, self._present, self.method_used.transport)
                )
            return [*pre, Log(row.reason + size_note), free_cmd]
        # FETCH / REPLACE / RESUME / FETCH_BESIDE_BF
        cmds: list[Command] = pre
        if row.decision is d.REPLACE:
            cmds.append(DeleteCachedCopy(image.name, row.reason))
        r = self.request
        transport = self.method_used.transport
        torrent = r.torrent
        if transport is Transport.TORRENT and torrent is None:
            if self.strict:
                reason = (
                    "TORRENT without a mode:time session: ogTorrentStart refuses it, nothing is "
                    "downloaded and the final check finds no copy"
                )
                return [*cmds, self._defect(24, reason), *self._finish(OgErr.UPDATECACHE, reason)]
            torrent = TorrentSession()  # the console's default (aulas.modp2p/timep2p)
        self._bf_kept = row.decision is d.FETCH_BESIDE_BF
        self.state = State.TRANSFER
        strict = self.strict and not image.chunked
        size = (
            table.required_bytes(
                cache,
                image,
                copy,
                strict=strict,
                present=self._present,
                transport=self.method_used.transport,
            )
            if cache is not None
            else image.stored_size
        )
        cmds += [
            Log(f"updateCache {image.name} by {transport}: {row.reason}"),
            FetchToCache(
                image,
                transport,
                multicast=r.multicast if transport is Transport.MULTICAST else None,
                torrent=torrent if transport is Transport.TORRENT else None,
                resume=row.decision is d.RESUME,
                keeps_bf=self._bf_kept,
                size=size,
            ),
        ]
        return cmds

    def _cannot_cache(self, code: OgErr, reason: str) -> list[Command]:
        r = self.request
        row = table.fallback(
            r.operation.may_switch, self.policy.restore_protocol_not_cache, r.method.transport
        )
        target = table.fallback_method(row)
        self.trace.append(row.id)
        if row.fails_with is not None:
            msg = f"{reason} (error {int(code)}); {row.reason}"
            self.reasons.append(msg)
            pre = [self._defect(row.defect, row.reason)] if self.strict else []
            return [*pre, *self._finish(row.fails_with, msg)]
        if target is None:
            msg = f"{reason}; {row.reason}"
            self.reasons.append(msg)
            return self._finish(code, msg)
        full = f"{reason} (error {int(code)}): {r.method} → {target} ({row.reason})"
        self.reasons.append(full)
        switch = MethodSwitched(r.method, target, code, full)
        self.switches.append(switch)
        self.method_used = target
        return [
            switch,
            Log(f"method switched: {full}"),
            *self._restore(Source.REPO, target.transport),
        ]

    def _restore(self, source: Source, transport: Transport) -> list[Command]:
        assert self.image is not None
        r = self.request
        if not r.operation.restores:
            return self._finish(OgErr.OK, f"image {self.image.name} is in the cache")
        if self._fit_deferred:
            return [
                self._defect(23, "restoreImage refuses the image (30), deployImage says 5"),
                *self._finish(OgErr.IMAGE, f"{self._fit_deferred}: restoreImage failed (30)"),
            ]
        self.state = State.RESTORE
        self._restore_transport = transport
        return [
            Log(
                f"restoreImage {source} {self.image.name} {r.disk} {r.partition} "
                f"{transport if source is not Source.CACHE else ''}".rstrip()
            ),
            RestorePartition(
                self.image,
                source,
                transport,
                r.disk,
                r.partition,
                multicast=r.multicast if transport is Transport.MULTICAST else None,
                change_filesystem=self._target_fs not in (Filesystem.EMPTY, self.image.filesystem),
            ),
        ]

    def _on_transfer_finished(self, ev: Event) -> list[Command]:
        assert isinstance(ev, TransferFinished) and self.image is not None
        image = self.image
        if self._bf_kept:
            return self._finish(
                OgErr.UPDATECACHE,
                f"the copy of {image.name} is complete, but the leftover .torrent.bf makes the "
                "final check report it as not updated",
            )
        if image.checksum and ev.checksum != image.checksum:
            row = table.failure_code(
                self.method_used.transport, table.Stage.CACHE, table.FailureKind.CHECKSUM
            )
            reason = (
                f"checksum of the cached copy ({ev.checksum or '-'}) differs from the repository's"
            )
            return [DeleteCachedCopy(image.name, reason), *self._finish(row.code, reason)]
        how = "manifest digest, every chunk re-hashed" if image.chunked else "whole-file MD5"
        return [
            Log(f"cached copy of {image.name} verified ({how})"),
            *self._restore(Source.CACHE, Transport.UNICAST),
        ]

    def _on_transfer_failed(self, ev: Event) -> list[Command]:
        assert isinstance(ev, TransferFailed) and self.image is not None
        transport = self.method_used.transport
        row = table.failure_code(transport, table.Stage.CACHE, ev.kind, strict=self.strict)
        msg = f"updateCache by {transport} failed ({ev.kind}"
        msg += f": {ev.detail})" if ev.detail else ")"
        pre: list[Command] = []
        if row.defect:
            pre.append(self._defect(row.defect, row.ref))
        if row.deletes_copy:
            pre.append(DeleteCachedCopy(self.image.name, "the final checksum check fails"))
        return [*pre, *self._finish(row.code, msg)]

    def _on_restore_finished(self, ev: Event) -> list[Command]:
        assert self.image is not None
        r = self.request
        if not r.postconf:
            return self._finish(OgErr.OK, f"{self.image.name} restored to {r.disk}:{r.partition}")
        self.state = State.POSTCONF
        return [Log("configureOs"), ConfigureOs(r.disk, r.partition, self.image)]

    def _on_restore_failed(self, ev: Event) -> list[Command]:
        assert isinstance(ev, RestoreFailed)
        stage, deploy = table.Stage.PARTITION, self.request.operation.runs_deploy_image
        transport = self._restore_transport
        row = table.failure_code(transport, stage, ev.kind, strict=self.strict, in_deploy=deploy)
        ours = table.failure_code(transport, stage, ev.kind, in_deploy=deploy)
        msg = f"restore failed ({ev.kind}" + (f": {ev.detail})" if ev.detail else ")")
        if row.code != ours.code:  # strict: 1.1.1d reports another number than ogLab
            msg += f"; ogLab would report {int(ours.code)}"
            return [self._defect(row.defect, row.ref), *self._finish(row.code, msg)]
        return self._finish(row.code, msg)

    def _on_postconf_finished(self, ev: Event) -> list[Command]:
        assert self.image is not None
        r = self.request
        return self._finish(
            OgErr.OK,
            f"{self.image.name} restored to {r.disk}:{r.partition} with {self.method_used}",
        )

    def _on_postconf_failed(self, ev: Event) -> list[Command]:
        assert isinstance(ev, PostconfFailed) and self.image is not None
        if self.strict:
            r = self.request
            return [
                self._defect(
                    12, f"configureOs failed ({int(ev.code)}: {ev.detail}); its status is ignored"
                ),
                *self._finish(
                    OgErr.OK,
                    f"{self.image.name} restored to {r.disk}:{r.partition} with "
                    f"{self.method_used} (configureOs failed: {ev.detail})",
                ),
            ]
        return self._finish(ev.code, f"restored, but post-configuration failed: {ev.detail}")
