"""The executors of a live client's restores: :class:`StartDelayExecutor` (the engine's
``STARTDELAY`` before a multicast or torrent updateCache) and :class:`MasterExecutor` (a restore
whose source is a MASTER computer: ``udp-receiver`` from the MASTER's address).  They decide
nothing: the core's session does."""

import random
import time
from dataclasses import dataclass
from typing import Any

from ogref.core.events import (
    FailureKind,
    FetchToCache,
    ImageInspected,
    InspectImage,
    RestoreFailed,
    RestoreFinished,
    RestorePartition,
    Source,
    TransferFailed,
    TransferFinished,
)
from ogref.errors import (
    ImageFileError,
    LockedError,
    OgError,
)
from ogref.model import (
    Filesystem,
    Image,
)
from ogref.model.image import Compressor
from ogref.runtime.chunked.restore import restore_clone
from ogref.transports import multicast, stream
from ogref.transports.executor import NetworkExecutor

Json = dict[str, Any]


class StartDelayExecutor(NetworkExecutor):
    """The network executor honouring the engine's ``STARTDELAY`` (random sleep before a
    multicast or torrent updateCache): the one policy the simulator also draws from."""

    sleep = staticmethod(time.sleep)

    def _fetch(self, cmd: FetchToCache) -> TransferFinished | TransferFailed:
        delay = self.policy.start_delay.draw(str(cmd.transport), random.randint)
        if delay > 0:
            t0 = self.net.clock()
            self.log(f"random start delay: {delay:.0f} s before the {cmd.transport} updateCache")
            self.sleep(delay)
            self._phase("wait", t0, detail="random start delay")
        return super()._fetch(cmd)


@dataclass(frozen=True)
class _Unsized:
    """An image seen as a stream of unknown size and MD5 (what a restore checks of it)."""

    image: Image
    stored_size: int = 0
    checksum: str = ""

    @property
    def compressor(self) -> Compressor:
        return self.image.compressor

    @property
    def filesystem(self) -> Filesystem:
        return self.image.filesystem


class MasterExecutor(StartDelayExecutor):
    """The network executor for a restore whose source is a MASTER computer: the image is the one
    the MASTER announced, received with ``udp-receiver`` from the MASTER's address (no control
    API: the server has already started the MASTER's sender).  Everything else is its base's."""

    master_image: Image | None = None
    master_ip: str = ""
    master_chunkcast: Json | None = None  # the MASTER sends by chunkcast: {"key": hex}
    stream_md5: str = ""

    def _inspect_image(self, cmd: InspectImage) -> ImageInspected:
        if cmd.source is not Source.MASTER:
            return super()._inspect_image(cmd)
        if self.master_image is None or self.master_image.name != cmd.name:
            return ImageInspected(found=False)
        return ImageInspected(True, True, self.master_image)

    def _restore(self, cmd: RestorePartition) -> RestoreFinished | RestoreFailed:
        if cmd.source is not Source.MASTER:
            return super()._restore(cmd)
        t0 = self.net.clock()
        node = self.machine.partition(cmd.disk, cmd.partition)
        if cmd.multicast is None:
            return RestoreFailed(FailureKind.JOIN, "a MASTER sends by multicast only")
        if self.master_chunkcast:
            return self._restore_from_master_chunkcast(cmd, node, t0)
        cfg = multicast.ReceiverConfig(
            self.net.interface,
            self.net.client_ip,
            self.master_ip,
            start_timeout=self.policy.mcast_error_session,
            receive_timeout=self.policy.mcast_wait,
        )
        self.log(
            f"receiving {cmd.image.name} from MASTER {self.master_ip} on port {cmd.multicast.port}"
        )
        # a partition stream's size and MD5 are known only at its end: they are not checked
        # here but compared with what the MASTER reports (its record); a cached image's are
        image: Any = cmd.image if cmd.image.checksum else _Unsized(cmd.image)
        try:
            if cmd.image.chunked:  # a MASTER's cached chunked image: its manifest and pack
                ck = restore_clone(
                    multicast.receiver_source(cfg, cmd.multicast),
                    cmd.image,
                    node,
                    lock_dir=self.machine.lock_dir,
                    allow_fs_change=cmd.change_filesystem,
                )
                done = stream.StreamRestored(ck.moved_bytes, ck.stream_md5)
            else:
                done = stream.restore_from(
                    multicast.receiver_source(cfg, cmd.multicast),
                    image,
                    node,
                    lock_dir=self.machine.lock_dir,
                    what=f"MULTICAST clone of {cmd.image.name} to {node}",
                )
        except LockedError as exc:
            return RestoreFailed(FailureKind.LOCKED, exc.message)
        except OgError as exc:
            kind = FailureKind.RECEIVE if "udp-receiver" in exc.message else FailureKind.IO
            if isinstance(exc, ImageFileError) and kind is FailureKind.IO:
                kind = FailureKind.CORRUPT
            self._phase("restore", t0, 0, exc.message)
            return RestoreFailed(kind, exc.message)
        self.bytes_moved += done.bytes_read
        self.stream_md5 = done.checksum
        self._phase("restore", t0, done.bytes_read, f"MULTICAST from MASTER {self.master_ip}")
        self.log(f"restored {done.bytes_read} bytes from the MASTER (stream MD5 {done.checksum})")
        return RestoreFinished(done.bytes_read)

    def _restore_from_master_chunkcast(
        self, cmd: RestorePartition, node: str, t0: float
    ) -> RestoreFinished | RestoreFailed:
        """The MASTER serves a chunked image by chunkcast: its chunks onto the partition, the
        manifest taken from the session (the announce is authenticated by the key the service
        handed over; every chunk is hashed against the manifest before it is written)."""
        from ogref.transports.chunkcast import engine as chunkcast

        assert cmd.multicast is not None and self.master_chunkcast
        self.log(f"receiving {cmd.image.name} from MASTER {self.master_ip} by chunkcast on port "
                 f"{cmd.multicast.port}")  # fmt: skip
        try:
            stats = chunkcast.receive_clone(
                key=bytes.fromhex(str(self.master_chunkcast["key"])),
                session=cmd.multicast,
                device=node,
                interface_ip=str(self.net.client_ip).split("/")[0],
                start_timeout=self.policy.mcast_error_session,
                receive_timeout=self.policy.mcast_wait,
                allow_fs_change=cmd.change_filesystem,
                lock_dir=self.machine.lock_dir,
                log=self.log,
            )
        except OgError as exc:
            return self._chunkcast_failed(t0, exc)
        moved = int(stats["useful_bytes"])
        self.bytes_moved += moved
        self.verified = True  # every chunk hashed against the session's authenticated manifest
        self._phase("restore", t0, moved, f"MULTICAST chunkcast from MASTER {self.master_ip}")
        self.log(f"restored {stats['written_bytes']} bytes from the MASTER by chunkcast "
                 f"(image {stats['image']})")  # fmt: skip
        return RestoreFinished(int(stats["written_bytes"]))
