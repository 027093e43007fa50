"""partclone's image stream as used blocks: read it into (header, bitmap, data), write it back.

A partclone v2 stream is a header, the used-block bitmap and its CRC, then the used blocks in
block order, with a CRC after every ``blocks_per_checksum`` blocks unless it was made with
``-a0``.  :class:`UsedBlocks` checks the header, the bitmap's CRC and every data CRC (a
mismatch or a short stream is error 33) and serves the used blocks alone through ``readinto``,
what a chunker reads.  :func:`write_stream` produces a ``-a0`` stream that ``partclone.restore``
accepts.  No process is started here and no chunk is stored.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Protocol

from ogref.errors import ImageFileError
from ogref.runtime import partclone

_CRC = struct.Struct("<I")


class ByteReader(Protocol):
    """Where a stream is read from: a pipe, a file."""

    def read(self, n: int = -1, /) -> bytes: ...


def _read_exact(stream: ByteReader, n: int, what: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise ImageFileError(f"truncated partclone stream: {what} is short")
    return data


class UsedBlocks:
    """The used blocks of a partclone stream, checksums checked and removed.

    Construction reads the header and the bitmap; then ``readinto`` serves the data (0 at its
    end, after checking that the stream ends there too — or, with ``defer_end``, at once: the
    caller then calls :meth:`end`, e.g. after work that may overlap the producer's exit).
    """

    def __init__(self, stream: ByteReader, *, defer_end: bool = False) -> None:
        self._in = stream
        self._defer_end = defer_end
        self.header = partclone.Header.parse(_read_exact(stream, partclone.HEADER_SIZE, "header"))
        h = self.header
        if h.bitmap_mode != 1:
            raise ImageFileError(f"partclone bitmap mode {h.bitmap_mode} is not supported")
        self.bitmap = _read_exact(stream, (h.total_blocks + 7) // 8, "bitmap")
        (crc,) = _CRC.unpack(_read_exact(stream, _CRC.size, "bitmap CRC"))
        if crc != partclone.crc32(self.bitmap):
            raise ImageFileError("partclone stream: the bitmap's CRC does not match")
        self._left = h.used_blocks * h.block_size  # data bytes still to serve
        group = h.blocks_per_checksum * h.block_size if h.checksum_size else 0
        self._group = group  # data bytes between two CRCs (0: none)
        self._in_group = 0
        self._crc = partclone.CRC_SEED
        self._buf = b""
        self._pos = 0
        self.size = self._left

    def readinto(self, out: memoryview | bytearray) -> int:
        view = memoryview(out).cast("B")
        done = 0
        while done < len(view) and (self._pos < len(self._buf) or self._left > 0):
            if self._pos == len(self._buf):
                self._fill()
            take = min(len(view) - done, len(self._buf) - self._pos)
            view[done : done + take] = self._buf[self._pos : self._pos + take]
            self._pos += take
            done += take
        if not self._defer_end and self._left == 0 and self._pos == len(self._buf):
            self.end()
        return done

    def end(self) -> None:
        """Check that the stream ends after the last used block (it is read to its end)."""
        if self._in.read(1):
            raise ImageFileError("partclone stream: data after the last used block")

    def _fill(self) -> None:
        want = min(self._left, 4 * 1024 * 1024)
        if self._group:
            want = min(want, self._group - self._in_group)
        data = _read_exact(self._in, want, "data")
        self._left -= want
        self._buf, self._pos = data, 0
        if not self._group:
            return
        self._crc = partclone.crc32(data, self._crc)
        self._in_group += want
        if self._in_group == self._group or self._left == 0:
            self._check_crc()

    def _check_crc(self) -> None:
        raw = _read_exact(self._in, self.header.checksum_size, "data CRC")
        if self.header.checksum_size == 4 and _CRC.unpack(raw)[0] != self._crc:
            raise ImageFileError("partclone stream: a data CRC does not match (corrupt image)")
        self._in_group = 0
        if self.header.reseed:
            self._crc = partclone.CRC_SEED


def write_stream(
    header: partclone.Header,
    bitmap: bytes,
    data: Iterable[bytes | memoryview],
    write: Callable[[bytes | memoryview], object],
) -> None:
    """Write a ``-a0`` partclone stream (header, bitmap, its CRC, the used blocks in order)."""
    write(header.pack())
    write(bitmap)
    write(_CRC.pack(partclone.crc32(bitmap)))
    for piece in data:
        write(piece)
