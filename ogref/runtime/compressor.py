"""Compressor adapters: the argv that compresses or decompresses an image stream, and detection.

lzop (OpenGnSys's default, stream-compatible with its pipelines), gzip, and zstd (multi-threaded,
``-T0``; ogLab's default).  Detection reads the file's magic bytes instead of parsing ``file``'s
text as OpenGnSys does.  No process is started here.
"""

from __future__ import annotations

from pathlib import Path

from ogref.model.image import Compressor

_MAGIC: tuple[tuple[bytes, Compressor], ...] = (
    (b"\x89LZO\x00\r\n\x1a\n", Compressor.LZOP),
    (b"\x1f\x8b", Compressor.GZIP),
    (b"\x28\xb5\x2f\xfd", Compressor.ZSTD),
    (b"partclone-image", Compressor.NONE),
)

PROGRAM = {Compressor.LZOP: "lzop", Compressor.GZIP: "gzip", Compressor.ZSTD: "zstd"}


def compress_argv(comp: Compressor, level: int | None = None) -> list[str] | None:
    """The stage that compresses stdin to stdout (None: no compression stage)."""
    if comp is Compressor.NONE:
        return None
    if comp is Compressor.ZSTD:
        return ["zstd", "-q", "-T0", f"-{level or 3}", "-c"]
    if comp is Compressor.LZOP:
        return ["lzop", "-c"] + ([f"-{level}"] if level else [])
    return ["gzip", "-c"] + ([f"-{level}"] if level else [])


def decompress_argv(comp: Compressor) -> list[str] | None:
    """The stage that decompresses stdin to stdout (None: the stream is not compressed)."""
    if comp is Compressor.NONE:
        return None
    if comp is Compressor.ZSTD:
        return ["zstd", "-q", "-d", "-c"]
    return [PROGRAM[comp], "-d", "-c"]


def detect_bytes(head: bytes) -> Compressor | None:
    """The compressor whose magic starts ``head`` (NONE: a bare partclone stream; None: unknown)."""
    for magic, comp in _MAGIC:
        if head.startswith(magic):
            return comp
    return None


def detect(path: str | Path) -> Compressor | None:
    """The compressor of the file at ``path`` (None: unknown format)."""
    with open(path, "rb") as f:
        return detect_bytes(f.read(16))
