"""chunkcast on real sockets and disks: the sender's and the receiver's loops around the sans-I/O
cores (:mod:`.sender`, :mod:`.receiver`).

Ports follow udpcast's ``portbase`` convention: data and announces go to ``group:port``, requests
come back unicast to ``sender:port + 1``.  The sender reads frames from the image directory's
chunk store (the manifest is object 0).  The receiver writes each verified chunk at its device
offsets with the chunked restore's writer, in whatever order chunks complete, from a small pool
of writer threads (MULTICAST-CACHE: it puts each verified frame, as it came, into the CACHE's chunk
store instead, and asks only for the chunks the store lacks); onto a block device it first applies restoreImage's checks and safeguards
(:func:`~ogref.runtime.restore.check_target`, :func:`~ogref.runtime.restore.guarded_write`:
size 30, filesystem change 20, unmount and lock, wipe on failure).  ``resume`` (a receiver
restarted after a crash) hashes what the target already holds first and asks only for the rest.
``write_rate`` throttles the writes (a slow disk, for the labs).  A session that ends before the
receiver is complete finishes from ``fallback_store`` (the repository's chunk store, unicast)
when one is given, else fails (57 into a file, 59 onto a partition).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import socket
import stat
import struct
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ogref.errors import (
    FormatError,
    ImageFileError,
    MulticastReceiveFileError,
    MulticastReceivePartitionError,
    MulticastSendFileError,
    OgError,
    ProtocolJoinMasterError,
)
from ogref.runtime.chunked import chunk, image
from ogref.runtime.chunked.manifest import Manifest
from ogref.runtime.chunked.restore import write_runs
from ogref.runtime.chunked.store import ChunkStore, unpacked
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.restore import DEFAULT_LOCK_DIR, check_target, guarded_write
from ogref.transports.chunkcast import objects, wire
from ogref.transports.chunkcast.objects import ImageObjects
from ogref.transports.chunkcast.receiver import Completed, ReceiverConfig, ReceiverCore
from ogref.transports.chunkcast.sender import SenderConfig, SenderCore

# a receiver's socket buffer (the kernel counts it doubled, with each datagram's overhead): about
# 2 s of a 90 Mbit/s session, so a receiver the host does not schedule for a while (a loaded
# ogLive, the lab's shared cores) finds the datagrams waiting rather than lost
RCVBUF = 32 * 1024 * 1024


def load_key(path: Path) -> bytes:
    """The session key: 64 hex digits (or 32 raw bytes) in ``path``."""
    data = path.read_bytes()
    text = data.strip()
    try:
        key = bytes.fromhex(text.decode("ascii")) if len(text) == 2 * wire.KEY_SIZE else data
    except (UnicodeDecodeError, ValueError):
        key = data
    if len(key) != wire.KEY_SIZE:
        raise FormatError(f"{path}: a chunkcast key is 32 bytes (64 hex digits)")
    return key


def new_key() -> str:
    return secrets.token_hex(wire.KEY_SIZE)


@dataclass(frozen=True)
class Endpoint:
    """Where a session lives: the group, the data port (requests: port + 1), this host's
    address on the session's network (the multicast interface), the TTL."""

    group: str
    port: int
    interface_ip: str = "0.0.0.0"
    ttl: int = 16


def _mcast_socket(ep: Endpoint, bind: tuple[str, int]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    for opt in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, opt, RCVBUF)
            break
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ep.ttl)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ep.interface_ip))
    sock.bind(bind)
    return sock


