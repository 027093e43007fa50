"""The chunkcast receiver as a state machine without I/O: it is handed datagrams, the time and
how much it holds unwritten, and gives back verified chunks to write and the requests to send.

What it does (docs/chunkcast.md): it binds to the first authenticated ``ANNOUNCE`` of its image,
fetches the manifest as object 0 unless it was given one (either way the manifest's digest must
be the announced image's), then takes every block of every object it lacks, whatever the order;
an object whose blocks are all there is decompressed and **hashed against the manifest** before
it is handed out — a garbled or forged one never is (and a datagram whose MAC fails is dropped
before that).  It requests what it lacks at most once per the sender's request interval
(jittered), in as few entries as it can (runs of whole objects; block ranges of a partly
received one), and suppresses what the sender's announced queue already holds, what is being
sent now and what it asked for recently.  It asks for no more whole objects than its buffer can
take (a slow disk waits for later sweeps instead of losing what it cannot write).  It measures
loss from the sender's sequence numbers and reports it in its requests.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable
from dataclasses import dataclass

import zstandard

from ogref.errors import ImageFileError
from ogref.runtime.chunked import chunk
from ogref.runtime.chunked.manifest import Manifest
from ogref.transports.chunkcast import wire
from ogref.transports.chunkcast.objects import MANIFEST, ImageObjects
from ogref.transports.chunkcast.wire import Entry, Kind


@dataclass(frozen=True)
class ReceiverConfig:
    buffer_bytes: int = 256 * 1024 * 1024  # held unwritten (partial and verified) at most
    flight_s: float = 0.02  # an object whose data arrived this recently is still being sent
    cover_s: float = 0.3  # after asking, trust the sender's queue echo to show it after this
    echo_margin_s: float = 0.05  # an announce this long after an ask reflects it (RTT, load)
    long_cover_s: float = 5.0  # asked, but beyond a truncated echo
    keepalive_s: float = 0.5  # an idle, incomplete receiver says it is still there
    loss_window: int = 1000  # datagrams per loss measurement


@dataclass
class ReceiverStats:
    packets: int = 0  # authenticated datagrams of the session
    data_bytes: int = 0  # payload bytes received
    useful_bytes: int = 0  # payload bytes of blocks it lacked
    duplicate_bytes: int = 0  # payload bytes of blocks it had already (received twice)
    busy_bytes: int = 0  # payload bytes it had no room for
    forged: int = 0
    malformed: int = 0
    foreign: int = 0  # authenticated, another session or image
    bad_objects: int = 0  # assembled, but the hash (or the frame) was wrong
    lost: int = 0  # sequence gaps
    requests: int = 0
    entries: int = 0
    resumed_objects: int = 0  # already on the target when it (re)joined
    fallback_objects: int = 0  # fetched by unicast after the session


@dataclass(frozen=True)
class Completed:
    """A verified chunk: object ``obj``'s uncompressed bytes and the frame they came in (what
    a chunk store keeps)."""

    obj: int
    data: bytes
    frame: bytes = b""


@dataclass
class _Partial:
    frame: int
    buf: bytearray
    got: bytearray
    count: int = 0
    last: float = 0.0


class ReceiverCore:
    """One receiver of one session.  ``manifest``: given locally (else fetched as object 0);
    ``have``: digests already in place (a rejoin after a crash checks them first)."""

    def __init__(
        self,
        key: bytes,
        receiver: int,
        cfg: ReceiverConfig,
        now: float,
        *,
        manifest: Manifest | None = None,
        have: Iterable[str] = (),
        seed: int | None = None,
    ) -> None:
        self.key = key
        self.id = receiver
        self.cfg = cfg
        self.rng = random.Random(receiver if seed is None else seed)
        self.stats = ReceiverStats()
        self.announce: wire.Announce | None = None
        self.announced_at = 0.0
        self.session: int | None = None
        self.expected = manifest.digest if manifest is not None else None
        self.objects: ImageObjects | None = None
        self.need: set[int] = set()
        self.need_sorted: list[int] = []
        self.partials: dict[int, _Partial] = {}
        self._outstanding_bytes = 0
        self._outstanding_at = -1e9
        self.early: dict[int, bytes] = {}  # frames assembled before the manifest
        self.asked: dict[int, float] = {}
        self.buffered = 0
        self.next_request = now
        self.last_request = -1e9
        self.ended = False
        self.began = now
        self.last_heard = now
        self.last_obj = -1  # the object of the last DATA
        self._have = set(have)
        self._highest: int | None = None
        self._win_got = 0
        self._win_lost = 0
        self.loss = 0.0
        if manifest is not None:
            self._adopt(manifest)

    # ------------------------------------------------------------------ state

    @property
    def complete(self) -> bool:
        return self.objects is not None and not self.need

    def _adopt(self, made: Manifest) -> None:
        self.objects = ImageObjects.of(made)
        self.need = {
            i + 1 for i, ref in enumerate(self.objects.chunks) if ref.digest not in self._have
        }
        self.need_sorted = sorted(self.need)

    def already(self, digests: Iterable[str]) -> None:
        """Chunks the target was found to hold already (a rejoin): not needed any more."""
        assert self.objects is not None
        held = set(digests)
        for i, ref in enumerate(self.objects.chunks):
            if ref.digest in held and i + 1 in self.need:
                self._done(i + 1)
                self.stats.resumed_objects += 1

    def fetched(self, obj: int) -> None:
        """Object ``obj`` came another way (unicast from the repository after the session)."""
        self.stats.fallback_objects += 1
        self._done(obj)

    def _done(self, obj: int) -> None:
        self.need.discard(obj)
        i = bisect.bisect_left(self.need_sorted, obj)
        if i < len(self.need_sorted) and self.need_sorted[i] == obj:
            del self.need_sorted[i]
        self.asked.pop(obj, None)

    # ------------------------------------------------------------------ input

    def receive(self, packet: bytes, now: float) -> list[Completed]:
        """A datagram from the network: the chunks it completed (verified), if any."""
        try:
            head, body = wire.open_(self.key, packet)
            if head.kind is Kind.REQUEST:
                return []  # another receiver's, if requests ever reach the group
            if self.session is None:
                if head.kind is not Kind.ANNOUNCE:
                    return []
                ann = wire.Announce.decode(body)
                if self.expected is not None and ann.image.hex() != self.expected:
                    self.stats.foreign += 1
                    return []
                self.session = head.session
            elif head.session != self.session:
                self.stats.foreign += 1
                return []
            self._sequence(head.seq)
            self.stats.packets += 1
            self.last_heard = now
            if head.kind is Kind.ANNOUNCE:
                self.announce = wire.Announce.decode(body)
                self.announced_at = now
                return []
            if head.kind is Kind.END:
                self.ended = True
                return []
            return self._data(wire.Data.decode(body), now)
        except wire.ForgedError:
            self.stats.forged += 1
        except wire.MalformedError:
            self.stats.malformed += 1
        return []

    def _sequence(self, seq: int) -> None:
        if self._highest is None or seq > self._highest:
            if self._highest is not None:
                self._win_lost += seq - self._highest - 1
                self.stats.lost += seq - self._highest - 1
            self._highest = seq
        elif self._win_lost:
            self._win_lost -= 1  # late, not lost
        self._win_got += 1
        seen = self._win_got + self._win_lost
        if seen >= self.cfg.loss_window // 4:  # a quarter window is enough to report on
            self.loss = self._win_lost / seen
        if seen >= self.cfg.loss_window:
            self._win_got = self._win_lost = 0

    def _holding(self) -> int:
        return (
            self.buffered
            + sum(p.frame for p in self.partials.values())
            + sum(len(f) for f in self.early.values())
        )

    def _data(self, d: wire.Data, now: float) -> list[Completed]:
        ann = self.announce
        if ann is None:
            return []
        size = len(d.payload)
        self.stats.data_bytes += size
        self.last_obj = d.obj
        if d.obj == MANIFEST:
            wanted = self.objects is None
        else:  # before the manifest, anything: it is checked once the manifest is there
            wanted = d.obj in self.need if self.objects is not None else d.obj not in self.early
        if not wanted:
            self.stats.duplicate_bytes += size if self.objects is not None else 0
            return []
        if d.obj == MANIFEST and d.frame != ann.manifest_frame:
            self.stats.malformed += 1
            return []
        nblocks = max(1, -(-d.frame // ann.block))
        if d.block >= nblocks or size != min(ann.block, d.frame - d.block * ann.block):
            self.stats.malformed += 1
            return []
        p = self.partials.get(d.obj)
        if p is not None and p.frame != d.frame:
            self.stats.malformed += 1  # authenticated but inconsistent: start the object over
            del self.partials[d.obj]
            p = None
        if p is None:
            if d.obj != MANIFEST and self._holding() + d.frame > self.cfg.buffer_bytes:
                self.stats.busy_bytes += size
                if self.asked.pop(d.obj, None) is not None:  # served, but no room: not
                    self._outstanding_at = -1e9  # outstanding any more, asked again with room
                return []
            p = self.partials[d.obj] = _Partial(d.frame, bytearray(d.frame), bytearray(nblocks))
        p.last = now
        self.asked.pop(d.obj, None)  # the ask is being served: what is missing after it counts
        if p.got[d.block]:
            self.stats.duplicate_bytes += size
            return []
        p.got[d.block] = 1
        p.count += 1
        start = d.block * ann.block
        p.buf[start : start + size] = d.payload
        self.stats.useful_bytes += size
        if p.count < nblocks:
            return []
        del self.partials[d.obj]
        return self._assembled(d.obj, bytes(p.buf))

    def _assembled(self, obj: int, frame: bytes) -> list[Completed]:
        assert self.announce is not None
        if obj == MANIFEST:
            try:
                if chunk.digest(frame) != self.announce.manifest_hash.hex():
                    raise ImageFileError("manifest frame hash")
                raw = zstandard.ZstdDecompressor().decompress(
                    frame, max_output_size=self.announce.manifest_size
                )
                made = Manifest.from_json(raw, "chunkcast manifest")
                if made.digest != self.announce.image.hex():
                    raise ImageFileError("manifest is not the announced image")
            except (ImageFileError, zstandard.ZstdError):
                self.stats.bad_objects += 1
                return []
            self._adopt(made)
            early, self.early = self.early, {}
            return [
                c for o, f in sorted(early.items()) if o in self.need for c in self._chunk(o, f)
            ]
        if self.objects is None:
            self.early[obj] = frame
            return []
        return self._chunk(obj, frame)

    def _chunk(self, obj: int, frame: bytes) -> list[Completed]:
        assert self.objects is not None
        if obj >= self.objects.count:
            self.stats.bad_objects += 1
            return []
        ref = self.objects.ref(obj)
        try:
            data = chunk.decompress(frame, ref.size)
        except zstandard.ZstdError:
            self.stats.bad_objects += 1
            return []
        if chunk.digest(data) != ref.digest:
            self.stats.bad_objects += 1
            return []
        self._done(obj)
        return [Completed(obj, data, frame)]

    # ------------------------------------------------------------------ output

    def _echoed(self, obj: int) -> bool | None:
        """Whether the last announce lists ``obj`` as queued (None: beyond a truncated list)."""
        ann = self.announce
        assert ann is not None
        pend = ann.pending
        i = bisect.bisect_right(pend, (obj, 1 << 62)) - 1
        if i >= 0 and pend[i][0] <= obj < pend[i][0] + pend[i][1]:
            return True
        if ann.truncated and (not pend or obj >= pend[-1][0] + pend[-1][1]):
            return None
        return False

    def _in_flight(self, obj: int, now: float) -> bool:
        """Whether ``obj`` is the object being sent now (its missing blocks may still come):
        its data was the last to arrive, within a few datagrams' time."""
        p = self.partials.get(obj)
        if obj != self.last_obj or p is None or self.announce is None:
            return False
        gap = 12000 / max(1, self.announce.rate_kbit) / 1000  # one full datagram, seconds
        return now - p.last < max(self.cfg.flight_s, 10 * gap)

    def _echo_run_end(self, obj: int) -> int | None:
        """The end of the announced queue's run holding ``obj`` (None: not in one)."""
        ann = self.announce
        assert ann is not None
        pend = ann.pending
        i = bisect.bisect_right(pend, (obj, 1 << 62)) - 1
        if i >= 0 and pend[i][0] <= obj < pend[i][0] + pend[i][1]:
            return pend[i][0] + pend[i][1]
        return None

    def _outstanding(self, now: float) -> int:
        """Bytes of whole objects asked for and not yet arriving (recomputed twice a second:
        the ask list can hold every object of a large image)."""
        if now - self._outstanding_at >= 0.5:
            assert self.objects is not None
            self._outstanding_bytes = sum(
                self.objects.ref(o).size
                for o, t in self.asked.items()
                if o != MANIFEST and o in self.need and o not in self.partials
                and now - t < self.cfg.long_cover_s
            )  # fmt: skip
            self._outstanding_at = now
        return self._outstanding_bytes

    def _covered(self, obj: int, now: float) -> bool:
        """Whether asking for ``obj`` now would be redundant: asked recently (and nothing of it
        came since), or in the sender's announced queue (an announce newer than its data)."""
        asked = self.asked.get(obj)
        echo_after_ask = asked is not None and self.announced_at > asked + self.cfg.echo_margin_s
        if asked is not None and now - asked < self.cfg.cover_s and not echo_after_ask:
            return True  # asked, and no announce since that could show the sender has it
        p = self.partials.get(obj)
        if p is not None and p.last >= self.announced_at:
            return False
        echoed = self._echoed(obj)
        if echoed is None:
            return asked is not None and now - asked < self.cfg.long_cover_s
        return echoed

    def poll(self, now: float, buffered: int = 0) -> tuple[list[bytes], float]:
        """Requests to send now (to the sender, unicast), and when to be called again.
        ``buffered``: verified bytes handed out and not yet written."""
        self.buffered = buffered
        ann = self.announce
        if ann is None or self.session is None or self.ended:
            return [], now + 0.1
        if now < self.next_request:
            return [], self.next_request
        interval = ann.request_ms / 1000
        self.next_request = now + interval * self.rng.uniform(0.5, 1.5)
        if self.complete:
            return [], self.next_request
        entries = self._wanted(now)
        if not entries and now - self.last_request < self.cfg.keepalive_s:
            return [], self.next_request
        self.last_request = now
        self.stats.requests += 1
        self.stats.entries += len(entries)
        flags = wire.FLAG_HAVE_MANIFEST if self.objects is not None else 0
        req = wire.Request(self.id, round(self.loss * 1000), flags, tuple(entries))
        return [self._seal(req)], self.next_request

    def leave(self) -> bytes:
        """The datagram saying this receiver is complete and leaving."""
        return self._seal(wire.Request(self.id, round(self.loss * 1000), wire.FLAG_DONE, ()))

    def _seal(self, req: wire.Request) -> bytes:
        assert self.session is not None
        return wire.seal(self.key, Kind.REQUEST, self.session, self.stats.requests, req.encode())

    def _wanted(self, now: float) -> list[Entry]:
        entries: list[Entry] = []
        for obj in sorted(self.partials):
            p = self.partials[obj]
            if self._in_flight(obj, now) or self._covered(obj, now):
                continue
            missing = [i for i in range(len(p.got)) if not p.got[i]]
            for start, length in wire.ranges(missing):
                if len(entries) >= wire.MAX_ENTRIES:
                    return entries
                entries.append(Entry(obj, start, length))
            self.asked[obj] = now
        if self.objects is None:
            if MANIFEST not in self.partials and not self._covered(MANIFEST, now):
                self.asked[MANIFEST] = now
                entries.append(Entry(MANIFEST, 0, wire.WHOLE))
            return entries
        holding = self._holding()
        outstanding = self._outstanding(now)
        room = self.cfg.buffer_bytes - holding - outstanding
        i = 0
        run: list[int] = []
        while i < len(self.need_sorted) and len(entries) < wire.MAX_ENTRIES:
            obj = self.need_sorted[i]
            end = self._echo_run_end(obj)
            if end is not None:  # the whole queued run is covered: skip it at once
                i = bisect.bisect_left(self.need_sorted, end, i + 1)
                continue
            i += 1
            if obj in self.partials or self._covered(obj, now):
                continue
            size = self.objects.ref(obj).size
            if size > room and (entries or run or holding or outstanding):
                break
            room -= size
            self._outstanding_bytes += size  # counted at once; recomputed every 0.5 s
            self.asked[obj] = now
            if run and run[-1] + 1 == obj and len(run) < 0xFFFF:
                run.append(obj)
                continue
            if run:
                entries.append(Entry(run[0], len(run) - 1, wire.WHOLE))
            run = [obj]
        if run and len(entries) < wire.MAX_ENTRIES:
            entries.append(Entry(run[0], len(run) - 1, wire.WHOLE))
        return entries
