"""One chunk's codec: its name (BLAKE3 of the uncompressed bytes) and its zstd (de)compression.

The algorithms are fixed per manifest (``hash``/``compression`` fields); this module holds the
only ones the format's version 1 knows.  It stores nothing (see :mod:`.store`).
"""

from __future__ import annotations

import functools
import threading

import blake3
import zstandard

HASH = "blake3"
COMPRESSION = "zstd"
DEFAULT_LEVEL = 3  # the zstd command's default, as ogref's partclone | zstd images
DIGEST_HEX = 64

_local = threading.local()


def digest(data: bytes | bytearray | memoryview) -> str:
    """The chunk's name: BLAKE3 of its uncompressed bytes, 64 hex digits."""
    return blake3.blake3(data).hexdigest()


@functools.lru_cache(maxsize=8)
def zero_digest(size: int) -> str:
    """The name of a chunk of ``size`` zero bytes (zero runs are cut at the maximum size)."""
    return digest(bytes(size))


def compress(data: bytes | memoryview, level: int = DEFAULT_LEVEL) -> bytes:
    """One zstd frame holding ``data`` (a compressor per thread: they are not thread-safe)."""
    key = f"c{level}"
    comp = getattr(_local, key, None)
    if comp is None:
        comp = zstandard.ZstdCompressor(level=level, write_content_size=True)
        setattr(_local, key, comp)
    return comp.compress(data)


def decompress(frame: bytes, size: int) -> bytes:
    """The bytes of one zstd frame, which must be exactly ``size`` long (ZstdError otherwise)."""
    dec = getattr(_local, "d", None)
    if dec is None:
        dec = zstandard.ZstdDecompressor()
        _local.d = dec
    data = dec.decompress(frame, max_output_size=size)
    if len(data) != size:
        raise zstandard.ZstdError(f"frame holds {len(data)} bytes, {size} expected")
    return data


def is_digest(text: str) -> bool:
    """Whether ``text`` is a chunk name (lower-case hex of the right length)."""
    return len(text) == DIGEST_HEX and all(c in "0123456789abcdef" for c in text)
