"""Convert between the OpenGnSys ``partclone | compressor`` file and the chunked format, both
ways, with the same filesystem content (the used blocks and the bitmap are carried unchanged).

To chunked: the ``.img`` is read once, its whole-file MD5 compared with ``.full.sum`` (33 on a
mismatch), decompressed, its partclone CRCs checked and removed, and cut into the chunk store.
To OpenGnSys: the chunks (each re-hashed) are written as a ``-a0`` partclone stream into the
compressor; the new ``.img`` gets ``.info``, ``.sum`` and ``.full.sum`` and is published as
createImage publishes (previous version to ``.ant``).  No partition is touched.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from typing import IO

from ogref.errors import ImageError, ImageFileError, OgError
from ogref.model.image import CloneTool, Compressor, ImageInfo
from ogref.runtime import compressor, imagefile
from ogref.runtime.chunked import chunk, image
from ogref.runtime.chunked.blockstream import ByteReader, write_stream
from ogref.runtime.chunked.create import ChunkedResult, chunk_stream
from ogref.runtime.chunked.manifest import Chunking
from ogref.runtime.imagefile import ImageStore, StreamDigest
from ogref.runtime.lock import LockFile
from ogref.runtime.proc import copy_fd, run_pipeline


def _own_error(exc: ImageError) -> OgError:
    """The drain's or feed's own OgError (a corrupt stream: 33) rather than the pipeline's."""
    cause = exc.__cause__
    return cause if isinstance(cause, OgError) else exc


def to_chunked(
    images: ImageStore,
    name: str,
    *,
    target: str = "",
    level: int = chunk.DEFAULT_LEVEL,
    chunking: Chunking = Chunking(),
    workers: int = 0,
) -> ChunkedResult:
    """Chunk the OpenGnSys image ``name`` into chunked image ``target`` (default: ``name``)."""
    start = time.monotonic()
    files = imagefile.require_image(images, name)
    comp, _ = imagefile.read_header(files.img)
    info = imagefile.read_info(files)
    expected = imagefile.read_sum(files.full_sum)
    target_files = images.files(target or name)
    store = image.chunk_store(images)
    digest = StreamDigest()
    out = []
    host = info.host if info and info.host else socket.gethostname()
    fs = info.filesystem if info else None

    def cut(stream: ByteReader) -> None:
        out.append(
            chunk_stream(
                stream, store, fs, chunking=chunking, level=level, host=host, workers=workers
            )
        )

    def feed(stream: IO[bytes]) -> None:
        src = os.open(files.img, os.O_RDONLY | os.O_CLOEXEC)
        try:
            copy_fd(src, stream.fileno(), digest.update)
        finally:
            os.close(src)

    with LockFile(target_files.lock, f"image {target_files.name}"):
        decomp = compressor.decompress_argv(comp)
        if decomp is None:
            with open(files.img, "rb") as f:
                cut(_Hashing(f, digest))
        else:
            try:
                run_pipeline(
                    [decomp], error=ImageError, what=f"read {files.img}", feed=feed, drain=cut
                )
            except ImageError as exc:
                raise _own_error(exc) from exc
        if expected and digest.md5 != expected:
            raise ImageFileError(f"{files.img}: MD5 {digest.md5} differs from .full.sum")
        store.sync()
        made, stats = out[0]
        path = image.publish(images, target_files.name, made)
    return ChunkedResult(made, path, stats, time.monotonic() - start)


class _Hashing:
    """A file whose reads feed a :class:`StreamDigest` (an uncompressed ``.img``)."""

    def __init__(self, f: IO[bytes], digest: StreamDigest) -> None:
        self._f, self._digest = f, digest

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._digest.update(memoryview(data))
        return data


def to_partclone(
    images: ImageStore,
    name: str,
    *,
    target: str = "",
    comp: Compressor = Compressor.ZSTD,
    level: int | None = None,
) -> imagefile.ImageFiles:
    """Write chunked image ``name`` as the OpenGnSys image ``target`` (default: ``name``)."""
    made = image.load(images, name)
    store = image.chunk_store(images)
    files = images.files(target or name)
    staged = files.staged()
    comp_argv = compressor.compress_argv(comp, level)
    digest = StreamDigest()

    def blocks() -> Iterator[bytes]:
        for ref in made.chunks:
            yield store.read(ref.digest, ref.size)

    def feed(stream: IO[bytes]) -> None:
        write_stream(made.header, made.bitmap, blocks(), stream.write)

    def drain(stream: IO[bytes]) -> None:
        fd = os.open(staged.img, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            copy_fd(stream.fileno(), fd, digest.update)
            os.fsync(fd)
        finally:
            os.close(fd)

    with LockFile(files.lock, f"image {files.name}"):
        try:
            if comp_argv is None:
                with open(staged.img, "wb") as f:
                    feed(f)
                digest_file = imagefile.md5_full(staged.img)
            else:
                try:
                    run_pipeline(
                        [comp_argv], error=ImageError, what=f"write {staged.img}", feed=feed,
                        drain=drain,
                    )  # fmt: skip
                except ImageError as exc:
                    raise _own_error(exc) from exc
                digest_file = digest.md5
            size_kb = (made.header.device_size + 1023) // 1024
            info = ImageInfo(CloneTool.PARTCLONE, comp, made.filesystem, size_kb, made.host)
            imagefile.write_text(staged.info, f"{info}\n")
            imagefile.write_sums(staged, digest_file)
            imagefile.publish(staged, files)
        except BaseException:
            with contextlib.suppress(OSError):
                imagefile.discard(staged)
            raise
    return files