def _drain(sock: socket.socket) -> Iterator[tuple[bytes, tuple[str, int]]]:
    while True:
        try:
            data, addr = sock.recvfrom(4096, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        yield data, addr


def _write_stats(path: Path | None, doc: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(doc, indent=1, default=jsonable) + "\n")


def jsonable(value: object) -> object:
    """JSON for the statistics' sets (their sizes) and anything else (its text)."""
    if isinstance(value, set):
        return len(value)
    return str(value)


# ---------------------------------------------------------------------- sender


@dataclass
class SendResult:
    elapsed: float
    stats: dict[str, Any]


def send(
    images: ImageStore,
    name: str,
    ep: Endpoint,
    key: bytes,
    cfg: SenderConfig,
    *,
    stats_path: Path | None = None,
    ready: Path | None = None,
) -> SendResult:
    """Serve chunked image ``name`` of ``images`` until the session ends (56 on failure)."""
    made = image.load(images, name)
    store = image.chunk_store(images)
    objs = ImageObjects.of(made)
    mframe, msize = objects.manifest_frame(made)
    missing = [r.digest for r in objs.chunks if not store.has(r.digest)]
    if missing:
        raise ImageFileError(f"chunked image {name}: {len(missing)} chunks missing from the store")
    sizes = [len(mframe), *(store.size_on_disk(r.digest) for r in objs.chunks)]
    cache: dict[int, bytes] = {}

    def read(obj: int) -> bytes:
        if obj == objects.MANIFEST:
            return mframe
        if obj not in cache:
            cache.clear()
            cache[obj] = store.frame(objs.ref(obj).digest)
        return cache[obj]

    session = secrets.randbits(32)
    ann = wire.Announce(bytes.fromhex(made.digest), objects.manifest_hash(mframe), len(mframe),
                        msize, len(sizes), cfg.block, 0, 0, 0, 0)  # fmt: skip
    start = time.monotonic()
    core = SenderCore(key, session, ann, sizes, read, cfg, start)
    try:
        sock = _mcast_socket(ep, ("0.0.0.0", ep.port + 1))
    except OSError as exc:
        raise MulticastSendFileError(f"chunkcast sender: port {ep.port + 1}: {exc}") from None
    if ready is not None:
        ready.write_text(f"{session}\n")
    dest = (ep.group, ep.port)
    enobufs = 0
    announced_wall = time.time()  # the first poll announces the session at once
    try:
        while True:
            now = time.monotonic()
            out, wake = core.poll(now)
            for packet in out:
                try:
                    sock.sendto(packet, dest)
                except OSError:  # ENOBUFS: the qdisc is full; the pacer will catch up
                    enobufs += 1
                    time.sleep(0.001)
            if wake is None:
                break
            timeout = max(0.0, wake - time.monotonic())
            if timeout > 0:
                select.select([sock], [], [], timeout)
            now = time.monotonic()
            for data, _addr in _drain(sock):
                core.receive(data, now)
    finally:
        sock.close()
    elapsed = time.monotonic() - start
    doc = {"role": "sender", "elapsed_s": elapsed, "session": session, "image": made.digest,
           "objects": len(sizes), "frame_bytes": sum(sizes), "enobufs": enobufs,
           "announced_wall": announced_wall,
           "final_rate_bps": core.rate, **asdict(core.stats)}  # fmt: skip
    _write_stats(stats_path, doc)
    return SendResult(elapsed, doc)


# ---------------------------------------------------------------------- receiver


@dataclass
class ReceiveOptions:
    start_timeout: float = 120.0  # no announce by then: 60
    receive_timeout: float = 30.0  # nothing heard for this long: the session is lost
    resume: bool = False
    write_rate: float = 0.0  # bytes/s, 0: as fast as the target takes them
    writers: int = 2
    fallback_store: Path | None = None
    allow_fs_change: bool = False
    lock_dir: Path = DEFAULT_LOCK_DIR
    stats_path: Path | None = None
    ready_path: Path | None = None  # written once the receiver listens on the group
    cfg: ReceiverConfig = field(default_factory=ReceiverConfig)


@dataclass
class ReceiveResult:
    elapsed: float
    joined_after: float
    stats: dict[str, Any]


class _Writer:
    """Verified chunks to the target at their offsets, by a few threads; what is queued."""

    def __init__(self, fd: int, objs: ImageObjects, workers: int, rate: float) -> None:
        self.fd = fd
        self.objs = objs
        self.rate = rate
        self.pool = ThreadPoolExecutor(1 if rate else workers, thread_name_prefix="chunkcast-w")
        self.lock = threading.Lock()
        self.queued = 0
        self.written = 0
        self.error: BaseException | None = None
        self._free_at = time.monotonic()

    def put(self, done: Completed) -> None:
        with self.lock:
            self.queued += len(done.data)
        self.pool.submit(self._write, done)

    def _write(self, done: Completed) -> None:
        try:
            made = self.objs.manifest
            view = memoryview(done.data)
            pieces = [
                (dev, view[at : at + n])
                for off in self.objs.offsets[done.obj - 1]
                for dev, at, n in made.placements(off, len(done.data))
            ]
            if self.rate:
                n = len(done.data) * len(self.objs.offsets[done.obj - 1])
                self._free_at = max(self._free_at, time.monotonic()) + n / self.rate
                time.sleep(max(0.0, self._free_at - time.monotonic()))
            write_runs(self.fd, pieces)
            with self.lock:
                self.written += len(done.data) * len(self.objs.offsets[done.obj - 1])
        except BaseException as exc:
            self.error = exc
        finally:
            with self.lock:
                self.queued -= len(done.data)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        if self.error is not None:
            raise self.error


class _StoreWriter:
    """Verified chunks into a chunk store (a CACHE's, for MULTICAST-CACHE): each frame as it
    came, by a few threads; what is queued.  Nothing is written to a device."""

    def __init__(self, store: ChunkStore, objs: ImageObjects, workers: int) -> None:
        self.store = store
        self.objs = objs
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="chunkcast-s")
        self.lock = threading.Lock()
        self.queued = 0
        self.written = 0
        self.stored = 0  # chunks put into the store
        self.error: BaseException | None = None

    def put(self, done: Completed) -> None:
        digest, frame = self.objs.ref(done.obj).digest, done.frame
        if not frame:  # a chunk that came without its frame (never from the network)
            frame = chunk.compress(done.data)
        with self.lock:
            self.queued += len(frame)
        self.pool.submit(self._write, digest, frame)

    def _write(self, digest: str, frame: bytes) -> None:
        try:
            if self.store.put(digest, frame):
                with self.lock:
                    self.written += len(frame)
                    self.stored += 1
        except BaseException as exc:
            self.error = exc
        finally:
            with self.lock:
                self.queued -= len(frame)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        if self.error is not None:
            raise self.error
        self.store.sync()


