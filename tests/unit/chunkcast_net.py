"""An in-memory network for chunkcast's sans-I/O cores: a virtual clock, one sender, receivers
that join (and crash) when told, datagrams lost, duplicated, delayed and reordered at random,
and disks that write at a given rate.  Used by the protocol's unit tests; not a product model
(that is :mod:`ogsim.chunkcast`)."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from ogref.model.storage import Filesystem
from ogref.runtime import partclone
from ogref.runtime.chunked import chunk
from ogref.runtime.chunked.manifest import ChunkRef, Manifest
from ogref.transports.chunkcast import objects, wire
from ogref.transports.chunkcast.receiver import ReceiverConfig, ReceiverCore
from ogref.transports.chunkcast.sender import SenderConfig, SenderCore

KEY = bytes(range(32))
BS = 512


def make_image(seed: int, blocks: int = 160, total: int = 200) -> tuple[Manifest, dict[str, bytes]]:
    """A small image: ``blocks`` used blocks of ``total`` (a few holes), cut into chunks of
    random sizes, a zero run making some chunks repeat.  Returns the manifest and the frames."""
    rng = random.Random(seed)
    used = sorted(rng.sample(range(total), blocks))
    bitmap = bytearray((total + 7) // 8)
    for b in used:
        bitmap[b // 8] |= 1 << (b % 8)
    size = blocks * BS
    data = bytearray(rng.randbytes(size))
    zero_at = size // 3
    data[zero_at : zero_at + 6 * 1024] = bytes(6 * 1024)
    refs: list[ChunkRef] = []
    frames: dict[str, bytes] = {}
    pos = 0
    while pos < size:
        n = 1024 if zero_at <= pos < zero_at + 6 * 1024 else rng.randint(300, 5000)
        piece = bytes(data[pos : pos + n])
        ref = ChunkRef(chunk.digest(piece), len(piece))
        refs.append(ref)
        frames[ref.digest] = chunk.compress(piece)
        pos += len(piece)
    header = partclone.Header("0.3.23", "EXTFS", total * BS, BS, total, blocks)
    return Manifest(header, Filesystem.EXT4, bytes(bitmap), tuple(refs)), frames


def disk_of(made: Manifest, frames: dict[str, bytes]) -> bytes:
    """What a restore of ``made`` leaves on a zeroed device."""
    out = bytearray(made.header.device_size)
    for offset, ref in zip(made.chunk_offsets(), made.chunks, strict=True):
        data = chunk.decompress(frames[ref.digest], ref.size)
        for dev, at, n in made.placements(offset, ref.size):
            out[dev : dev + n] = data[at : at + n]
    return bytes(out)


def sender_for(
    made: Manifest, frames: dict[str, bytes], cfg: SenderConfig, now: float = 0.0
) -> SenderCore:
    objs = objects.ImageObjects.of(made)
    mframe, msize = objects.manifest_frame(made)
    blobs = [mframe, *(frames[r.digest] for r in objs.chunks)]
    ann = wire.Announce(bytes.fromhex(made.digest), objects.manifest_hash(mframe), len(mframe),
                        msize, len(blobs), cfg.block, 0, 0, 0, 0)  # fmt: skip
    return SenderCore(KEY, 0x5EED, ann, [len(b) for b in blobs], blobs.__getitem__, cfg, now)


@dataclass
class Peer:
    """A receiver: when it joins, crashes, how fast its disk writes (bytes/s; 0: at once)."""

    join: float = 0.0
    disk_rate: float = 0.0
    crash_at: float | None = None
    rejoin_after: float = 1.0
    local_manifest: bool = False
    rcfg: ReceiverConfig | None = None
    loss: float | None = None  # this receiver's own link loss (default: the network's)
    core: ReceiverCore | None = None
    disk: bytearray = field(default_factory=bytearray)
    queue: list[tuple[int, bytes]] = field(default_factory=list)  # verified, not yet written
    queued: int = 0
    write_done: float = 0.0  # when the disk finishes the queue's head
    finished: float | None = None
    crashed: bool = False
    cores: list[ReceiverCore] = field(default_factory=list)


@dataclass
class Net:
    loss: float = 0.0
    dup: float = 0.0
    jitter: float = 0.0  # extra random delay (reordering)
    delay: float = 0.0005
    up_loss: float | None = None  # loss of requests (default: ``loss``)


def run(
    made: Manifest,
    frames: dict[str, bytes],
    peers: list[Peer],
    net: Net,
    *,
    scfg: SenderConfig,
    rcfg: ReceiverConfig = ReceiverConfig(),
    seed: int = 0,
    limit: float = 600.0,
    inject: list[tuple[float, bytes]] | None = None,
) -> tuple[SenderCore, list[Peer], float]:
    """Run a session to its end (or ``limit``); the sender, the peers and the end time."""
    rng = random.Random(seed)
    sender = sender_for(made, frames, scfg)
    objs = objects.ImageObjects.of(made)
    events: list[tuple[float, int, str, int, bytes]] = []  # time, tiebreak, kind, peer, data
    tick = 0

    def push(t: float, kind: str, peer: int, data: bytes = b"") -> None:
        nonlocal tick
        tick += 1
        heapq.heappush(events, (t, tick, kind, peer, data))

    def deliver(t: float, peer: int, packet: bytes, loss: float) -> None:
        copies = 1 + (rng.random() < net.dup)
        for _ in range(copies):
            if rng.random() >= loss:
                push(t + net.delay + rng.random() * net.jitter, "pkt", peer, packet)

    for i, p in enumerate(peers):
        p.disk = bytearray(made.header.device_size)
        push(p.join, "join", i)
        if p.crash_at is not None:
            push(p.crash_at, "crash", i)
    for t, packet in inject or []:
        push(t, "inject", -1, packet)
    push(0.0, "sender", -1)
    now = 0.0
    up_loss = net.loss if net.up_loss is None else net.up_loss

    def poll_peer(i: int) -> None:
        p = peers[i]
        if p.core is None:
            return
        out, wake = p.core.poll(now, p.queued)
        for packet in out:
            deliver(now, -1, packet, up_loss if p.loss is None else p.loss)
        push(max(wake, now + 1e-4), "rpoll", i)

    def write_some(i: int) -> None:
        p = peers[i]
        while p.queue and (p.disk_rate == 0 or p.write_done <= now):
            obj, data = p.queue[0]
            for off in objs.offsets[obj - 1]:
                for dev, at, n in made.placements(off, len(data)):
                    p.disk[dev : dev + n] = data[at : at + n]
            p.queue.pop(0)
            p.queued -= len(data)
            if p.queue and p.disk_rate:
                p.write_done = now + len(p.queue[0][1]) / p.disk_rate
                push(p.write_done, "write", i)
                return
        if p.core is not None and p.core.complete and not p.queue and p.finished is None:
            p.finished = now
            deliver(now, -1, p.core.leave(), up_loss)
            p.core = None

    while events:
        now, _, kind, i, data = heapq.heappop(events)
        if now > limit:
            break
        if kind == "sender":
            out, wake = sender.poll(now)
            for packet in out:
                for j, p in enumerate(peers):
                    if p.core is not None:
                        deliver(now, j, packet, net.loss if p.loss is None else p.loss)
            if wake is None:
                # the session is over: let the last datagrams land, then stop
                push(now + 1.0, "stop", -1)
                continue
            push(max(wake, now + 1e-5), "sender", -1)
        elif kind == "stop":
            break
        elif kind == "inject":
            for j, p in enumerate(peers):
                if p.core is not None:
                    push(now, "pkt", j, data)
        elif kind == "pkt" and i == -1:
            sender.receive(data, now)
            push(now, "sender", -1)  # the runtime polls after every datagram too
        elif kind == "pkt":
            p = peers[i]
            if p.core is None:
                continue
            for done in p.core.receive(data, now):
                if not p.queue and p.disk_rate:
                    p.write_done = now + len(done.data) / p.disk_rate
                    push(p.write_done, "write", i)
                p.queue.append((done.obj, done.data))
                p.queued += len(done.data)
            if p.disk_rate == 0:
                write_some(i)
            if p.core is not None and p.core.next_request <= now:
                poll_peer(i)
        elif kind == "write":
            write_some(i)
        elif kind == "join":
            p = peers[i]
            have = set()
            if p.crashed:  # a rejoin checks what the disk already holds, as the runtime does
                have = _held(made, objs, p.disk)
            p.core = ReceiverCore(KEY, 1000 + i + 100 * len(p.cores), p.rcfg or rcfg, now,
                                  manifest=made if p.local_manifest or p.crashed else None,
                                  have=have)  # fmt: skip
            p.cores.append(p.core)
            p.queue, p.queued = [], 0
            push(now, "rpoll", i)
        elif kind == "crash":
            p = peers[i]
            p.core, p.crashed = None, True
            p.queue, p.queued = [], 0
            push(now + p.rejoin_after, "join", i)
        elif kind == "rpoll":
            poll_peer(i)
    return sender, peers, now


def _held(made: Manifest, objs: objects.ImageObjects, disk: bytearray) -> set[str]:
    held = set()
    for ref, offs in zip(objs.chunks, objs.offsets, strict=True):
        ok = True
        for off in offs:
            buf = bytearray(ref.size)
            for dev, at, n in made.placements(off, ref.size):
                buf[at : at + n] = disk[dev : dev + n]
            ok = ok and chunk.digest(buf) == ref.digest
        if ok:
            held.add(ref.digest)
    return held
