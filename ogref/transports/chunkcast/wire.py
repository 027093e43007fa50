"""chunkcast's wire format: the four datagrams, their encoding and their MAC (docs/chunkcast.md).

Every datagram is ``header | body | mac``: a 16-byte header (magic ``OGCC``, version, type,
flags, session id, sequence number), a type-specific body, and 16 bytes of keyed BLAKE3 over
everything before it with the session key.  A datagram whose MAC does not check is *forged*
(:class:`ForgedError`), one too short or of an unknown version/type *malformed* (:class:`MalformedError`);
both are dropped by their reader and counted.  Integers are big-endian.

- ``ANNOUNCE`` (sender → group, every 0.1 s and when the queue drains): the image (manifest digest), how to fetch the
  manifest as object 0 (its compressed size and hash), the number of objects, the block size,
  the current rate, the request interval receivers must keep, the sender's cursor and the
  objects queued (ranges, varint-coded, possibly truncated) — what receivers suppress against.
- ``DATA`` (sender → group): one block of one object's zstd frame.
- ``REQUEST`` (receiver → sender, unicast): the receiver's id, its measured loss, flags and up
  to :data:`MAX_ENTRIES` entries, each some blocks of one object or a run of whole objects.
- ``END`` (sender → group): the session is over.

Pure encoding: no sockets, no clock.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple

import blake3

MAGIC = b"OGCC"
VERSION = 1
KEY_SIZE = 32
MAC_SIZE = 16
HEADER = struct.Struct(">4sBBHII")  # magic, version, type, flags, session, seq
DATA_HEAD = struct.Struct(">III")  # object, block, frame size
REQ_HEAD = struct.Struct(">IHHH")  # receiver id, loss ‰, flags, entries
ENTRY = struct.Struct(">III")  # object, first block (or extra objects), count (0: whole)
ANN_HEAD = struct.Struct(">32s32sIIIHHIHHIB")
MAX_DATAGRAM = 1472  # an Ethernet MTU's UDP payload
DEFAULT_BLOCK = MAX_DATAGRAM - HEADER.size - DATA_HEAD.size - MAC_SIZE  # 1428
MAX_ENTRIES = (MAX_DATAGRAM - HEADER.size - REQ_HEAD.size - MAC_SIZE) // ENTRY.size
WHOLE = 0  # an entry's count meaning "whole objects object … object + first"

FLAG_HAVE_MANIFEST = 1
FLAG_DONE = 2  # a receiver leaving complete


class Kind(IntEnum):
    ANNOUNCE = 1
    DATA = 2
    REQUEST = 3
    END = 4


class MalformedError(ValueError):
    """Not a chunkcast datagram of this version (too short, bad magic, unknown type)."""


class ForgedError(ValueError):
    """A datagram whose MAC does not check with the session key."""


def mac(key: bytes, data: bytes | memoryview) -> bytes:
    return blake3.blake3(data, key=key).digest(MAC_SIZE)


def seal(key: bytes, kind: Kind, session: int, seq: int, body: bytes, flags: int = 0) -> bytes:
    """A complete datagram: header, ``body`` and the MAC."""
    packet = HEADER.pack(MAGIC, VERSION, kind, flags, session, seq & 0xFFFFFFFF) + body
    return packet + mac(key, packet)


class Header(NamedTuple):  # a tuple: built for every datagram, cheaper than a dataclass
    kind: Kind
    flags: int
    session: int
    seq: int


_KINDS = {int(k): k for k in Kind}


def open_(key: bytes, packet: bytes) -> tuple[Header, memoryview]:
    """Check a datagram: its header and body (MalformedError, ForgedError)."""
    if len(packet) < HEADER.size + MAC_SIZE:
        raise MalformedError("too short")
    magic, version, kind, flags, session, seq = HEADER.unpack_from(packet)
    if magic != MAGIC or version != VERSION:
        raise MalformedError("not chunkcast v1")
    view = memoryview(packet)
    if mac(key, view[:-MAC_SIZE]) != packet[-MAC_SIZE:]:
        raise ForgedError("bad MAC")
    k = _KINDS.get(kind)
    if k is None:
        raise MalformedError(f"unknown type {kind}")
    return Header(k, flags, session, seq), view[HEADER.size : -MAC_SIZE]


# ---------------------------------------------------------------------- varint ranges


def _varint(n: int, out: bytearray) -> None:
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _read_varint(data: memoryview, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(data) or shift > 35:
            raise MalformedError("truncated varint")
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return n, pos
        shift += 7


def ranges(sorted_items: Iterable[int]) -> list[tuple[int, int]]:
    """Runs ``(start, length)`` of a sorted sequence of distinct integers."""
    out: list[tuple[int, int]] = []
    for x in sorted_items:
        if out and out[-1][0] + out[-1][1] == x:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((x, 1))
    return out


def encode_ranges(runs: Sequence[tuple[int, int]], limit: int) -> tuple[bytes, int]:
    """Delta-coded runs that fit in ``limit`` bytes: (bytes, how many runs fitted)."""
    out = bytearray()
    prev_end = 0
    for i, (start, length) in enumerate(runs):
        piece = bytearray()
        _varint(start - prev_end, piece)
        _varint(length - 1, piece)
        if len(out) + len(piece) > limit:
            return bytes(out), i
        out += piece
        prev_end = start + length
    return bytes(out), len(runs)


def decode_ranges(data: memoryview, count: int) -> list[tuple[int, int]]:
    out = []
    pos = prev_end = 0
    for _ in range(count):
        gap, pos = _read_varint(data, pos)
        length, pos = _read_varint(data, pos)
        start = prev_end + gap
        out.append((start, length + 1))
        prev_end = start + length + 1
    return out


# ---------------------------------------------------------------------- the four bodies


@dataclass(frozen=True)
class Announce:
    image: bytes  # the manifest's digest (32 bytes)
    manifest_hash: bytes  # BLAKE3 of object 0 (the zstd-compressed manifest), 32 bytes
    manifest_frame: int  # object 0's size in bytes
    manifest_size: int  # the manifest's uncompressed size
    objects: int  # object 0 + the distinct chunks
    block: int  # payload bytes per DATA
    request_ms: int  # the interval receivers keep between requests
    rate_kbit: int
    cursor: int  # the object being sent (or next)
    idle_ms: int  # how long the session has had no request (0: busy)
    truncated: bool = False
    pending: tuple[tuple[int, int], ...] = field(default_factory=tuple)  # queued objects

    def encode(self, limit: int = MAX_DATAGRAM) -> bytes:
        room = limit - HEADER.size - ANN_HEAD.size - MAC_SIZE
        data, fitted = encode_ranges(self.pending, room)
        truncated = self.truncated or fitted < len(self.pending)
        head = ANN_HEAD.pack(self.image, self.manifest_hash, self.manifest_frame,
                             self.manifest_size, self.objects, self.block, self.request_ms,
                             self.rate_kbit, min(self.idle_ms, 0xFFFF), fitted, self.cursor,
                             int(truncated))  # fmt: skip
        return head + data

    @classmethod
    def decode(cls, body: memoryview) -> Announce:
        if len(body) < ANN_HEAD.size:
            raise MalformedError("short ANNOUNCE")
        (image, mhash, mframe, msize, objects, block, req_ms, rate, idle, count, cursor,
         trunc) = ANN_HEAD.unpack_from(body)  # fmt: skip
        pending = decode_ranges(body[ANN_HEAD.size :], count)
        if block <= 0 or objects < 1:
            raise MalformedError("ANNOUNCE: no blocks or no objects")
        return cls(image, mhash, mframe, msize, objects, block, req_ms, rate, cursor, idle,
                   bool(trunc), tuple(pending))  # fmt: skip


class Data(NamedTuple):  # one per datagram: a tuple (see Header)
    obj: int
    block: int
    frame: int  # the object's frame size (how many blocks it has)
    payload: memoryview | bytes

    def encode(self) -> bytes:
        return DATA_HEAD.pack(self.obj, self.block, self.frame) + bytes(self.payload)

    @classmethod
    def decode(cls, body: memoryview) -> Data:
        if len(body) < DATA_HEAD.size:
            raise MalformedError("short DATA")
        obj, block, frame = DATA_HEAD.unpack_from(body)
        return cls(obj, block, frame, body[DATA_HEAD.size :])


@dataclass(frozen=True)
class Entry:
    """Blocks ``first … first + count - 1`` of ``obj``; or (``count`` 0) whole objects ``obj …
    obj + first``."""

    obj: int
    first: int
    count: int

    @property
    def whole(self) -> bool:
        return self.count == WHOLE

    def objects(self) -> range:
        return range(self.obj, self.obj + self.first + 1) if self.whole else range(self.obj, 0)


@dataclass(frozen=True)
class Request:
    receiver: int
    loss_permille: int
    flags: int
    entries: tuple[Entry, ...]

    def encode(self) -> bytes:
        if len(self.entries) > MAX_ENTRIES:
            raise ValueError("too many entries")
        out = [REQ_HEAD.pack(self.receiver, min(self.loss_permille, 1000), self.flags,
                             len(self.entries))]  # fmt: skip
        out += [ENTRY.pack(e.obj, e.first, e.count) for e in self.entries]
        return b"".join(out)

    @classmethod
    def decode(cls, body: memoryview) -> Request:
        if len(body) < REQ_HEAD.size:
            raise MalformedError("short REQUEST")
        rid, loss, flags, n = REQ_HEAD.unpack_from(body)
        if len(body) != REQ_HEAD.size + n * ENTRY.size or n > MAX_ENTRIES:
            raise MalformedError("REQUEST: wrong entry count")
        entries = tuple(
            Entry(*ENTRY.unpack_from(body, REQ_HEAD.size + i * ENTRY.size)) for i in range(n)
        )
        return cls(rid, loss, flags, entries)