def _held(fd: int, objs: ImageObjects) -> set[str]:
    """Digests of the chunks the target already holds at all their offsets (by hash)."""
    made = objs.manifest
    held: set[str] = set()
    for ref, offsets in zip(objs.chunks, objs.offsets, strict=True):
        buf = bytearray(ref.size)
        view = memoryview(buf)
        ok = True
        for off in offsets:
            for dev, at, n in made.placements(off, ref.size):
                if os.preadv(fd, [view[at : at + n]], dev) != n:
                    ok = False
            ok = ok and chunk.digest(buf) == ref.digest
            if not ok:
                break
        if ok:
            held.add(ref.digest)
    return held


def _is_block(path: Path) -> bool:
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except FileNotFoundError:
        return False


def receive(
    ep: Endpoint,
    key: bytes,
    target: Path | ChunkStore,
    *,
    local_manifest: Manifest | None = None,
    opts: ReceiveOptions | None = None,
) -> ReceiveResult:
    """Receive the session's image onto ``target`` (a partition, or a file of the device's
    size), or into a chunk store (only the chunks it lacks; the frames as they came), then
    leave.  Errors: 60 (never joined), 57/59 (lost or incomplete), 33 (fallback chunk
    damaged), the restore checks' own (20, 30…)."""
    opts = opts or ReceiveOptions()
    into_store = isinstance(target, ChunkStore)
    block_dev = not isinstance(target, ChunkStore) and _is_block(target)
    fail = MulticastReceivePartitionError if block_dev else MulticastReceiveFileError
    start = time.monotonic()
    rid = secrets.randbits(32)
    core = ReceiverCore(key, rid, opts.cfg, start, manifest=local_manifest)
    sock = _mcast_socket(ep, (ep.group, ep.port))
    mreq = struct.pack("4s4s", socket.inet_aton(ep.group), socket.inet_aton(ep.interface_ip))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    if opts.ready_path is not None:
        opts.ready_path.write_text(f"{rid}\n")
    sender: str | None = None
    joined, joined_wall = -1.0, 0.0
    writer: _Writer | _StoreWriter | None = None
    fd = -1
    early: list[Completed] = []
    with contextlib.ExitStack() as stack:
        stack.callback(sock.close)
        try:
            while True:
                now = time.monotonic()
                if core.objects is not None and writer is None:
                    if isinstance(target, ChunkStore):  # what the store holds is not asked for
                        core.already(r.digest for r in core.objects.chunks if target.has(r.digest))
                        writer = _StoreWriter(target, core.objects, opts.writers)
                    else:
                        fd = _open_target(target, core.objects.manifest, block_dev, opts, stack)
                        if opts.resume:
                            core.already(_held(fd, core.objects))
                        writer = _Writer(fd, core.objects, opts.writers, opts.write_rate)
                    for done in early:
                        writer.put(done)
                    early.clear()
                queued = writer.queued if writer else sum(len(c.data) for c in early)
                if writer is not None and writer.error is not None:
                    raise writer.error
                if core.complete and writer is not None and writer.queued == 0:
                    break
                out, wake = core.poll(now, queued)
                if sender is not None:
                    for packet in out:
                        with contextlib.suppress(OSError):
                            sock.sendto(packet, (sender, ep.port + 1))
                if core.ended and not core.complete:
                    break
                if joined < 0 and now - start > opts.start_timeout:
                    raise _never_joined()
                if joined >= 0 and now - core.last_heard > opts.receive_timeout:
                    break
                timeout = max(0.0, min(wake - now, 0.05))
                select.select([sock], [], [], timeout)
                now = time.monotonic()
                for data, addr in _drain(sock):
                    for done in core.receive(data, now):
                        (writer.put if writer is not None else early.append)(done)
                    if sender is None and core.session is not None:
                        sender, joined, joined_wall = addr[0], now - start, time.time()
            if not core.complete:
                if opts.fallback_store is None or core.objects is None or writer is None:
                    why = "ended" if core.ended else "went silent"
                    raise fail(f"chunkcast: the session {why} with {len(core.need)} chunks "
                               f"missing{'' if core.objects else ' (and no manifest)'}")  # fmt: skip
                _fallback(core, writer, opts.fallback_store)
            assert writer is not None
            writer.close()
            if not into_store:
                os.fsync(fd)
            if sender is not None:
                for _ in range(2):
                    with contextlib.suppress(OSError):
                        sock.sendto(core.leave(), (sender, ep.port + 1))
        except OgError:
            raise
        except OSError as exc:
            raise fail(f"chunkcast receiver: {exc}") from None
        finally:
            if writer is not None:
                writer.pool.shutdown(wait=True, cancel_futures=True)
    elapsed = time.monotonic() - start
    doc = {"role": "receiver", "id": rid, "elapsed_s": elapsed, "joined_after_s": joined,
           "complete_s": elapsed - max(joined, 0.0), "joined_wall": joined_wall,
           "done_wall": time.time(),  # every chunk written and synced, the sender told
           "written_bytes": writer.written,
           "stored_objects": writer.stored if isinstance(writer, _StoreWriter) else 0,
           "image": core.objects.manifest.digest if core.objects else "",
           "loss": core.loss, **asdict(core.stats)}  # fmt: skip
    _write_stats(opts.stats_path, doc)
    return ReceiveResult(elapsed, joined, doc)


def _never_joined() -> OgError:
    return ProtocolJoinMasterError("chunkcast: no announce of the session was heard")


def _open_target(
    target: Path, made: Manifest, block_dev: bool, opts: ReceiveOptions, stack: contextlib.ExitStack
) -> int:
    """Open the target for writing: a partition through restoreImage's checks and guard; a
    file grown to the device's size."""
    flags = (os.O_RDWR if opts.resume else os.O_WRONLY) | os.O_CLOEXEC
    if block_dev:
        check_target(str(target), "chunkcast", made.data_size, made.filesystem,
                     Path("/nonexistent/chunkcast.lock"), opts.allow_fs_change)  # fmt: skip
        stack.enter_context(guarded_write(str(target), made.filesystem, opts.lock_dir))
        fd = os.open(target, flags)
    else:
        fd = os.open(target, flags | os.O_CREAT, 0o644)
        if os.fstat(fd).st_size < made.header.device_size:
            os.ftruncate(fd, made.header.device_size)
    stack.callback(os.close, fd)
    return fd


def _fallback(core: ReceiverCore, writer: _Writer | _StoreWriter, store_dir: Path) -> None:
    """Fetch what the session did not bring from the repository's chunk store (unicast)."""
    assert core.objects is not None
    store = ChunkStore(store_dir)
    for obj in sorted(core.need):
        ref = core.objects.ref(obj)
        frame = store.frame(ref.digest)
        writer.put(Completed(obj, unpacked(ref.digest, ref.size, frame), frame))
    for obj in sorted(core.need):
        core.fetched(obj)
